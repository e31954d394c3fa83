"""Config loading: the real file validates, and each kind of mistake is named precisely."""

from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import ConfigError, UnknownEnvironmentError, load_config

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "include" / "config" / "latticedb.yaml"


def test_real_file_has_the_runbook_names_and_thresholds():
    cfg = load_config(REAL)
    assert cfg.environment_names == ["local", "dev", "staging", "production", "local-staging", "local-prod", "local-2", "local-3", "local-4", "local-5", "local-6", "local-7", "local-8", "local-9"]  # + local_copies
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
