"""latticedb_rollback in the local environment, and how long it takes to put 100 % of traffic back.

The time is measured from outside Airflow: a thread polls the moto server (as an operator would
watch the console) from just before `dag.test()` starts until the listener sends 100 % of traffic
to a settled fleet on the target revision. Run with `pytest -s` to see the numbers.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.envs import ENV
from tests.integration.helpers import history, image, run_dag, run_values_as_param_defaults

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_rollback"
SERVICES = {ENV.blue_tg: ENV.service, ENV.green_tg: ENV.green_service}


def _serving(local, target: str) -> bool:
    """100 % of production traffic reaches a settled fleet running `target`."""
    weights = local.weights()
    live = [tg for tg, w in weights.items() if w == 100]
    if len(live) != 1 or sum(weights.values()) != 100:
        return False
    svc = local.service(SERVICES[live[0]])
    return (
        svc["taskDefinition"] == target
        and svc["desiredCount"] > 0
        and svc["runningCount"] == svc["desiredCount"]
        and len(svc.get("deployments") or []) == 1
    )


def _healthy_targets(local, target_group: str) -> int:
    elb = local.client("elbv2")
    arn = elb.describe_target_groups(Names=[target_group])["TargetGroups"][0]["TargetGroupArn"]
    health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return sum(1 for t in health if t["TargetHealth"]["State"] == "healthy")


class Stopwatch:
    """Started just before the trigger; records the first moment `_serving(target)` holds."""

    def __init__(self, local, target: str):
        self.local, self.target = local, target
        self.reached: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            try:
                if _serving(self.local, self.target):
                    self.reached = time.monotonic() - self.started
                    self.reached_at = time.time()
                    return
            except Exception:  # noqa: BLE001 - a transient read error just means: look again
                pass
            time.sleep(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.total = time.monotonic() - self.started


def _deploy_v2(local, dagbag) -> tuple[str, str]:
    v1 = local.service()["taskDefinition"]
    state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    v2 = local.service()["taskDefinition"]
    assert v2 != v1
    return v1, v2


def _rollback(dagbag, **conf):
    """Run latticedb_rollback with `conf` (its required `reason` set for the run: run_values_as_param_defaults)."""
    conf = {"environment": ENV.name, "target_revision": None, "notify": True, **conf}
    with run_values_as_param_defaults(dagbag, DAG_ID, conf):
        return run_dag(dagbag, DAG_ID, conf)


def _rollback_run(dagbag, **conf):
    """_rollback, returning the DagRun (its run_id names the emergency rollback in messages)."""
    from tests.integration.helpers import run_dag_run

    conf = {"environment": ENV.name, "target_revision": None, "notify": True, **conf}
    with run_values_as_param_defaults(dagbag, DAG_ID, conf):
        return run_dag_run(dagbag, DAG_ID, conf)


def _plan_started_at() -> float:
    """When the newest rollback run's first task began (its plan XCom), epoch seconds."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session
    from sqlalchemy import select

    query = select(XComModel).where(
        XComModel.dag_id == DAG_ID, XComModel.task_id == "plan", XComModel.key == "return_value"
    )
    with Session() as session:
        return max(XComModel.deserialize_value(r)["started_at"] for r in session.scalars(query))


def _report(label: str, watch: Stopwatch, target: str) -> None:
    in_dag = watch.reached_at - _plan_started_at()
    print(
        f"\n[emergency rollback, {label}] 100% of traffic on {target.split('/')[-1]} (v1.0.0): "
        f"{watch.reached:.1f}s after dag.test() was called, {in_dag:.1f}s after the first task started "
        f"(whole run {watch.total:.1f}s)"
    )


def test_rolls_the_live_service_back_to_the_previous_revision(local, dagbag):
    v1, v2 = _deploy_v2(local, dagbag)
    local.client("ecs")  # warm the boto3 import before the clock starts
    with Stopwatch(local, v1) as watch:
        state, tasks = _rollback(dagbag, reason="INC-1: v2.0.0 error spike")
    assert state == "success", tasks
    assert tasks["switch_listener"] == "skipped"
    assert tasks["update_service"] == tasks["wait_for_rollout"] == tasks["verify"] == "success"
    svc = local.service()
    assert svc["taskDefinition"] == v1
    assert local.task_definition_image(v1).endswith(f"{ENV.repository}@" + local.digest("v1.0.0"))
    assert local.weights()[ENV.blue_tg] == 100
    assert watch.reached is not None
    _report("service update", watch, v1)
    texts = local.message_texts()
    assert any(f"Emergency rollback started in {ENV.name}" in t and "INC-1" in t for t in texts), texts
    assert any(f"Emergency rollback finished in {ENV.name}" in t for t in texts), texts
    record, deployed = history(limit=2)  # the rollback is a record of its own, after v2.0.0's
    assert (record.dag_id, record.strategy, record.outcome) == ("latticedb_rollback", "emergency_rollback", "succeeded"), record
    assert "INC-1" in (record.reason or "") and deployed.version == "v2.0.0", (record, deployed)


def test_switches_the_listener_back_when_the_old_colour_is_warm(local, dagbag):
    v1, v2 = _deploy_v2(local, dagbag)
    # A blue/green switch that is still baking: green kept warm on v1.0.0, blue (v2.0.0) takes 100 %.
    local.client("ecs").update_service(
        cluster=ENV.cluster, service=ENV.green_service, taskDefinition=v1, desiredCount=2
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        green = local.service(ENV.green_service)
        if green["runningCount"] == 2 and len(green["deployments"]) == 1 and _healthy_targets(local, ENV.green_tg) == 2:
            break  # warm: running and passing the target group's health checks (they lag the tasks' start)
        time.sleep(0.2)
    with Stopwatch(local, v1) as watch:
        state, tasks = _rollback(dagbag, reason="INC-2: v2.0.0 latency")
    assert state == "success", tasks
    assert tasks["switch_listener"] == "success"
    assert tasks["update_service"] == tasks["wait_for_rollout"] == "skipped"
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    assert local.service()["taskDefinition"] == v2  # the bad colour is left alone, for the post-mortem
    _report("warm colour, listener switch", watch, v1)


def test_explicit_target_revision_number(local, dagbag):
    v1, v2 = _deploy_v2(local, dagbag)
    state, tasks = _rollback(dagbag, reason="INC-3: pin revision", target_revision=v1.rsplit(":", 1)[1])
    assert state == "success", tasks
    assert local.service()["taskDefinition"] == v1


def test_nothing_older_to_roll_back_to_fails_before_any_change(local, dagbag):
    before = local.service()["taskDefinition"]
    state, tasks = _rollback(dagbag, reason="INC-4: nothing deployed yet")
    assert state == "failed" and tasks["plan"] == "failed"
    assert tasks["update_service"] == "upstream_failed"
    assert local.service()["taskDefinition"] == before


def test_a_reason_is_required(local, dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="reason"):
        run_dag(dagbag, DAG_ID, {"environment": ENV.name})


@pytest.mark.parametrize("mode", ["500", "close"])
def test_slack_down_fails_neither_a_deployment_nor_a_rollback(local, dagbag, mode):
    local.faults(slack_down=True, slack_mode=mode)
    started = time.monotonic()
    v1, v2 = _deploy_v2(local, dagbag)  # asserts the rolling deployment succeeded
    deploy_seconds = time.monotonic() - started
    state, tasks = _rollback(dagbag, reason="INC-5: Slack is down too")
    assert state == "success", tasks
    assert local.service()["taskDefinition"] == v1
    assert local.messages() == []  # nothing got through, and nothing waited for it
    print(f"\n[slack down, mode {mode}] rolling deployment succeeded in {deploy_seconds:.1f}s")


@pytest.mark.parametrize("step", [25, 60])
def test_emergency_rollback_preempts_the_deployment_in_flight(local, dagbag, step):
    """A canary sits in a long gate (its own process, as on a second scheduler); latticedb_rollback
    takes the environment by force. The canary stops at its next poll without touching traffic, and
    says who stopped it and why; traffic stays where the emergency rollback put it: all of it on the
    revision that served before the canary, also past 50 %, where the canary slot has most traffic."""
    from tests.integration.background import BackgroundRun, lock_item, wait_until

    green, blue = ENV.green_tg, ENV.blue_tg
    v1 = local.service()["taskDefinition"]
    canary = BackgroundRun("latticedb_deploy_canary", {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [step, 100], "interval_seconds": 45,
    }).start()
    try:
        wait_until(lambda: local.weights().get(green) == step, 240, f"the canary's {step}% step")
        assert lock_item(local)["owner"].startswith("latticedb_deploy_canary/")

        dr = _rollback_run(dagbag, reason="INC-6: v2.0.0 corrupts replication")
        assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
        def production():
            """The listener, and each slot's revision and size: what the emergency rollback left."""
            slots = [local.service(s) for s in SERVICES.values()]
            return local.weights(), [(s["taskDefinition"], s["desiredCount"]) for s in slots]

        restored = production()
        assert restored[0] == {blue: 100, green: 0}
        messages_before = len(local.messages())
        # From now on nobody but a person changes production: sample until the canary run ended, and a while after.
        samples = []
        deadline = time.time() + 120  # longer than the rest of the canary's gate, had it kept going
        while canary.running() and time.time() < deadline:
            samples.append(production())
            time.sleep(0.5)
        for _ in range(10):
            samples.append(production())
            time.sleep(0.5)
        code = canary.wait(30)
    finally:
        canary.stop()
    assert all(p == restored for p in samples), [p for p in samples if p != restored][:3]
    assert local.service()["taskDefinition"] == v1
    later = local.message_texts()[messages_before:]
    assert not [t for t in later if "Rollback started" in t and "Emergency" not in t], later  # no second rollback
    states = canary.task_states()
    assert code != 0, canary.output[-3000:]  # `airflow dags test`: "DagRun failed"
    assert states[f"deploy.gate_{step}pct"] == "failed", states
    assert states["deploy.shift_traffic_to_100pct"] != "success", states
    assert states["rollback.restore_previous_revision"] == "skipped", states  # the emergency rollback owns traffic
    emergency = f"latticedb_rollback/{dr.run_id}"
    stopped = [t for t in local.message_texts() if f"Deployment stopped at deploy.gate_{step}pct" in t]
    assert stopped and emergency in stopped[0] and "INC-6" in stopped[0], local.message_texts()
    assert lock_item(local).get("owner") is None  # the emergency rollback gave the environment back
