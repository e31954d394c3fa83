"""Config loading: the real file validates, and each kind of mistake is named precisely."""

from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import ConfigError, UnknownEnvironmentError, load_config

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "include" / "config" / "latticedb.yaml"


def test_real_file_has_the_runbook_names_and_thresholds():
    cfg = load_config(REAL)
    assert cfg.environment_names == ["local", "dev", "staging", "production", "local-staging", "local-prod", "local-2", "local-3", "local-4", "local-5", "local-6", "local-7", "local-8", "local-9", "local-10"]  # + local_copies
    for name in cfg.environment_names:
        env = cfg.environment(name)
        assert env.cluster == f"latticedb-{name}"
        assert env.service == f"latticedb-service-{name}"
        assert env.task_family == f"latticedb-task-{name}"
        assert (env.thresholds.max_error_rate, env.thresholds.max_p95_ms, env.thresholds.min_success_rate) == (
            0.05,
            1000,
            0.95,
        )
    slo = cfg.environment("production").slo
    assert (slo.max_error_rate, slo.max_p95_ms, slo.max_p99_ms) == (0.01, 500, 1000)
    assert cfg.environment("production").canary.traffic_steps == (5, 15, 25, 50, 100)


def test_unknown_environment_lists_valid_ones():
    with pytest.raises(UnknownEnvironmentError, match="valid environments: local, dev, staging, production"):
        load_config(REAL).environment("prod")


def test_ports_follow_environment_variables(monkeypatch):
    monkeypatch.setenv("LATTICEDB_LOCAL_SERVICE_PORT", "9999")
    assert load_config(REAL).environment("local").service_url == "http://127.0.0.1:9999"


def _write(tmp_path, mutate) -> Path:
    data = yaml.safe_load(REAL.read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["environments"]["staging"].pop("cluster"), r"environments\.staging\.cluster: required key is missing"),
        (lambda d: d["environments"]["dev"].update(desired_count="two"), r"environments\.dev\.desired_count: must be a number"),
        (lambda d: d["environments"]["local"].update(clustr="x"), r"environments\.local\.clustr: unknown key"),
        (
            lambda d: d["environments"]["production"].update(thresholds={"max_error_rate": 5}),
            r"environments\.production\.thresholds\.max_error_rate: must be between 0 and 1",
        ),
        (lambda d: d["environments"]["dev"].update(service_url="dev.latticedb.com"), r"environments\.dev\.service_url"),
        (
            lambda d: d["environments"]["local"]["metrics"].update(latency_statistic="median"),
            r"environments\.local\.metrics\.latency_statistic",
        ),
        (lambda d: d.update(environments={}), r"environments: must be a non-empty mapping"),
        (
            lambda d: d["environments"]["dev"].update(allowed_strategies=["rolling", "big_bang"]),
            r"environments\.dev\.allowed_strategies: must be a non-empty list of rolling, canary, blue_green; unknown: 'big_bang'",
        ),
        (lambda d: d["environments"]["dev"].update(allowed_strategies=[]), r"environments\.dev\.allowed_strategies: must be a non-empty"),
        (
            lambda d: d["progressive_delivery"]["stages"].append({"environment": "production", "strategy": "rolling"}),
            r"progressive_delivery\.stages\[2\]\.strategy: 'rolling' is not allowed in production \(allowed_strategies: canary, blue_green\)",
        ),
        (
            lambda d: d["nightly"].update(environment="production", strategy="rolling"),
            r"nightly\.strategy: 'rolling' is not allowed in production",
        ),
        (  # a window shorter than two metrics periods can hold no whole (clock-aligned) period
            lambda d: d["environments"]["local"]["post_deployment"].update(window_seconds=9),
            r"environments\.local\.post_deployment\.window_seconds: must be at least twice metrics\.period_seconds \(5\), got 9",
        ),
        (  # the follow-up watch: three offsets (its 1h, 6h, 24h checks), numbers, in order, not negative
            lambda d: d["environments"]["production"]["post_deployment"].update(watch_offsets_seconds=[3600, 21600]),
            r"environments\.production\.post_deployment\.watch_offsets_seconds: must be 3 offsets in seconds, "
            r"one per check \(1h, 6h, 24h\), or \[\] for no watch; got 2: \[3600, 21600\]",
        ),
        (
            lambda d: d["environments"]["production"]["post_deployment"].update(watch_offsets_seconds=[3600, "6h", 86400]),
            r"environments\.production\.post_deployment\.watch_offsets_seconds\[1\]: must be a number, got '6h'",
        ),
        (
            lambda d: d["environments"]["staging"].update(post_deployment={"watch_offsets_seconds": [-5, 10, 20]}),
            r"environments\.staging\.post_deployment\.watch_offsets_seconds: must not be negative, got \[-5, 10, 20\]",
        ),
        (
            lambda d: d["environments"]["production"]["post_deployment"].update(watch_offsets_seconds=[86400, 21600, 3600]),
            r"environments\.production\.post_deployment\.watch_offsets_seconds: must not decrease",
        ),
        (
            lambda d: d["environments"]["production"]["post_deployment"].update(watch_offsets_seconds=3600),
            r"environments\.production\.post_deployment\.watch_offsets_seconds: must be a list, got int",
        ),
        (
            lambda d: d["environments"]["dev"].update(post_deployment={"watch_offset_seconds": [1, 2, 3]}),
            r"environments\.dev\.post_deployment\.watch_offset_seconds: unknown key",
        ),
        # Every section's values, not only its keys, are checked when the file is loaded (issue 14).
        (lambda d: d["environments"]["dev"].update(smoke={"retries": -1}), r"environments\.dev\.smoke\.retries: must be zero or more"),
        (lambda d: d["environments"]["dev"].update(smoke={"timeout_seconds": 0}), r"environments\.dev\.smoke\.timeout_seconds: must be positive"),
        (lambda d: d["environments"]["dev"].update(canary={"traffic_steps": [50, 25, 100]}),
         r"environments\.dev\.canary\.traffic_steps: traffic steps must strictly increase"),
        (lambda d: d["environments"]["dev"].update(canary={"canary_percent": 0}), r"environments\.dev\.canary\.canary_percent: canary_percent must be between 1 and 100"),
        (lambda d: d["environments"]["dev"].update(canary={"interval_seconds": -1}), r"environments\.dev\.canary\.interval_seconds"),
        (lambda d: d["environments"]["dev"].update(blue_green={"bake_seconds": -30}), r"environments\.dev\.blue_green\.bake_seconds: must be zero or more"),
        (lambda d: d["environments"]["dev"].update(capacity={"max_tasks": 0}), r"environments\.dev\.capacity\.max_tasks: must be at least 1"),
        (lambda d: d["environments"]["dev"].update(deployment_windows={"timezone": "Mars/Olympus"}),
         r"environments\.dev\.deployment_windows\.timezone: unknown time zone 'Mars/Olympus'"),
        (lambda d: d["environments"]["dev"].update(deployment_windows={"freezes": [{"start": "Christmas", "end": "2026-12-27T00:00:00Z"}]}),
         r"environments\.dev\.deployment_windows\.freezes\[0\]\.start: must be an ISO-8601 instant"),
        (lambda d: d["environments"]["dev"].update(deployment_windows={"freezes": [{"start": "2026-12-27T00:00:00Z", "end": "2026-12-24T00:00:00Z"}]}),
         r"environments\.dev\.deployment_windows\.freezes\[0\]\.end: must be after start"),
        (lambda d: d["environments"]["dev"].update(lock_ttl_seconds=0), r"environments\.dev\.lock_ttl_seconds: must be positive"),
        (lambda d: d["environments"]["dev"].update(max_pause_seconds=0), r"environments\.dev\.max_pause_seconds: must be positive"),
        (lambda d: d["nightly"].update(schedule="every night"), r"nightly\.schedule: must be a cron expression"),
        (lambda d: d["nightly"].update(wait_for_environment_seconds=-1),
         r"nightly\.wait_for_environment_seconds: must be zero or more"),
        (lambda d: d["nightly"].update(tag_pattern="^v(\\d+"), r"nightly\.tag_pattern: not a valid regular expression"),
        (lambda d: d["progressive_delivery"]["stages"][0].update(strategy="big_bang"),
         r"progressive_delivery\.stages\[0\]\.strategy: must be one of rolling, canary, blue_green"),
    ],
)
def test_bad_file_names_file_key_and_problem(tmp_path, mutate, expected):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError, match=expected) as exc:
        load_config(path)
    assert str(path) in str(exc.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("environments: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.yaml")


def test_allowed_strategies_default_to_all_and_production_refuses_rolling():
    cfg = load_config(REAL)
    for name in ("local", "dev", "staging"):
        assert set(cfg.environment(name).allowed_strategies) == {"rolling", "canary", "blue_green"}
    assert cfg.environment("production").allowed_strategies == ("canary", "blue_green")


def test_local_copies_are_local_with_their_own_names_ports_and_repository(monkeypatch):
    monkeypatch.delenv("LATTICEDB_LOCAL_2_SERVICE_PORT", raising=False)
    monkeypatch.delenv("LATTICEDB_LOCAL_2_TEST_PORT", raising=False)
    cfg = load_config(REAL)
    local, copy = cfg.environment("local"), cfg.environment("local-2")
    assert copy.copy_of == "local" and local.copy_of is None
    assert (copy.cluster, copy.service, copy.green_service, copy.task_family) == (
        "latticedb-local-2", "latticedb-service-local-2", "latticedb-service-local-2-green", "latticedb-task-local-2")
    lb = copy.load_balancer
    assert (lb.name, lb.blue_target_group, lb.green_target_group) == (
        "latticedb-local-2-alb", "latticedb-local-2-blue", "latticedb-local-2-green")
    assert (copy.aws_conn_id, copy.notifications.slack_conn_id, copy.redis_conn_id) == (
        "latticedb_local_2_aws", "latticedb_local_2_slack", "latticedb_local_2_redis")
    assert (copy.ecr_repository, copy.alarm_prefix) == ("latticedb-local-2", "latticedb-local-2-")
    # local-2 is the 3rd copy (after local-staging, local-prod): default ports 30 above local's
    assert (copy.service_url, copy.test_url) == ("http://127.0.0.1:8111", "http://127.0.0.1:8113")
    monkeypatch.setenv("LATTICEDB_LOCAL_2_SERVICE_PORT", "9999")
    assert load_config(REAL).environment("local-2").service_url == "http://127.0.0.1:9999"
    # everything else is local's
    assert (copy.metrics, copy.rollout, copy.canary, copy.post_deployment, copy.deployment_log) == (
        local.metrics, local.rollout, local.canary, local.post_deployment, local.deployment_log)


def test_a_local_copy_needs_a_new_valid_name(tmp_path):
    raw = yaml.safe_load(REAL.read_text())
    raw["local_copies"] = {"of": "local", "names": {"dev": {}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"local_copies\.names\.dev: a copy needs a new name"):
        load_config(path)
    raw["local_copies"] = {"of": "nowhere", "names": {"local-x": {}}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"local_copies\.of: unknown environment 'nowhere'"):
        load_config(path)


def test_the_local_route_rehearses_staging_then_production_on_local_copies(monkeypatch):
    assert [(s.environment, s.require_approval) for s in load_config(REAL).progressive_delivery.stages] == [
        ("staging", False), ("production", True)]
    monkeypatch.setenv("LATTICEDB_PROGRESSIVE_ROUTE", "local")
    stages = load_config(REAL).progressive_delivery.stages
    assert [(s.environment, s.strategy, s.require_approval) for s in stages] == [
        ("local-staging", "rolling", False), ("local-prod", "canary", True)]


def test_the_config_is_parsed_once_and_again_only_when_its_text_or_the_environment_changes(tmp_path, monkeypatch):
    path = tmp_path / "latticedb.yaml"
    raw = yaml.safe_load(REAL.read_text())
    path.write_text(yaml.safe_dump(raw))
    first = load_config(path)
    assert load_config(path) is first  # the same text: no second parse
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "deploy.gate_25pct")  # Airflow sets these for every task
    assert load_config(path) is first
    monkeypatch.setenv("LATTICEDB_LOCAL_SERVICE_PORT", "9998")
    moved = load_config(path)
    assert moved.environment("local").service_url == "http://127.0.0.1:9998"  # ${VAR} expanded again
    raw["environments"]["local"]["desired_count"] = 3  # same size on disk or not, new text is read
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).environment("local").desired_count == 3
    path.write_text("environments: [")
    with pytest.raises(ConfigError, match="not valid YAML"):  # a broken edit is reported, not hidden by the cache
        load_config(path)


def test_the_post_deployment_watch_is_on_in_production_and_off_where_unset_or_empty(tmp_path):
    cfg = load_config(REAL)
    assert cfg.environment("production").watch_offsets == (3600, 21600, 86400)  # runbook: 1 h, 6 h, 24 h
    for name in ("local", "dev", "staging", "local-prod", "local-2"):
        assert cfg.environment(name).watch_offsets is None, name

    def mutate(d):
        d["environments"]["production"]["post_deployment"].pop("watch_offsets_seconds")  # unset: production's default
        d["environments"]["staging"]["post_deployment"] = {"watch_offsets_seconds": [60, 120, 300]}
        d["environments"]["dev"]["post_deployment"] = {"watch_offsets_seconds": []}  # [] means off
        d["environments"]["local"]["post_deployment"]["watch_offsets_seconds"] = [5, 6, 7.5]  # its copies inherit it

    cfg = load_config(_write(tmp_path, mutate))
    assert cfg.environment("production").watch_offsets == (3600, 21600, 86400)
    assert cfg.environment("staging").watch_offsets == (60, 120, 300)
    assert cfg.environment("dev").watch_offsets is None
    assert cfg.environment("local").watch_offsets == cfg.environment("local-2").watch_offsets == (5, 6, 7.5)


def test_production_can_turn_the_watch_off(tmp_path):
    path = _write(tmp_path, lambda d: d["environments"]["production"]["post_deployment"].update(watch_offsets_seconds=[]))
    assert load_config(path).environment("production").watch_offsets is None


def test_config_models_compare_hash_and_refuse_assignment_as_frozen_dataclasses():
    """The models are latticedb_deploy.models.frozen_model classes (tests/unit/test_models.py): the rest of
    the code compares run snapshots and keys caches by environment, so two configs built from the same
    text must compare and hash equal, and none can be changed."""
    import dataclasses

    from latticedb_deploy.config import Thresholds, config_from_text

    with pytest.raises(dataclasses.FrozenInstanceError):
        Thresholds().max_p95_ms = 1.0
    first, second = load_config(REAL), config_from_text(REAL, REAL.read_text() + "\n# another text: built anew\n")
    assert first is not second and first.environment("local") is not second.environment("local")
    assert first.environment("local") == second.environment("local")
    assert hash(first.environment("local")) == hash(second.environment("local"))
    assert first.environment("local") != first.environment("staging")
