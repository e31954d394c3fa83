"""Clearing and re-running the failed task of a failed run converges.

A rolling deploy fails at `deploy.update_service` because ECS throttles UpdateService beyond every
retry (client and task). Nothing had changed, so the rollback skips and the service stays on v1.0.0
with 100 % of traffic. Once the throttling stops, the user clears the failed task with its
downstream tasks (what the UI's Clear does) and the same run finishes the deployment.
"""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.faults.driver import aws_stats, clear_with_downstream, continue_run, faults, task_states, tries
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"


def test_failed_task_cleared_and_rerun_finishes_the_deployment(local, dagbag):
    before = local.service()
    faults(local, throttle={"operations": ["UpdateService"], "count": 1000})
    conf = {"image_uri": image("v2.0.0"), "environment": ENV.name}
    dr = run_dag_run(dagbag, DAG_ID, conf)
    states = task_states(dr)
    assert dr.state == "failed", states
    assert states["deploy.update_service"] == "failed"
    assert tries(dr)["deploy.update_service"] == 3  # its retries were used up
    assert states["rollback.restore_previous_revision"] == "skipped"  # nothing had changed
    assert aws_stats(local)["throttled"]["UpdateService"] >= 3
    assert local.service()["taskDefinition"] == before["taskDefinition"]
    assert local.weights()[ENV.blue_tg] == 100
    assert any("Deployment failed at deploy.update_service" in t for t in local.message_texts()), local.message_texts()
    revisions = local.revisions()

    faults(local, throttle=None)
    cleared = clear_with_downstream(dagbag.dags[DAG_ID], dr.run_id, "deploy.update_service")
    assert "deploy.wait_for_rollout" in cleared and "notify_success" in cleared, cleared
    dr = continue_run(dagbag.dags[DAG_ID], dr.run_id)
    states = task_states(dr)
    assert dr.state == "success", states
    after = local.service()
    assert local.task_definition_image(after["taskDefinition"]).endswith(f"{ENV.repository}@" + local.digest("v2.0.0"))
    assert after["runningCount"] == after["desiredCount"] == before["desiredCount"]
    assert local.revisions() == revisions  # the re-run registered nothing new
    assert local.weights()[ENV.blue_tg] == 100
    assert any("rolling deployment succeeded" in t for t in local.message_texts()), local.message_texts()


@pytest.mark.parametrize(
    ("dag_id", "conf", "task_id"),
    [
        ("latticedb_deploy_canary", {"traffic_steps": [50, 100], "interval_seconds": 4}, "deploy.shift_traffic_to_50pct"),
        ("latticedb_deploy_blue_green", {"bake_seconds": 4, "require_approval": False}, "deploy.switch_traffic"),
    ],
)
def test_rerun_of_a_traffic_shift_after_rollback_refuses_a_slot_with_no_tasks(local, dagbag, dag_id, conf, task_id):
    """After a rollback the new slot has 0 tasks. Clearing and re-running the step that gave it traffic
    must not send traffic to nothing: the step checks its target first and fails saying why."""
    dr = run_dag_run(dagbag, dag_id, {"image_uri": image("v2.1.0-errors"), "environment": ENV.name, **conf})
    assert dr.state == "failed"
    assert task_states(dr)["rollback.shift_traffic_back"] == "success", task_states(dr)
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service(ENV.green_service)["desiredCount"] == 0

    cleared = _clear_tasks(dagbag.dags[dag_id], dr.run_id, ["preflight.acquire_environment", task_id, "release_environment"])
    assert task_id in cleared, cleared
    dr = continue_run(dagbag.dags[dag_id], dr.run_id)
    states = task_states(dr)
    assert states[task_id] == "failed", states
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}  # nothing changed
    failure = next(t for t in reversed(local.message_texts()) if f"Deployment failed at {task_id}" in t)
    assert "refusing to change traffic" in failure and ENV.green_service in failure, failure


def _clear_tasks(dag, run_id: str, task_ids: list[str]) -> list[str]:
    """What the UI's Clear does for exactly these tasks (no downstream)."""
    from airflow.models.taskinstance import clear_task_instances
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.settings import Session
    from airflow.utils.state import DagRunState

    sdag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    with Session() as session:
        tis = sdag.clear(dry_run=True, task_ids=task_ids, run_id=run_id, session=session)
        clear_task_instances(list(tis), session, DagRunState.QUEUED)
        session.commit()
        return sorted(ti.task_id for ti in tis)
