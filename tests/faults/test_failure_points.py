"""The promise, proven point by point: whatever task of deploy or verify fails, production ends on the
last good version with 100 % of traffic, and traffic never goes to a slot with no running tasks.

For each strategy and each task of its `deploy` and `verify` groups (those after promotion
included), the local environment makes exactly that task fail (an AWS error on the call only that
task makes, a crashing image, errors on one target group, /health down), while a sampler checks
every 0.5 s that every target group with weight > 0 on the production listener has running tasks.
Production code knows nothing of it. At the end: 100 % on blue running v1.0.0's revision with
healthy targets, green at 0, the lease released, Slack messages in order, a deployment-log entry
that names the failed step. The matrix is printed (run with -s) and kept in the README.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.envs import ENV
from tests.faults.driver import faults
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration

BLUE_TG, GREEN_TG = ENV.blue_tg, ENV.green_tg
SERVICES = {BLUE_TG: ENV.service, GREEN_TG: ENV.green_service}
RESULTS: list[dict] = []


@dataclass(frozen=True)
class FailurePoint:
    """How to make one task fail through the local environment.

    `tag`: the image to deploy; `faults`: the local environment's toggles set before the run (an
    `arm` toggle sets others when the deployment makes a given AWS call, so a later step fails at a
    moment fixed by what the deployment does, not by a clock). Every fault is cleared as soon as
    `task` has failed (the outage, AWS error or error spike is over, as it would be), so the
    rollback meets a working world.
    """

    strategy: str
    task: str
    how: str
    tag: str = "v2.0.0"
    faults: dict = field(default_factory=dict)
    changes_production: bool = True  # False: it fails before anything changed (rollback skips)

    @property
    def id(self) -> str:
        return f"{self.strategy}:{self.task}"


def deny(operation: str, nth: int = 1) -> dict:
    return {"deny": {"operation": operation, "nth": nth}}


def on_call(operation: str, nth: int, **toggles) -> dict:
    """Set `toggles` when the deployment makes its nth `operation` call."""
    return {"arm": {"on": operation, "nth": nth, "set": toggles}}


HEALTH_DOWN = {"health_down": True}
GREEN_ERRORS = {"slot_errors": {GREEN_TG: 0.5}}
BLUE_ERRORS = {"slot_errors": {BLUE_TG: 0.5}}

POINTS = [
    # rolling: the live (blue) service itself is updated
    FailurePoint("rolling", "deploy.update_service", "AWS denies UpdateService", faults=deny("UpdateService"),
                 changes_production=False),
    FailurePoint("rolling", "deploy.wait_for_rollout", "image crashes on start", tag="v2.3.0-crash"),
    FailurePoint("rolling", "verify.smoke_tests", "/health down after the rollout",
                 faults=on_call("UpdateService", 1, **HEALTH_DOWN)),
    FailurePoint("rolling", "verify.post_deployment_checks", "50 % errors after smoke tests",
                 faults=on_call("UpdateService", 1, **BLUE_ERRORS)),
    # canary [50, 100]: green is the canary slot
    FailurePoint("canary", "deploy.deploy_canary_service", "AWS denies UpdateService", faults=deny("UpdateService"),
                 changes_production=False),
    FailurePoint("canary", "deploy.wait_for_canary_stable", "image crashes on start", tag="v2.3.0-crash"),
    FailurePoint("canary", "deploy.smoke_test_canary", "/health down on the test listener",
                 faults=on_call("UpdateService", 1, test_health_down=True)),
    FailurePoint("canary", "deploy.shift_traffic_to_50pct", "AWS denies ModifyListener", faults=deny("ModifyListener")),
    FailurePoint("canary", "deploy.gate_50pct", "image answers 12 % errors", tag="v2.1.0-errors"),
    FailurePoint("canary", "deploy.shift_traffic_to_100pct", "AWS denies the 2nd ModifyListener",
                 faults=deny("ModifyListener", 2)),
    FailurePoint("canary", "deploy.gate_100pct", "50 % errors at 100 %",
                 faults=on_call("ModifyListener", 2, **GREEN_ERRORS)),
    FailurePoint("canary", "deploy.retire_old_stable", "AWS denies the 2nd UpdateService",
                 faults=deny("UpdateService", 2)),
    FailurePoint("canary", "verify.smoke_tests", "/health down after promotion",
                 faults=on_call("UpdateService", 2, **HEALTH_DOWN)),
    FailurePoint("canary", "verify.post_deployment_checks", "50 % errors after promotion",
                 faults=on_call("UpdateService", 2, **GREEN_ERRORS)),
    # blue/green: green is the idle colour
    FailurePoint("blue_green", "deploy.deploy_idle_colour", "AWS denies UpdateService", faults=deny("UpdateService"),
                 changes_production=False),
    FailurePoint("blue_green", "deploy.wait_for_idle_colour_stable", "image crashes on start", tag="v2.3.0-crash"),
    FailurePoint("blue_green", "deploy.smoke_test_idle_colour", "/health down on the test listener",
                 faults=on_call("UpdateService", 1, **HEALTH_DOWN)),
    FailurePoint("blue_green", "deploy.switch_traffic", "AWS denies the switch (2nd ModifyListener)",
                 faults=deny("ModifyListener", 2)),
    FailurePoint("blue_green", "deploy.bake", "50 % errors while baking",
                 faults=on_call("ModifyListener", 2, **GREEN_ERRORS)),
    FailurePoint("blue_green", "deploy.scale_down_old_colour", "AWS denies the 2nd UpdateService",
                 faults=deny("UpdateService", 2)),
    FailurePoint("blue_green", "verify.smoke_tests", "/health down after the old colour is gone",
                 faults=on_call("UpdateService", 2, **HEALTH_DOWN)),
    FailurePoint("blue_green", "verify.post_deployment_checks", "50 % errors after the old colour is gone",
                 faults=on_call("UpdateService", 2, **GREEN_ERRORS)),
]
# deploy.approve_switch is not a failure point: a rejection is an outcome of its own (tested with
# blue/green and progressive delivery), and with approval off it is skipped.

CONF = {
    "rolling": {},
    "canary": {"traffic_steps": [50, 100], "interval_seconds": 4},
    "blue_green": {"bake_seconds": 4, "require_approval": False},
}


class OutageSampler:
    """Every 0.5 s: does every target group with weight > 0 on the production listener have running tasks?"""

    def __init__(self, local):
        self.local = local
        self.samples = 0
        self.outages: list[tuple[float, dict, dict]] = []
        self.history: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        weights = self.local.weights()
        running = {tg: self.local.service(svc)["runningCount"] for tg, svc in SERVICES.items()}
        if self.local.weights() != weights:  # the listener moved while we read the services: no snapshot
            return
        self.samples += 1
        self.history.append((time.time(), weights))
        if any(w > 0 and running.get(tg, 0) == 0 for tg, w in weights.items()):
            self.outages.append((time.time(), weights, running))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - an endpoint fault must not kill the sampler
                pass
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


class FaultScript(threading.Thread):
    """Clears every fault as soon as the point's task has failed, in this test's run: an earlier test's run of
    the same DAG in this worker's database (test_blue_green.py's failed bake, say) must not clear the faults
    before this run meets them."""

    def __init__(self, local, dag_id: str, point: FailurePoint, started: float):
        super().__init__(daemon=True)
        self.local, self.dag_id, self.point, self.started = local, dag_id, point, started
        self.failed_at: float | None = None
        self._halt = threading.Event()
        self._before = self._latest_run_id()  # runs up to this one are other tests'

    def _latest_run_id(self) -> int:
        from airflow.models.dagrun import DagRun
        from airflow.settings import Session
        from sqlalchemy import func, select

        with Session() as session:
            return session.scalar(select(func.max(DagRun.id)).where(DagRun.dag_id == self.dag_id)) or 0

    def _states(self) -> dict[str, str]:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.settings import Session
        from sqlalchemy import select

        with Session() as session:
            run = session.scalars(
                select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.id > self._before)
                .order_by(DagRun.id.desc()).limit(1)
            ).first()
            if run is None:
                return {}
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(
                    TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == run.run_id
                )
            ).all()
            return {t: str(s) if s is not None else "" for t, s in rows}

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                states = self._states()
            except Exception:  # noqa: BLE001 - sqlite busy: look again
                states = {}
            if states.get(self.point.task) == "failed":
                self.failed_at = self.failed_at or time.time()
                try:
                    faults(self.local, arm=None, deny=None, slot_errors=None, health_down=False, test_health_down=False)
                    return
                except Exception:  # noqa: BLE001 - the stand-in busy or slow: clearing must not give up
                    pass
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _seconds_to_restore(history: list[tuple[float, dict]], failed_at: float | None) -> float | None:
    """From the failed task to the first sample with 100 % on blue (0 when traffic never left it)."""
    if failed_at is None:
        return None
    before = [w for t, w in history if t <= failed_at]
    if before and before[-1].get(BLUE_TG) == 100:
        return 0.0
    after = [t for t, w in history if t > failed_at and w.get(BLUE_TG) == 100]
    return round(after[0] - failed_at, 1) if after else None


def _test_listener_needs_a_change(local) -> bool:
    """Blue/green's smoke test points the test listener at green (one ModifyListener call) unless it is there already."""
    elb = local.client("elbv2")
    lb = elb.describe_load_balancers(Names=[ENV.alb])["LoadBalancers"][0]["LoadBalancerArn"]
    port = ENV.config.load_balancer.test_listener_port
    listener = next(x for x in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] if x["Port"] == port)
    groups = (listener["DefaultActions"][0].get("ForwardConfig") or {}).get("TargetGroups") or []
    live = [g["TargetGroupArn"].split("/")[-2] for g in groups if g.get("Weight", 1)] or [
        listener["DefaultActions"][0].get("TargetGroupArn", "").split("/")[-2]]
    return live != [GREEN_TG]


def _one_call_earlier(toggles: dict, operation: str) -> dict:
    out = dict(toggles)
    for key in ("deny", "arm"):
        spec = out.get(key)
        op = spec and (spec.get("operation") or spec.get("on"))
        if op == operation and spec.get("nth", 1) > 1:
            out[key] = {**spec, "nth": spec["nth"] - 1}
    return out


def _lease_holder(local) -> dict | None:
    item = local.client("dynamodb").get_item(
        TableName="latticedb-deploy-locks", Key={"environment": {"S": ENV.name}}, ConsistentRead=True
    ).get("Item")
    if not item or "owner" not in item:
        return None
    return item


def _healthy_targets(local, tg_name: str) -> int:
    elb = local.client("elbv2")
    arn = elb.describe_target_groups(Names=[tg_name])["TargetGroups"][0]["TargetGroupArn"]
    desc = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return sum(1 for d in desc if d["TargetHealth"]["State"] == "healthy")


@pytest.fixture
def deployment_log(monkeypatch, tmp_path):
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))
    return tmp_path / ".local" / "DEPLOYMENT_LOG.md"


@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
def test_failure_point_ends_on_last_good_version_with_no_outage(local, dagbag, deployment_log, point):
    dag_id = f"latticedb_deploy_{point.strategy}"
    before = local.service(SERVICES[BLUE_TG])
    toggles = dict(point.faults)
    if point.strategy == "blue_green" and not _test_listener_needs_a_change(local):
        toggles = _one_call_earlier(toggles, "ModifyListener")  # the smoke test's test-listener call is skipped
    if toggles:
        faults(local, **toggles)
    started = time.time()
    script = FaultScript(local, dag_id, point, started)
    script.start()
    try:
        with OutageSampler(local) as sampler:
            dr = run_dag_run(dagbag, dag_id, {"image_uri": image(point.tag), "environment": ENV.name, **CONF[point.strategy]})
            sampler.sample()
    finally:
        script.stop()
        left = faults(local)  # what was still set or armed when the run ended (says why a fault never fired)
        faults(local, arm=None, deny=None, slot_errors=None, health_down=False, test_health_down=False)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    restore_seconds = _seconds_to_restore(sampler.history, script.failed_at)
    blue, green = local.service(SERVICES[BLUE_TG]), local.service(SERVICES[GREEN_TG])
    RESULTS.append({
        "point": point, "state": dr.state, "failed": states.get(point.task), "weights": local.weights(),
        "blue": blue["taskDefinition"].split("/")[-1], "outages": len(sampler.outages), "samples": sampler.samples,
        "restore_seconds": restore_seconds,
    })

    # exactly that task failed, and the run says so
    assert dr.state == "failed", (states, toggles, {k: left.get(k) for k in ("arm", "deny", "slot_errors", "health_down")})
    assert states[point.task] == "failed", states
    # 100 % on one slot running the last good revision with healthy targets; the other slot at 0
    assert local.weights() == {BLUE_TG: 100, GREEN_TG: 0}
    assert blue["taskDefinition"] == before["taskDefinition"]
    assert local.task_definition_image(blue["taskDefinition"]).endswith(f"{ENV.repository}@" + local.digest("v1.0.0"))
    assert blue["runningCount"] == blue["desiredCount"] == before["desiredCount"]
    assert _healthy_targets(local, BLUE_TG) == before["desiredCount"]
    assert green["desiredCount"] == 0
    # never a moment with traffic on a slot that has no running task
    assert not sampler.outages, sampler.outages[:5]
    # the lease is given back
    assert _lease_holder(local) is None
    # Slack: started, the failure naming the task, then rollback started -> finished (when anything changed)
    texts = local.message_texts()

    def first(fragment: str) -> int:
        return next((i for i, t in enumerate(texts) if fragment in t), -1)

    assert first("deployment started") == 0, texts
    assert first(f"Deployment failed at {point.task}") > 0, texts
    if point.changes_production:
        assert states["rollback.notify_rollback"] == "success", states
        assert 0 < first("Rollback started") < first("Rollback finished"), texts
        assert first(f"Deployment failed at {point.task}") < first("Rollback finished"), texts
    else:
        assert states["rollback.restore_previous_revision"] == "skipped", states
        assert first("Rollback started") == -1, texts
    # the deployment log names the failure
    log = deployment_log.read_text()
    assert f"failed at {point.task}" in log, log
    assert ("rolled back" if point.changes_production else "failed before change") in log, log


def _matrix() -> str:
    lines = [
        "| strategy | failure point | how it fails | run | end state (weights, blue revision) | outage samples | seconds to restore |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        p = r["point"]
        w = r["weights"]
        end = f"blue {w.get(BLUE_TG)} / green {w.get(GREEN_TG)}, {r['blue']}"
        secs = "-" if r["restore_seconds"] is None else f"{r['restore_seconds']}"
        lines.append(
            f"| {p.strategy} | `{p.task}` | {p.how} | {r['state']} | {end} | {r['outages']}/{r['samples']} | {secs} |"
        )
    return "\n".join(lines)


def teardown_module(module):
    if RESULTS:
        print("\n\nFailure-point matrix\n" + _matrix())


def test_a_rollback_that_restores_an_unhealthy_service_is_not_called_finished(local, dagbag, deployment_log):
    """The rollback is verified as the runbook does: /health on the restored version. With /health down
    (the fault stays on), traffic is back on v1.0.0 but the rollback says it is not healthy, loudly."""
    faults(local, **on_call("ModifyListener", 1, **HEALTH_DOWN))
    try:
        dr = run_dag_run(dagbag, "latticedb_deploy_canary", {
            "image_uri": image("v2.1.0-errors"), "environment": ENV.name, **CONF["canary"],
        })
    finally:
        faults(local, arm=None, health_down=False)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert states["deploy.gate_50pct"] == "failed", states
    assert states["rollback.shift_traffic_back"] == "success", states
    assert states["rollback.notify_rollback"] == "failed", states
    assert local.weights() == {BLUE_TG: 100, GREEN_TG: 0}
    texts = local.message_texts()
    assert not any("Rollback finished" in t for t in texts), texts
    incident = next(t for t in texts if "ROLLBACK FAILED: manual action needed" in t)
    assert "rollback.notify_rollback" in incident and "/health" in incident and "not healthy" in incident, incident
    assert _lease_holder(local) is not None  # kept locked until a person clears it
