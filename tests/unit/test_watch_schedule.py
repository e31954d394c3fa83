"""Which follow-up watch a succeeded deployment schedules (latticedb_deploy.watch_schedule): pure logic."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import load_config
from latticedb_deploy.watch_schedule import watch_request, watch_run_id, why_not_watched

REAL = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"
AT = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def test_production_is_watched_at_1h_6h_24h_with_the_deployment_identity():
    env = load_config(REAL).environment("production")
    assert why_not_watched(env) is None
    req = watch_request(
        env, dag_id="latticedb_deploy_canary", run_id="manual__2026-11-26T08:00:00+00:00", deployed_at=AT,
        version="v2.0.0", image="123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb@sha256:abc",
        revision="latticedb-task-production:42", run_link="http://airflow/dags/latticedb_deploy_canary/runs/x",
    )
    assert req.run_id == "watch__latticedb_deploy_canary__manual__2026-11-26T08:00:00+00:00"
    assert req.conf == {
        "environment": "production", "deployment": "latticedb_deploy_canary/manual__2026-11-26T08:00:00+00:00",
        "version": "v2.0.0", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb@sha256:abc",
        "revision": "latticedb-task-production:42", "deployment_url": "http://airflow/dags/latticedb_deploy_canary/runs/x",
        "deployed_at": "2026-11-26T09:00:00+00:00", "offsets_seconds": [3600, 21600, 86400],
    }
    assert req.summary() == "1h at 2026-11-26 10:00:00Z, 6h at 2026-11-26 15:00:00Z, 24h at 2026-11-27 09:00:00Z"


def test_other_environments_say_why_they_are_not_watched(tmp_path):
    cfg = load_config(REAL)
    assert why_not_watched(cfg.environment("staging")) == (
        "no post-deployment watch in staging: post_deployment.watch_offsets_seconds is unset (on by default in production only)")
    with pytest.raises(ValueError, match="no post-deployment watch in local"):
        watch_request(cfg.environment("local"), dag_id="d", run_id="r", deployed_at=AT)
    raw = yaml.safe_load(REAL.read_text())
    raw["environments"]["production"]["post_deployment"]["watch_offsets_seconds"] = []
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert why_not_watched(load_config(path).environment("production")).endswith("watch_offsets_seconds is empty")


def test_the_run_id_is_the_deployment_s_own_and_fits_airflow():
    assert watch_run_id("latticedb_deploy_rolling", "manual__x") == "watch__latticedb_deploy_rolling__manual__x"
    assert len(watch_run_id("d" * 200, "r" * 200)) == 250


NEW_REVISION = {"version": "v2.0.0", "image": "repo/latticedb@sha256:abc",
                "task_definition": "arn:aws:ecs:us-east-1:123456789012:task-definition/latticedb-task-production:42"}


class _TI:
    """Just what the operator asks of a task instance (no Airflow DB)."""

    dag_id, task_id = "latticedb_deploy_canary", "schedule_post_deployment_watch"

    def __init__(self, get_dag, try_number=1, max_tries=1):
        self.get_dag, self.try_number, self.max_tries, self.pushed = get_dag, try_number, max_tries, {}

    def xcom_pull(self, task_ids=None, key="return_value"):
        return None  # the operator's input (the new revision) is an argument, not pulled by task id

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _operator(environment: str):
    from latticedb_deploy.operators.watch import SchedulePostDeploymentWatchOperator

    return SchedulePostDeploymentWatchOperator(
        task_id="schedule_post_deployment_watch", environment=environment, image_uri="repo/latticedb:v2.0.0", notify="false",
        new_revision=NEW_REVISION)


def _context(ti):
    from types import SimpleNamespace

    return {"ti": ti, "run_id": "manual__1", "dag": SimpleNamespace(dag_id="latticedb_deploy_canary")}


def test_the_operator_hands_the_trigger_to_the_task_runner_without_waiting():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import DagRunTriggerException

    ti = _TI(lambda dag_id: SimpleNamespace(dag_id=dag_id, is_paused=False))
    with pytest.raises(DagRunTriggerException) as exc:
        _operator("production").execute(_context(ti))
    trigger = exc.value
    assert trigger.trigger_dag_id == "latticedb_post_deployment_watch" and trigger.wait_for_completion is False
    assert trigger.dag_run_id == "watch__latticedb_deploy_canary__manual__1" and trigger.skip_when_already_exists
    assert trigger.conf["deployment"] == "latticedb_deploy_canary/manual__1" and trigger.conf["version"] == "v2.0.0"
    assert trigger.conf["revision"] == "latticedb-task-production:42" and trigger.conf["image"] == "repo/latticedb@sha256:abc"
    assert ti.pushed["watch"]["run_id"] == trigger.dag_run_id and ti.pushed["watch"]["paused"] is False


def test_the_operator_skips_where_there_is_no_watch():
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="no post-deployment watch in staging"):
        _operator("staging").execute(_context(_TI(lambda dag_id: None)))


def test_the_triggered_run_link_is_empty_without_a_scheduled_watch_and_looks_nothing_up(monkeypatch):
    """A skipped watch: no "Triggered DAG" link, and no XCom lookup (which logged an ERROR on every such run)."""
    from airflow.providers.standard.operators import trigger_dagrun
    from airflow.sdk.exceptions import AirflowSkipException, DagRunTriggerException

    looked_up = []
    monkeypatch.setattr(trigger_dagrun.XCom, "get_value", lambda **kw: looked_up.append(kw) or "watch__x")
    skipped = _operator("staging")
    with pytest.raises(AirflowSkipException):
        skipped.execute(_context(_TI(lambda dag_id: None)))
    (link,) = skipped.operator_extra_links
    assert link.name == "Triggered DAG" and link.get_link(skipped, ti_key=object()) == "" and looked_up == []
    scheduled = _operator("production")
    with pytest.raises(DagRunTriggerException):
        scheduled.execute(_context(_TI(lambda dag_id: type("D", (), {"is_paused": False})())))
    url = link.get_link(scheduled, ti_key=object())
    assert len(looked_up) == 1 and url.endswith("/dags/latticedb_post_deployment_watch/runs/watch__x"), url


def test_a_watch_that_cannot_be_scheduled_is_a_warning_on_the_last_try():
    def missing(dag_id):
        raise RuntimeError(f"DAG {dag_id} not found")

    with pytest.raises(RuntimeError):  # retried first: the API may be briefly unreachable
        _operator("production").execute(_context(_TI(missing, try_number=1, max_tries=1)))
    result = _operator("production").execute(_context(_TI(missing, try_number=2, max_tries=1)))
    assert result["warning"] is True and result["task"] == "schedule_post_deployment_watch"
    assert "DAG latticedb_post_deployment_watch not found" in result["reason"] and result["attempts"] == 2
