"""The waits hold no worker slot: sensors defer to triggers that survive serialization, and resume."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from latticedb_deploy.judge import FAIL, PASS, Evaluation
from latticedb_deploy.sensors.metric_gate import MetricGateSensor
from latticedb_deploy.triggers.ecs_rollout import EcsRolloutTrigger
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger

BASELINE = {
    "colour": "blue", "service": "latticedb-service-local", "target_group_arn": "arn:blue",
    "idle_colour": "green", "idle_service": "latticedb-service-local-green", "idle_target_group_arn": "arn:green",
    "task_definition": "arn:td:1", "desired_count": 2, "weights": {},
}


class FakeTI:
    def __init__(self):
        self.pushed = {}

    def xcom_pull(self, task_ids, key="return_value"):
        return None  # the gate's inputs are arguments, not pulled by task id

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _roundtrip(trigger):
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    clone = getattr(importlib.import_module(module), name)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    return clone


def test_triggers_round_trip_through_serialize():
    gate = MetricGateTrigger(
        environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
        started_at=1000.0, interval_seconds=10, deadline=1040.0, tolerated_failures=1,
    )
    assert _roundtrip(gate).tolerated_failures == 1
    rollout = EcsRolloutTrigger(environment="local", service="s", task_definition="arn:td:2", poll_seconds=1, deadline=5.0)
    assert _roundtrip(rollout).task_definition == "arn:td:2"
    aborting = EcsRolloutTrigger(environment="local", service="s", task_definition="arn:td:2", poll_seconds=1,
                                 deadline=5.0, abortable=True)
    assert _roundtrip(aborting).abortable is True
    from latticedb_deploy.triggers.control_hold import ControlHoldTrigger

    hold = ControlHoldTrigger(environment="local", owner="latticedb_deploy_canary/r", poll_seconds=2)
    assert _roundtrip(hold).owner == "latticedb_deploy_canary/r"


@pytest.fixture
def gate(monkeypatch):
    from latticedb_deploy.aws.elbv2 import TrafficClient

    monkeypatch.setattr(TrafficClient, "__init__", lambda self, env, client=None: None)
    monkeypatch.setattr(TrafficClient, "load_balancer_arn", lambda self: "arn:lb")
    op = MetricGateSensor(task_id="gate_25pct", percent=25, baseline=BASELINE)
    op.environment, op.tolerated_failures = "local", 0  # what template rendering would give
    return op


def test_gate_defers_with_its_step_and_skips_steps_outside_the_plan(gate):
    from airflow.sdk.exceptions import AirflowSkipException

    context = {"params": {"traffic_steps": [25, 50, 100], "interval_seconds": 30}, "ti": FakeTI()}
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute(context)
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete"
    assert isinstance(trigger, MetricGateTrigger)
    assert (trigger.step, trigger.interval_seconds, trigger.target_group_arn) == (25, 30, "arn:green")
    gate.percent = 10
    with pytest.raises(AirflowSkipException):
        gate.execute(context)


def test_a_gate_takes_the_load_balancer_from_the_baseline_without_asking_aws(monkeypatch):
    """prepare.record_baseline records the load balancer's ARN; a gate's start on the worker then builds no
    ELB client and makes no ELB call (a baseline recorded by an older version is still looked up)."""
    from latticedb_deploy.aws.elbv2 import TrafficClient

    def no_elb(self, env, client=None):
        raise AssertionError("the gate built an ELB client")

    monkeypatch.setattr(TrafficClient, "__init__", no_elb)
    op = MetricGateSensor(task_id="gate_25pct", percent=25, baseline={**BASELINE, "load_balancer_arn": "arn:lb:recorded"})
    op.environment, op.tolerated_failures = "local", 0
    context = {"params": {"traffic_steps": [25, 100], "interval_seconds": 4}, "ti": FakeTI()}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.trigger.load_balancer_arn == "arn:lb:recorded"
    old = MetricGateSensor(task_id="gate_25pct", percent=25, baseline=BASELINE)
    old.environment, old.tolerated_failures = "local", 0
    with pytest.raises(AssertionError, match="built an ELB client"):
        old.execute(context)


def test_gates_where_the_stable_slot_serves_nothing_judge_it_on_its_window_before_the_switch(gate):
    """Below 100 % both slots take traffic in the gate's own window; at 100 % (and in the blue/green bake)
    the old slot is judged on its last window before the switch, at least min_samples periods long."""
    import time

    from latticedb_deploy.config import load_config

    env = load_config().environment("local")
    need = env.judge.min_samples * env.judge_period_seconds
    context = {"params": {"traffic_steps": [25, 100], "interval_seconds": 4}, "ti": FakeTI()}
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute(context)
    assert (deferred.value.trigger.baseline_target_group_arn, deferred.value.trigger.baseline_window) == ("arn:blue", None)

    gate.percent = 100
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute(context)
    trigger = deferred.value.trigger
    start, end = trigger.baseline_window
    assert trigger.baseline_target_group_arn == "arn:blue" and trigger.target_group_arn == "arn:green"
    assert before <= end <= time.time() and end - start >= max(4, need)
    assert trigger.baseline_periods == env.judge.min_samples  # 4 s of 1 s periods is fewer than min_samples
    assert _roundtrip(trigger).baseline_window == [start, end]

    bake = MetricGateSensor(task_id="bake", percent=100, interval_seconds="30", baseline=BASELINE)
    bake.environment, bake.tolerated_failures = "local", 0
    with pytest.raises(TaskDeferred) as deferred:
        bake.execute({"params": {}, "ti": FakeTI()})
    start, end = deferred.value.trigger.baseline_window
    assert deferred.value.trigger.baseline_target_group_arn == "arn:blue" and end - start >= max(30, need)
    assert deferred.value.trigger.baseline_periods == max(30 // env.judge_period_seconds, env.judge.min_samples)


def test_the_judge_reads_each_side_from_its_own_window(monkeypatch):
    """With a baseline window the baseline's samples come from it and the canary's from the gate's window."""
    from latticedb_deploy.aws.cloudwatch import MetricsClient

    calls = []

    def samples(self, *, target_group_arns, start, end, **kw):
        calls.append((dict(target_group_arns), start.timestamp(), end.timestamp()))
        if "baseline" in target_group_arns:  # 30 periods, of which the newest 12 were before the switch
            return {"baseline": {"error_rate": [0.5] * 18 + [0.002] * 12, "success_rate": [0.5] * 18 + [0.998] * 12,
                                 "latency": [900.0] * 18 + [110.0] * 12}}
        return {label: {"error_rate": [0.002] * 12, "success_rate": [0.998] * 12, "latency": [110.0] * 12}
                for label in target_group_arns}

    monkeypatch.setattr(MetricsClient, "__init__", lambda self, env, client=None: None)
    monkeypatch.setattr(MetricsClient, "target_group_samples", samples)
    trigger = MetricGateTrigger(
        environment="local", step=100, target_group_arn="arn:green", load_balancer_arn="arn:lb",
        started_at=2000.0, interval_seconds=10, deadline=2100.0, baseline_target_group_arn="arn:blue",
        baseline_window=[1980.0, 1999.0], baseline_periods=12,
    )
    from latticedb_deploy.config import load_config

    verdict = trigger._judge(load_config().environment("local"))
    assert calls[0][:1] == ({"baseline": "arn:blue"},) and calls[0][1:] == (1980.0, 1999.0)
    assert calls[1][0] == {"canary": "arn:green"} and calls[1][1] == 2000.0
    assert verdict.verdict == "pass"  # judged on the newest 12 baseline periods only
    assert all(m.baseline_n == 12 for m in verdict.results)


def test_gate_resumes_and_decides(gate):
    ti = FakeTI()
    record = {"step": 25, "verdict": "pass", "requests": 120}
    assert gate.execute_complete({"ti": ti}, {"passed": True, "reason": "ok", "step": 25, "evaluations": [record]})["passed"]
    assert ti.pushed["evaluations"] == [record]
    with pytest.raises(AirflowFailException, match="gate 25% failed: error rate"):
        gate.execute_complete({"ti": ti}, {"passed": False, "reason": "error rate 12%", "step": 25, "evaluations": []})


def _evaluation(verdict: str) -> Evaluation:
    return Evaluation(
        step=25, window_start="", window_end="", requests=100, error_rate=0.12 if verdict == FAIL else 0.0,
        success_rate=0.88 if verdict == FAIL else 1.0, latency_ms=100.0, latency_statistic="Maximum",
        verdict=verdict, reasons=("error rate 12.0% is not below the maximum 5.0%",) if verdict == FAIL else (),
    )


@pytest.mark.parametrize(("verdicts", "passed"), [([PASS, PASS, PASS], True), ([PASS, FAIL], False)])
def test_trigger_fires_once_with_the_verdict(monkeypatch, verdicts, passed):
    import time

    seq = iter(verdicts + [verdicts[-1]] * 20)
    trigger = MetricGateTrigger(
        environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
        started_at=time.time(), interval_seconds=3.0, deadline=time.time() + 10,
    )
    monkeypatch.setattr(trigger, "_evaluate", lambda env, criteria, at=None: _evaluation(next(seq)))

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["passed"] is passed and payload["step"] == 25 and payload["evaluations"]


def test_an_old_slot_with_too_little_history_leaves_the_gate_to_the_thresholds(monkeypatch):
    """A past baseline window cannot grow by waiting: with too few periods in it the relative judge says it
    does not apply (in the XCom record) and the thresholds decide, instead of a gate that can only time out."""
    import time

    from latticedb_deploy.aws.cloudwatch import MetricsClient
    from latticedb_deploy.config import load_config
    from latticedb_deploy.judge import GateCriteria

    def samples(self, *, target_group_arns, **kw):
        n = 6 if "baseline" in target_group_arns else 12
        return {label: {"error_rate": [0.002] * n, "success_rate": [0.998] * n, "latency": [110.0] * n}
                for label in target_group_arns}

    monkeypatch.setattr(MetricsClient, "__init__", lambda self, env, client=None: None)
    monkeypatch.setattr(MetricsClient, "target_group_samples", samples)
    now = time.time()
    trigger = MetricGateTrigger(
        environment="local", step=100, target_group_arn="arn:green", load_balancer_arn="arn:lb",
        started_at=now - 12, interval_seconds=10, deadline=now + 30, baseline_target_group_arn="arn:blue",
        baseline_window=[now - 400, now - 12], baseline_periods=10,
    )
    monkeypatch.setattr(trigger, "_evaluate", lambda env, criteria, at=None: _evaluation(PASS))
    env = load_config().environment("local")
    ev, record = trigger._evaluate_with_judge(env, GateCriteria.for_gate(env), "both", now - 2)
    assert ev.verdict == PASS and "served 6 periods before the switch (need 10)" in record["relative_skipped"]
    # The same short history over the gate's own window (both slots serving) is NoData: never a pass.
    trigger.baseline_window = None
    ev, record = trigger._evaluate_with_judge(env, GateCriteria.for_gate(env), "both", now - 2)
    assert ev.verdict != PASS and "relative_skipped" not in record


def test_a_rollout_wait_builds_its_ecs_client_once_and_again_after_a_poll_that_failed(monkeypatch):
    """Every poll of one rollout asks ECS with the same client; a failed poll gets a new one (a rotated
    connection is read anew)."""
    import asyncio

    from latticedb_deploy import rollout
    from latticedb_deploy.aws import ecs

    built, polls = [], iter(["in_progress", "error", "in_progress", rollout.COMPLETED])

    class CountedEcs:
        def __init__(self, env):
            built.append(self)

        def describe_service(self, service):
            state = next(polls)
            if state == "error":
                raise RuntimeError("ExpiredToken")
            return {"state": state, "by": self}

    monkeypatch.setattr(ecs, "EcsClient", CountedEcs)
    seen = []
    monkeypatch.setattr(rollout, "rollout_status", lambda svc, td, **kw: seen.append(svc["by"]) or type(
        "S", (), {"to_dict": lambda self: {"state": svc["state"], "reason": svc["state"]}})())
    trigger = EcsRolloutTrigger(environment="local", service="s", task_definition="arn:td:2", poll_seconds=0.01,
                                deadline=9e12)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event())["status"] == rollout.COMPLETED
    assert len(built) == 2 and seen == [built[0], built[1], built[1]]


def test_a_gate_builds_its_cloudwatch_client_once_per_wait_and_again_after_a_poll_that_failed(monkeypatch):
    """Every poll of one gate (evaluation and relative judgement) queries CloudWatch with the same client,
    one connection lookup per wait; a failed poll gets a new one (a rotated connection is read anew)."""
    import time

    from latticedb_deploy.aws import cloudwatch

    built, polls = [], iter(["ok", "error", "ok", "ok", "ok", "ok"] + ["ok"] * 20)

    class CountedMetrics:
        def __init__(self, env, client=None):
            built.append(self)

        def target_group_window(self, **kw):
            if next(polls) == "error":
                raise RuntimeError("ExpiredToken")
            return self

    used = []
    monkeypatch.setattr(cloudwatch, "MetricsClient", CountedMetrics)
    monkeypatch.setattr("latticedb_deploy.judge.evaluate", lambda step, window, criteria: used.append(window) or _evaluation(PASS))
    trigger = MetricGateTrigger(
        environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
        started_at=time.time(), interval_seconds=0.2, deadline=time.time() + 30,
    )
    monkeypatch.setattr(trigger, "_env", lambda: _fast_polls())

    async def first_event():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event())["passed"] is True
    assert len(built) == 2 and used[0] is built[0] and set(used[1:]) == {built[1]}


def _fast_polls():
    """The local environment with CloudWatch polled every 0.05 s and the thresholds alone judging."""
    from dataclasses import replace

    from latticedb_deploy.config import load_config

    env = load_config().environment("local")
    return replace(env, metrics=replace(env.metrics, poll_seconds=0.05), judge=replace(env.judge, mode="absolute"))


def test_a_wait_keeps_its_lease_client_and_builds_it_again_after_a_renewal_that_failed(monkeypatch):
    """The lease is renewed at every poll with the wait's one client; a renewal that failed (an expired key,
    throttling) is retried at the next poll with a new client, so a rotated connection does not let the
    lease run out while the run waits."""
    from latticedb_deploy.aws import locks
    from latticedb_deploy.triggers.lease import LeaseKeeper

    built, renewals = [], iter(["ok", "ok", "error", "ok", "ok"])

    class CountedLock:
        def __init__(self, env):
            built.append(self)

        def renew(self, owner):
            if next(renewals) == "error":
                raise RuntimeError("ExpiredTokenException")
            return type("Holder", (), {"signal": None, "control": None})()

    monkeypatch.setattr(locks, "EnvironmentLock", CountedLock)
    keeper = LeaseKeeper("local", "latticedb_deploy_canary/run-1", log=type("L", (), {"warning": print, "error": print})())
    assert [asyncio.run(keeper.check()) for _ in range(5)] == [None] * 5
    assert len(built) == 2
