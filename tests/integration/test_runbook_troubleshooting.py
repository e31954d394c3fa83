"""Issue 15, troubleshooting facts in every rollout failure: a crashing image's rolling run fails with
the stopped tasks' reason and exit code and the rollout's ECS service events in the failure message,
the Slack alert and XCom (real dag.test() run against the local environment)."""

from __future__ import annotations

import pytest

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"


def test_crash_failure_names_stopped_reason_exit_code_and_service_events(local, dagbag):
    env = load_config().environment(ENV.name)
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.3.0-crash"), "environment": env.name})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert tasks["deploy.wait_for_rollout"] == "failed"
    assert tasks["rollback.restore_previous_revision"] == "success"

    new_revision = xcom(DAG_ID, dr.run_id, "prepare.register_task_definition")["task_definition"]
    facts = xcom(DAG_ID, dr.run_id, "deploy.wait_for_rollout", key="troubleshooting")
    stopped = [f for f in facts if f.startswith("stopped task ")]
    assert stopped, facts
    assert all(new_revision.rsplit("/", 1)[-1] in f for f in stopped), facts
    assert "Essential container in task exited" in stopped[0] and "exit code 1" in stopped[0], facts
    events = [f for f in facts if f.startswith("event ")]
    assert any("deployment failed: tasks failed to start" in e for e in events), facts
    assert any("has stopped 1 running tasks" in e for e in events), facts

    # What an operator sees first: the Slack alert carries them.
    failed = [t for t in local.message_texts() if "Deployment failed at deploy.wait_for_rollout" in t]
    assert failed, local.message_texts()
    assert "Essential container in task exited" in failed[0] and "exit code 1" in failed[0], failed[0]

    # And they are real ECS API facts: the stopped tasks are there for `aws ecs list-tasks` too.
    ecs = local.client("ecs")
    arns = ecs.list_tasks(cluster=env.cluster, serviceName=env.service, desiredStatus="STOPPED")["taskArns"]
    described = ecs.describe_tasks(cluster=env.cluster, tasks=arns)["tasks"]
    ours = [t for t in described if t["taskDefinitionArn"] == new_revision]
    assert ours and all(t["containers"][0]["exitCode"] == 1 for t in ours)
