"""A failed rollback is an incident, not a failure (issue #11, defect 5), on real runs against `local`.

The rollback is made to fail through the local environment only (AWS throttles the call it needs
beyond every client and task retry); the production code does not know. Then: a distinct
"ROLLBACK FAILED: manual action needed" message with the live listener weights and each slot's
revision and running count; the environment stays locked (no deployment can start); a person
clears it with latticedb_unlock.
"""

from __future__ import annotations

import threading

import pytest

from tests.envs import ENV
from tests.faults.driver import faults
from tests.integration.background import lock_item, wait_until
from tests.integration.helpers import history, image, run_dag, run_dag_run, run_values_as_param_defaults

pytestmark = pytest.mark.integration
GREEN, BLUE = ENV.green_tg, ENV.blue_tg
INCIDENT = "ROLLBACK FAILED: manual action needed"


def _run_with_required_params(dagbag, dag_id: str, conf: dict):
    with run_values_as_param_defaults(dagbag, dag_id, conf):
        return run_dag_run(dagbag, dag_id, conf)


def _incident(local) -> str:
    found = [t for t in local.message_texts() if t.startswith(INCIDENT)]
    assert len(found) == 1, local.message_texts()
    return found[0]


def _locked_until_a_person_clears_it(local, dagbag, owner_prefix: str) -> None:
    item = lock_item(local)
    assert item and item["owner"].startswith(owner_prefix), item
    assert "rollback failed" in item["blocked"], item

    faults(local, throttle=None)  # AWS is fine again; the environment is still not
    state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "failed" and tasks["preflight.acquire_environment"] == "failed", tasks
    assert tasks["prepare.register_task_definition"] == "upstream_failed", tasks
    refused = [t for t in local.message_texts() if "acquire_environment" in t]
    assert refused and "because a rollback failed" in refused[-1], local.message_texts()

    dr = _run_with_required_params(dagbag, "latticedb_unlock", {"environment": ENV.name, "reason": "INC-8 checked by hand"})
    assert dr.state == "success"
    assert lock_item(local) is None
    assert any(f"Environment {ENV.name} unlocked by hand" in t and "INC-8" in t for t in local.message_texts())


def test_a_failed_canary_rollback_is_an_incident_and_keeps_the_environment_locked(local, dagbag):
    # The canary of a bad version fails its first gate at 25 %; by then the load balancer throttles
    # every ModifyListener, so the rollback can never move traffic back.
    def throttle_listener_at_25pct():
        wait_until(lambda: local.weights().get(GREEN) == 25, 240, "the 25% step", interval=0.1)
        faults(local, throttle={"operations": ["ModifyListener"], "count": 100000})

    arm = threading.Thread(target=throttle_listener_at_25pct, daemon=True)
    arm.start()
    dr = run_dag_run(dagbag, "latticedb_deploy_canary", {
        "image_uri": image("v2.1.0-errors"), "environment": ENV.name, "traffic_steps": [25, 50, 100], "interval_seconds": 6,
    })
    arm.join(10)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed", states
    assert states["deploy.gate_25pct"] == "failed", states
    assert "failed" in {s for t, s in states.items() if t.startswith("rollback.")}, states
    assert local.weights() == {BLUE: 75, GREEN: 25}  # where the failed rollback left it

    text = _incident(local)
    assert "Listener weights: blue 75% / green 25%" in text, text
    blue, green = local.service(), local.service(ENV.green_service)
    for colour, svc in (("blue", blue), ("green", green)):
        revision = svc["taskDefinition"].split("/")[-1]
        assert f"{colour} slot: {svc['serviceName']}: {revision}, {svc['runningCount']}/" in text, text
    assert "Deployment failed at rollback." not in "\n".join(local.message_texts())  # not an ordinary failure
    [record] = history(limit=1)
    assert (record.run_id, record.outcome) == (dr.run_id, "rollback_failed") and record.failed_step.startswith("rollback."), record
    _locked_until_a_person_clears_it(local, dagbag, "latticedb_deploy_canary/")


def test_a_failed_emergency_rollback_is_an_incident_too(local, dagbag):
    state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    faults(local, throttle={"operations": ["UpdateService"], "count": 100000})
    dr = _run_with_required_params(dagbag, "latticedb_rollback", {
        "environment": ENV.name, "target_revision": None, "notify": True, "reason": "INC-7: v2.0.0 leaks memory",
    })
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed" and states["update_service"] == "failed", states
    text = _incident(local)
    assert "latticedb_rollback" in text and "update_service" in text and "Listener weights: blue 100% / green 0%" in text, text
    [record] = history(limit=1)
    assert (record.dag_id, record.outcome, record.failed_step) == ("latticedb_rollback", "rollback_failed", "update_service"), record
    _locked_until_a_person_clears_it(local, dagbag, "latticedb_rollback/")
