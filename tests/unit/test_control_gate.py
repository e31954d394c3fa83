"""The metric gate's trigger obeys latticedb_control's signal at every poll (lease and metrics faked)."""

from __future__ import annotations

import asyncio
import time

import pytest

from latticedb_deploy.control import apply
from latticedb_deploy.judge import FAIL, PASS, Evaluation
from latticedb_deploy.triggers import lease as lease_module
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger

OWNER = "latticedb_deploy_canary/manual__1"


def _signal(current, action, now):
    return apply(current, action, owner=OWNER, by="alice", reason=f"CHG {action}", now=now)


def _ev(verdict):
    return Evaluation(step=25, window_start="a", window_end="b", requests=100, error_rate=0.0, success_rate=1.0,
                      latency_ms=10.0, latency_statistic="Maximum", verdict=verdict,
                      reasons=() if verdict == PASS else ("error rate 12% is not below 5%",))


@pytest.fixture
def run_gate(monkeypatch):
    """Run a gate whose interval and deadline are long over, with a scripted signal and verdict per poll."""
    real_sleep = asyncio.sleep
    monkeypatch.setattr(asyncio, "sleep", lambda seconds: real_sleep(0))

    def run(signals, verdicts):
        polls = {"n": 0}

        class FakeKeeper:
            def __init__(self, environment, owner, log, config=None):
                self.signal = None

            async def check(self):
                self.signal = signals[min(polls["n"], len(signals) - 1)]
                return None

        def evaluate(self, env, criteria, mode, interval_end):
            ev = _ev(verdicts[min(polls["n"], len(verdicts) - 1)])
            polls["n"] += 1
            return ev, ev.to_dict()

        monkeypatch.setattr(lease_module, "LeaseKeeper", FakeKeeper)
        monkeypatch.setattr(MetricGateTrigger, "_evaluate_with_judge", evaluate)
        now = time.time()
        trigger = MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                                    started_at=now - 100, interval_seconds=10, deadline=now - 60, owner=OWNER)

        async def first():
            async for event in trigger.run():
                return event.payload

        return asyncio.run(first()), polls["n"]

    return run


def test_a_pause_holds_a_passing_gate_past_its_interval_and_deadline_until_resume(run_gate):
    now = time.time()
    pause = _signal(None, "pause", now - 50)
    resume = _signal(pause, "resume", now)
    event, polls = run_gate([pause, pause, pause, resume], [PASS])
    assert event["passed"] is True and polls == 4  # three held passing evaluations, then the pass
    assert [e["action"] for e in event["control_log"]] == ["pause", "resume"]
    assert event["control_log"][0]["by"] == "alice"
    assert [r.get("control") for r in event["evaluations"]][:3] == ["paused by alice: CHG pause"] * 3


def test_a_paused_gate_still_fails(run_gate):
    pause = _signal(None, "pause", time.time())
    event, _ = run_gate([pause], [PASS, FAIL])
    assert event["passed"] is False and "error rate" in event["reason"]


def test_abort_fails_the_gate_with_the_reason_before_evaluating(run_gate):
    event, polls = run_gate([_signal(None, "abort", time.time())], [PASS])
    assert event["passed"] is False and event["reason"] == "aborted by alice: CHG abort" and polls == 0
    assert event["control"]["action"] == "abort"


def test_promote_passes_the_gate_at_once(run_gate):
    event, polls = run_gate([_signal(None, "promote", time.time())], [FAIL])
    assert event["passed"] is True and event["control"]["action"] == "promote" and polls == 0
    assert event["reason"] == "promoted by alice: CHG promote"


def test_a_paused_shift_waits_deferred_until_the_pause_is_lifted(monkeypatch):
    from latticedb_deploy.triggers.control_hold import ControlHoldTrigger

    real_sleep = asyncio.sleep
    monkeypatch.setattr(asyncio, "sleep", lambda seconds: real_sleep(0))
    now = time.time()
    pause = _signal(None, "pause", now)
    script = iter([pause, pause, _signal(pause, "resume", now + 5)])

    class FakeKeeper:
        def __init__(self, environment, owner, log, config=None):
            self.signal = None

        async def check(self):
            self.signal = next(script)
            return None

    monkeypatch.setattr(lease_module, "LeaseKeeper", FakeKeeper)

    async def first():
        async for event in ControlHoldTrigger(environment="local", owner=OWNER, poll_seconds=2).run():
            return event.payload

    event = asyncio.run(first())
    assert event["released"]["action"] == "resume" and event["released"]["paused_by"] == "alice"
