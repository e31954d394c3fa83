"""Issue 15, the post-deployment watch (runbook: "monitor for 24 hours"), with compressed offsets:
each check defers until its moment, judges the live slot against the SLO and posts a verdict; a
breach posts an alert naming the deployment and offering latticedb_rollback. Real dag.test() runs
against the local environment; names from the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_post_deployment_watch"
CHECKS = ("watch_1h", "watch_6h", "watch_24h")


def _conf(env, deployed_at: datetime, offsets: list[int]) -> dict:
    return {
        "environment": env.name, "deployment": "latticedb_deploy_canary/manual__test", "version": "v1.0.0",
        "deployed_at": deployed_at.isoformat(), "offsets_seconds": offsets, "window_seconds": 20,
    }


def test_watch_posts_a_verdict_at_each_offset(local, dagbag):
    env = load_config().environment(ENV.name)
    deployed_at = datetime.now(UTC)
    offsets = [25, 27, 29]  # metrics of a whole window exist by then
    dr = run_dag_run(dagbag, DAG_ID, _conf(env, deployed_at, offsets))
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    for task_id, offset in zip(CHECKS, offsets, strict=True):
        result = xcom(DAG_ID, dr.run_id, task_id)
        assert result["verdict"] == "pass" and result["live_service"] == env.service, result
        # judged no earlier than its moment (it waited, deferred, for it)
        assert tis[task_id].end_date >= deployed_at + timedelta(seconds=offset)
    texts = local.message_texts()
    for label in ("1h", "6h", "24h"):
        assert any(f"Post-deployment watch {label}: OK" in t for t in texts), texts


def test_a_breach_alerts_naming_the_deployment_and_offering_the_rollback(local, dagbag):
    env = load_config().environment(ENV.name)
    local.faults(slot_errors={env.load_balancer.blue_target_group: 0.5})
    try:
        dr = run_dag_run(dagbag, DAG_ID, _conf(env, datetime.now(UTC), [25, 25, 25]))
    finally:
        local.faults(slot_errors=None)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert all(states[t] == "failed" for t in CHECKS), states
    assert xcom(DAG_ID, dr.run_id, "watch_1h")["verdict"] == "fail"
    alerts = [t for t in local.message_texts() if "SLO breach 1h after deployment" in t]
    assert alerts, local.message_texts()
    assert "latticedb_deploy_canary/manual__test" in alerts[0] and "latticedb_rollback" in alerts[0], alerts[0]
