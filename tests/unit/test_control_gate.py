"""The metric gate's trigger obeys latticedb_control's signal at every poll (lease and metrics faked)."""

from __future__ import annotations

import asyncio
import time

import pytest

from latticedb_deploy.control import FAILING, apply, phase_marker
from latticedb_deploy.judge import FAIL, PASS, Evaluation
from latticedb_deploy.triggers import lease as lease_module
from latticedb_deploy.triggers import metric_gate
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger

OWNER = "latticedb_deploy_canary/manual__1"


def _signal(current, action, now):
    return apply(current, action, owner=OWNER, by="alice", reason=f"CHG {action}", now=now)


def _ev(verdict):
    return Evaluation(step=25, window_start="a", window_end="b", requests=100, error_rate=0.0, success_rate=1.0,
                      latency_ms=10.0, latency_statistic="Maximum", verdict=verdict,
                      reasons=() if verdict == PASS else ("error rate 12% is not below 5%",))


MARKS: list[str] = []  # the `failing` marks the scripted lease was asked to write, in order


def _script(monkeypatch, signals, verdicts, *, signal_per_check: bool) -> dict:
    """A fake lease whose control signal follows `signals` (one per lease check, or per evaluation made) and
    fake metrics whose verdicts follow `verdicts` (the last repeats); returns the counters."""
    real_sleep = asyncio.sleep
    monkeypatch.setattr(asyncio, "sleep", lambda seconds: real_sleep(0))
    count = {"checks": 0, "made": 0}
    MARKS.clear()

    class FakeKeeper:
        def __init__(self, environment, owner, log, config=None):
            self.signal = None

        async def check(self):
            self.signal = signals[min(count["checks" if signal_per_check else "made"], len(signals) - 1)]
            count["checks"] += 1
            return None

        async def mark_failing(self, reason):
            MARKS.append(reason)
            return True

    def evaluate(self, env, criteria, mode, interval_end, at=None):
        ev = _ev(verdicts[min(count["made"], len(verdicts) - 1)])
        count["made"] += 1
        return ev, ev.to_dict()

    monkeypatch.setattr(lease_module, "LeaseKeeper", FakeKeeper)
    monkeypatch.setattr(MetricGateTrigger, "_evaluate_with_judge", evaluate)
    return count


def _first_event(trigger) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


@pytest.fixture
def run_gate(monkeypatch):
    """Run a gate whose interval and deadline are long over, with a scripted signal and verdict per poll."""

    def run(signals, verdicts):
        count = _script(monkeypatch, signals, verdicts, signal_per_check=False)
        monkeypatch.setattr(metric_gate, "poll_instants", lambda *a: [])  # not restarted: no earlier polls
        now = time.time()
        trigger = MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                                    started_at=now - 100, interval_seconds=10, deadline=now - 60, owner=OWNER)
        return _first_event(trigger), count["made"]

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
    assert MARKS == []  # held, then passed: nothing marked


def test_a_paused_gate_still_fails(run_gate):
    pause = _signal(None, "pause", time.time())
    event, _ = run_gate([pause], [PASS, FAIL])
    assert event["passed"] is False and "error rate" in event["reason"]
    assert MARKS == [f"gate 25% failed: {event['reason']}"]  # over the pause: a resume sent now is refused


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


def _hold(monkeypatch, signals, verdicts, watch=True, since=None):
    """Run a ControlHoldTrigger with a scripted signal per lease check and, when it watches a split, a scripted
    verdict per evaluation; returns (its event, evaluations made)."""
    from latticedb_deploy.triggers.control_hold import ControlHoldTrigger

    count = _script(monkeypatch, signals, verdicts, signal_per_check=True)
    monkeypatch.setattr(metric_gate, "poll_instants", lambda *a: [])  # not restarted: no earlier polls
    split = {"step": 25, "target_group_arn": "arn:green", "load_balancer_arn": "arn:lb", "started_at": time.time(),
             "interval_seconds": 10.0, "tolerated_failures": 0, "baseline_target_group_arn": "arn:blue"}
    trigger = ControlHoldTrigger(environment="local", owner=OWNER, poll_seconds=2, watch=split if watch else None,
                                 since=since)
    again = ControlHoldTrigger(**trigger.serialize()[1])  # survives the triggerer
    assert (again.watch, again.since) == (split if watch else None, since)
    return _first_event(trigger), count["made"]


def test_a_paused_shift_still_judges_the_share_the_new_slot_serves(monkeypatch):
    """A pause between a gate's pass and the next shift: the new slot keeps its 25 %; failing metrics end
    the hold (the step fails, the rollback runs) without anyone resuming."""
    pause = _signal(None, "pause", time.time())
    event, made = _hold(monkeypatch, [pause], [PASS, PASS, FAIL])
    assert event["failed"] is True and made == 3, event
    assert event["step"] == 25 and "error rate" in event["reason"], event
    assert [r["control"] for r in event["evaluations"]] == ["paused by alice: CHG pause"] * 3
    assert MARKS == [event["reason"]]


def test_a_paused_shift_with_passing_metrics_waits_for_resume(monkeypatch):
    now = time.time()
    pause = _signal(None, "pause", now)
    event, made = _hold(monkeypatch, [pause] * 5 + [_signal(pause, "resume", now + 9)], [PASS])
    assert event["released"]["action"] == "resume" and made >= 3, event  # passing polls never end the hold
    assert MARKS == []  # held, then passed: nothing marked
    assert len(event["evaluations"]) == made


def test_a_paused_shift_tolerates_what_the_run_tolerates(monkeypatch):
    from latticedb_deploy.triggers.control_hold import ControlHoldTrigger

    monkeypatch.setattr(ControlHoldTrigger, "_gate", lambda self: MetricGateTrigger(
        environment="local", owner=None, deadline=0.0, **{**self.watch, "tolerated_failures": 1}))
    pause = _signal(None, "pause", time.time())
    event, made = _hold(monkeypatch, [pause], [FAIL, PASS, FAIL])
    assert event["failed"] is True and made == 3 and "2 failing windows" in event["reason"], event


def test_a_paused_shift_with_no_traffic_on_the_new_slot_judges_nothing(monkeypatch):
    now = time.time()
    pause = _signal(None, "pause", now)
    event, made = _hold(monkeypatch, [pause, pause, _signal(pause, "resume", now + 3)], [FAIL], watch=False)
    assert event["released"]["action"] == "resume" and made == 0, event


def test_a_pause_past_max_pause_seconds_fails_the_gate_so_the_rollback_runs(run_gate):
    """A forgotten pause (the local environment allows 4 h): the gate fails saying so, passing metrics or not."""
    pause = _signal(None, "pause", time.time() - 14401)
    event, polls = run_gate([pause], [PASS])
    assert event["passed"] is False and polls == 0, event
    assert "paused by alice: CHG pause for 240 min, longer than max_pause_seconds (14400 s)" in event["reason"]
    assert "rolling back to the last good version" in event["reason"]
    assert MARKS == [event["reason"]]


def test_a_pause_within_max_pause_seconds_still_holds(run_gate):
    now = time.time()
    pause = _signal(None, "pause", now - 14000)
    event, polls = run_gate([pause, pause, _signal(pause, "resume", now)], [PASS])
    assert event["passed"] is True and polls == 3, event
    assert MARKS == []  # held, then passed: nothing marked


def test_a_paused_shift_past_max_pause_seconds_fails_even_with_no_traffic_to_judge(monkeypatch):
    pause = _signal(None, "pause", time.time() - 14401)
    event, made = _hold(monkeypatch, [pause], [PASS], watch=False)
    assert event["failed"] is True and made == 0, event
    assert "longer than max_pause_seconds (14400 s)" in event["reason"]
    assert MARKS == [event["reason"]]


def test_what_counts_as_a_pause_past_its_limit():
    from latticedb_deploy.control import pause_expired

    now = time.time()
    pause = _signal(None, "pause", now - 100)
    assert pause_expired(None, now, 60) is None
    assert pause_expired(pause, now, 100) is None  # exactly at the limit: not yet
    assert "for 2 min, longer than max_pause_seconds (99 s)" in pause_expired(pause, now, 99)
    assert pause_expired(_signal(pause, "resume", now), now, 1) is None  # resumed: nothing held
    assert pause_expired(_signal(None, "abort", now - 1e6), now, 1) is None


# ------------------------------------------------------------------ restarted after its own failing mark
def _mark_over_a_pause():
    paused = _signal(None, "pause", time.time() - 30)
    return phase_marker(FAILING, paused, owner=OWNER, now=time.time(),
                        reason="gate 25% failed: error rate 12% is not below 5%")


def test_a_gate_restarted_after_it_marked_the_run_failing_fails_at_once_with_that_verdict(run_gate):
    """The triggerer restarted between the gate's mark (over a pause, which nobody can resume now: control refuses
    it over the mark) and its event: the rebuilt gate does not judge again (passing metrics would hold it for good
    under the pause), it fails with the verdict on the lease."""
    event, polls = run_gate([_mark_over_a_pause()], [PASS])
    assert event["passed"] is False and polls == 0, event
    assert event["reason"] == "error rate 12% is not below 5%" and "control" not in event, event
    assert MARKS == []  # marked already


def test_a_hold_restarted_after_it_marked_the_run_failing_fails_at_once_with_that_verdict(monkeypatch):
    mark = _mark_over_a_pause()
    event, made = _hold(monkeypatch, [mark], [PASS], since=mark.at - 60)
    assert event["failed"] is True and made == 0 and event["reason"] == mark.reason, event
    assert MARKS == []


def test_a_hold_that_began_after_a_mark_does_not_take_it_for_its_own_verdict(monkeypatch):
    mark = _mark_over_a_pause()
    event, made = _hold(monkeypatch, [mark], [PASS], since=mark.at + 1)
    assert "failed" not in event and event["released"]["action"] == FAILING, event  # not paused: let go
