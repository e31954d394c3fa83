"""latticedb_control on a running Airflow, through the REST API: a person's promote reaches a canary's gate
deferred in the triggerer, and an action on a deployment that has failed is refused, its run's task
states read through the execution API (as the control task does in any deployed Airflow)."""

from __future__ import annotations

from tests.e2e.test_1_rest_api import CANARY, FAST_CANARY, _trigger, _wait_for_task_state, live_slot
from tests.integration.helpers import image

CONTROL = "latticedb_control"


def _control(api, action: str, reason: str, deployment: str) -> dict:
    """A latticedb_control run triggered through the REST API, waited for; its run."""
    api.unpause(CONTROL)
    r = api.trigger(CONTROL, {"environment": "local", "action": action, "reason": reason, "deployment": deployment})
    assert r.status_code == 200, r.text
    return api.wait(CONTROL, r.json()["dag_run_id"], timeout=240)


def _lease(local):
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config

    env = load_config().environment("local")
    lock = EnvironmentLock(env, client=local.client("dynamodb"))

    def item():
        return local.client("dynamodb").get_item(
            TableName=env.lock_table, Key={"environment": {"S": "local"}}, ConsistentRead=True).get("Item")

    return lock, item


def test_a_promote_takes_a_canary_waiting_at_its_first_gate_to_100pct(api, local):
    api.unpause(CANARY)
    run_id = _trigger(api, {**FAST_CANARY, "interval_seconds": 120, "image_uri": image("v2.0.0")})
    _wait_for_task_state(api, CANARY, run_id, "deploy.gate_25pct", "deferred")
    control = _control(api, "promote", "CHG-31 metrics look fine", f"{CANARY}/{run_id}")
    assert control["state"] == "success", api.task_states(CONTROL, control["dag_run_id"])
    run = api.wait(CANARY, run_id, timeout=300)
    states = api.task_states(CANARY, run_id)
    assert run["state"] == "success", states
    assert states["deploy.gate_25pct"] == "success", states
    for task in ("shift_traffic_to_50pct", "gate_50pct", "shift_traffic_to_100pct", "gate_100pct"):
        assert states[f"deploy.{task}"] == "skipped", (task, states)  # not waited out: 2 x 120 s
    assert live_slot(local)[1].endswith(local.digest("v2.0.0"))
    texts = local.message_texts()
    assert any("Deployment promoted" in t and "CHG-31" in t for t in texts), texts


def test_an_abort_on_a_deployment_that_has_failed_is_refused_and_changes_nothing(api, local):
    """The seconds between a gate failing and the rollback's first step, held still: the failed canary's lease
    taken back as it was then (no rolling_back mark). The control task reads that run's task states through
    the execution API and refuses, naming the failed gate; the lease is left as it was."""
    api.unpause(CANARY)
    run_id = _trigger(api, {**FAST_CANARY, "image_uri": image("v2.1.0-errors")})
    assert api.wait(CANARY, run_id, timeout=300)["state"] == "failed"
    assert api.task_states(CANARY, run_id)["deploy.gate_25pct"] == "failed"
    owner = f"{CANARY}/{run_id}"
    lock, item = _lease(local)
    assert lock.acquire(owner) is None
    before = item()
    try:
        control = _control(api, "abort", "INC-32 errors", owner)
        states = api.task_states(CONTROL, control["dag_run_id"])
        assert control["state"] == "failed" and states["apply"] == "failed", states
        assert item() == before  # no abort written
        refusals = [t for t in local.message_texts() if "Control abort refused" in t]
        assert refusals and f"{owner} is ending" in refusals[-1] and "deploy.gate_25pct failed" in refusals[-1], refusals
    finally:
        lock.release(owner)
