"""A triggerer restart changes when a wait ends, never how: the matrix.

A restarted trigger is built anew from its serialized arguments: whatever the wait had seen is gone. A
gate (MetricGateTrigger) and a paused shift's hold (ControlHoldTrigger) judge their earlier polls again
over CloudWatch's past windows (`replay`) and go on polling on their grid. For every metric history below,
every tolerated-failures budget, a pause or none (mid-interval; just after the deadline), every poll a
restart can follow and downtimes from under a poll to past a whole pause, the restarted wait ends as the
uninterrupted one did: same outcome, same reason. A poll whose metrics cannot be read after a restart
(throttled) holds back a pass until it is read, and fails the gate at its deadline if it never is. Before,
each restart started the failure count again: a gate allowed one failing window passed a version that
failed one window before the restart and one after it.

Fakes: the clock (time.time, asyncio.sleep) and CloudWatch (a verdict per instant of the gate's grid; a
window's verdict is that of the newest grid instant it reaches); the lease (none, or a scripted pause).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from latticedb_deploy.control import apply
from latticedb_deploy.judge import FAIL, INCONCLUSIVE, PASS, Evaluation
from latticedb_deploy.triggers import lease as lease_module
from latticedb_deploy.triggers.control_hold import ControlHoldTrigger
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger, poll_instants

POLL, INTERVAL, LIMIT = 2.0, 7.0, 40.0  # the interval's end (7 s) is off the 2 s grid: polled at 2, 4, 6, 7, 9 ...
T0 = 1_000_000.0
HISTORIES = {  # one letter per poll of the uninterrupted wait: Pass, Fail, Inconclusive (too little traffic)
    "healthy": "PPPPPPPP",
    "one bad window early": "FPPPPPPP",
    "one bad window mid-interval": "PFPPPPPP",
    "two bad windows": "PFPFPPPP",
    "bad after the interval": "PPPIFFFF",
    "flapping": "FPFPFPFPFPF",
    "traffic only late": "IIIIIPPP",
    "never conclusive": "I",
    "bad only after the resume": "P" * 16 + "F",  # the hold's resume is 30 s in: its 15 polls all pass
    "conclusive only after the deadline": "I" * 21 + "P",  # the poll at 41 s (past the 40 s deadline) fails it
}
DOWNTIMES = (0.5, 3.0, 9.3, 21.7)  # under a poll, over one, several, past a whole pause
OWNER = "latticedb_deploy_canary/manual__1"


class Restart(BaseException):
    """The triggerer stops (a deploy, a crash): the trigger's coroutine is gone mid-wait."""


class World:
    """The fake clock and the metrics each window shows."""

    def __init__(self, history: str, started_at: float, interval_end: float):
        self.t = T0
        self.history = history
        self.grid = poll_instants(started_at, interval_end, POLL, started_at + 10 * LIMIT)
        self.unreadable: dict[float, int] = {}  # instant -> how many more reads of its window fail (throttled)

    def verdict(self, at: float) -> str:
        reached = [k for k, g in enumerate(self.grid) if g <= at + 1e-6]
        letter = self.history[min(reached[-1], len(self.history) - 1)] if reached else "I"
        return {"P": PASS, "F": FAIL, "I": INCONCLUSIVE}[letter]


def _evaluation(verdict: str, at: float) -> Evaluation:
    return Evaluation(step=25, window_start=str(T0), window_end=str(at), requests=100 if verdict != INCONCLUSIVE else 3,
                      error_rate=0.12 if verdict == FAIL else 0.0, success_rate=0.88 if verdict == FAIL else 1.0,
                      latency_ms=10.0, latency_statistic="Maximum", verdict=verdict,
                      reasons={FAIL: ("error rate 12% is not below 5%",), INCONCLUSIVE: ("3 requests",)}.get(verdict, ()))


@pytest.fixture
def world(monkeypatch):
    """Installs the fakes; returns a function that runs a trigger to its event, or until its nth sleep."""
    from latticedb_deploy.config import load_config

    env = load_config().environment("local")
    env = replace(env, metrics=replace(env.metrics, poll_seconds=POLL), judge=replace(env.judge, mode="absolute"))
    box: dict = {}
    monkeypatch.setattr(time, "time", lambda: box["world"].t)
    monkeypatch.setattr(MetricGateTrigger, "_env", lambda self: env)

    def evaluate(self, env, criteria, mode, interval_end, at=None):
        w = box["world"]
        at = w.t if at is None else at
        if w.unreadable.get(at, 0) > 0:
            w.unreadable[at] -= 1
            raise RuntimeError("ThrottlingException: Rate exceeded")
        ev = _evaluation(w.verdict(at), at)
        return ev, ev.to_dict()

    monkeypatch.setattr(MetricGateTrigger, "_evaluate_with_judge", evaluate)
    real_sleep = asyncio.sleep

    def run(w: World, trigger, restart_after: int | None = None):
        box["world"], sleeps = w, {"n": 0}

        async def sleep(seconds):
            if restart_after is not None and sleeps["n"] == restart_after:
                raise Restart
            sleeps["n"] += 1
            w.t += seconds
            await real_sleep(0)

        monkeypatch.setattr(asyncio, "sleep", sleep)

        async def first():
            async for event in trigger.run():
                return event.payload

        return asyncio.run(first()), sleeps["n"]

    return run


def _outcome(payload: dict) -> tuple:
    if "passed" in payload:
        return ("passed" if payload["passed"] else "failed", payload["reason"])
    return ("failed", payload["reason"]) if payload.get("failed") else ("released", (payload["released"] or {}).get("action"))


def _matrix(world, make, history: str, started_at: float, interval_end: float) -> tuple[int, int, list]:
    """Run the wait uninterrupted, then restarted after each of its polls for each downtime; return its polls,
    how many restarts were tried and those that ended differently."""
    whole, polls = world(World(history, started_at, interval_end), make())
    tried, different = 0, []
    for after in range(1, polls):
        for down in DOWNTIMES:
            w = World(history, started_at, interval_end)
            first = make()
            try:
                world(w, first, restart_after=after)
                continue  # ended before this poll: nothing to restart
            except Restart:
                pass
            w.t += down
            again, _ = world(w, type(first)(**first.serialize()[1]))
            tried += 1
            if _outcome(again) != _outcome(whole):
                different.append((after, down, _outcome(again), _outcome(whole)))
    assert tried == (polls - 1) * len(DOWNTIMES)  # a restart after every poll but the last, each downtime
    return polls, tried, different


PAUSES = {  # when latticedb_control paused and resumed the gate (seconds after it started), or none
    "no pause": None,
    "paused mid-interval": (3.0, 9.0),
    "paused just after the deadline": (LIMIT + 2, LIMIT + 10),
}


def _scripted_lease(monkeypatch, pause: tuple[float, float] | None) -> None:
    """The lease's control signal as time goes: nothing, then a pause, then its resume."""
    if pause is None:
        return
    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-7", now=T0 + pause[0])
    resumed = apply(paused, "resume", owner=OWNER, by="alice", reason="CHG-7 done", now=T0 + pause[1])

    class Keeper:
        def __init__(self, environment, owner, log, config=None):
            self.signal = None

        async def mark_failing(self, reason):  # the lease's failing mark: not what this matrix is about
            return False

        async def check(self):
            now = time.time()
            self.signal = None if now < T0 + pause[0] else paused if now < T0 + pause[1] else resumed
            return None

    monkeypatch.setattr(lease_module, "LeaseKeeper", Keeper)


@pytest.mark.parametrize("pause", PAUSES)
@pytest.mark.parametrize("tolerated", [0, 1, 2])
@pytest.mark.parametrize("history", HISTORIES)
def test_a_restarted_gate_ends_as_it_would_have(world, monkeypatch, history, tolerated, pause):
    _scripted_lease(monkeypatch, PAUSES[pause])

    def make():
        return MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                                 started_at=T0, interval_seconds=INTERVAL, deadline=T0 + LIMIT,
                                 tolerated_failures=tolerated)

    polls, tried, different = _matrix(world, make, HISTORIES[history], T0, T0 + INTERVAL)
    assert not different, different


@pytest.mark.parametrize("tolerated", [0, 1])
@pytest.mark.parametrize("history", ["healthy", "one bad window mid-interval", "two bad windows", "flapping",
                                     "bad only after the resume"])
def test_a_restarted_hold_judges_the_paused_split_as_it_would_have(world, monkeypatch, history, tolerated):
    """A paused shift (the new slot serving its share), resumed 30 s in: fails where its metrics fail beyond
    the run's budget, else is released by the resume; a restart changes neither."""
    pause = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-7", now=T0)
    resume = apply(pause, "resume", owner=OWNER, by="alice", reason="CHG-7 done", now=T0 + 30)

    class Keeper:
        def __init__(self, environment, owner, log, config=None):
            self.signal = None

        async def mark_failing(self, reason):  # the lease's failing mark: not what this matrix is about
            return False

        async def check(self):
            self.signal = pause if time.time() < T0 + 30 else resume
            return None

    monkeypatch.setattr(lease_module, "LeaseKeeper", Keeper)

    def make():
        return ControlHoldTrigger(environment="local", owner=OWNER, poll_seconds=POLL, watch={
            "step": 25, "target_group_arn": "arn:green", "load_balancer_arn": "arn:lb", "started_at": T0,
            "interval_seconds": INTERVAL, "tolerated_failures": tolerated, "baseline_target_group_arn": "arn:blue"})

    polls, tried, different = _matrix(world, make, HISTORIES[history], T0, T0)
    assert not different, different


def test_the_grid_is_what_the_gate_polls():
    assert poll_instants(T0, T0 + INTERVAL, POLL, T0 + 12) == [T0 + 2, T0 + 4, T0 + 6, T0 + 7, T0 + 9, T0 + 11]
    assert poll_instants(T0, T0 + INTERVAL, POLL, T0 + 4) == [T0 + 2, T0 + 4]  # a poll due now was made
    assert poll_instants(T0, T0, POLL, T0 + 7) == [T0 + 2, T0 + 4, T0 + 6]
    assert poll_instants(T0, T0 + INTERVAL, POLL, T0 + 1.9) == []  # a fresh wait judges nothing again


def _gate(tolerated: int) -> MetricGateTrigger:
    return MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                             started_at=T0, interval_seconds=INTERVAL, deadline=T0 + LIMIT, tolerated_failures=tolerated)


def _restarted(world, history: str, tolerated: int, after: int, down: float, unreadable: dict[float, int]):
    w = World(history, T0, T0 + INTERVAL)
    first = _gate(tolerated)
    with pytest.raises(Restart):
        world(w, first, restart_after=after)
    w.t += down
    w.unreadable = dict(unreadable)
    return world(w, type(first)(**first.serialize()[1]))[0], w


def test_an_earlier_poll_that_cannot_be_read_yet_holds_back_the_pass_until_it_is(world):
    """Restarted after the first poll, down 9.3 s: the failing window at 4 s cannot be read in the replay's three
    tries (throttled). The gate (one failure allowed) must not pass on the rest: the next poll reads it, and the
    gate fails on its two failures, as it did uninterrupted. (Skipping it would have passed the gate.)"""
    history = HISTORIES["two bad windows"]
    whole, _ = world(World(history, T0, T0 + INTERVAL), _gate(1))
    assert (whole["passed"], "2 failing windows" in whole["reason"]) == (False, True), whole
    event, w = _restarted(world, history, 1, after=1, down=9.3, unreadable={T0 + 4: 3})
    assert w.unreadable[T0 + 4] == 0  # read on the poll after the replay
    assert _outcome(event) == _outcome(whole), event


def test_an_earlier_poll_never_read_fails_the_gate_at_its_deadline_rather_than_passing_it(world):
    event, _ = _restarted(world, HISTORIES["healthy"], 0, after=1, down=9.3, unreadable={T0 + 4: 10**6})
    assert event["passed"] is False, event
    assert "could not be read by the deadline: not passing a gate it could not judge" in event["reason"], event
