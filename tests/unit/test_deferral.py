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
        return BASELINE if task_ids == "prepare.record_baseline" else None

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
    op = MetricGateSensor(task_id="gate_25pct", percent=25)
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
    monkeypatch.setattr(trigger, "_evaluate", lambda env, criteria: _evaluation(next(seq)))

    async def first_event():
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["passed"] is passed and payload["step"] == 25 and payload["evaluations"]
