"""A metric gate that fails marks the lease `failing` before its task resumes: from the verdict on, a promote,
pause or resume is refused (the rollback starts next whatever is sent), where before it was accepted,
reported with an effect ("100 % on the new slot at the next gate poll"), and ignored. abort goes through.

The rules are pure; the trigger runs on the fake clock and metrics of test_wait_restart.py; the mark on a
lease table in (decorator-mode) moto.
"""

from __future__ import annotations

import logging
import time

import pytest

from latticedb_deploy.control import (
    ACTIONS,
    DEPLOYMENT_DAGS,
    FAILING,
    SUPPORTED,
    ControlRefused,
    ControlSignal,
    aborted_by,
    apply,
    failed_already,
    for_gate,
    for_step,
    held_at,
    kept_pause,
    markable_over,
    paused_seconds,
    phase_marker,
)
from latticedb_deploy.triggers import lease as lease_module
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger
from tests.unit.test_wait_restart import HISTORIES, INTERVAL, LIMIT, T0, World, world  # noqa: F401 - world: the fixture

RUN_ID = "manual__2026-12-07T10:00:00+00:00"
OWNER = f"latticedb_deploy_canary/{RUN_ID}"


def _signal(current, action, owner=OWNER):
    return apply(current, action, owner=owner, by="alice", reason="CHG-21", now=time.time(), run="latticedb_control/m__1")


# ------------------------------------------------------------------ the rules (pure)
@pytest.mark.parametrize("dag_id", list(DEPLOYMENT_DAGS))
def test_while_failing_only_abort_goes_through(dag_id):
    owner = f"{dag_id}/{RUN_ID}"
    marker = phase_marker(FAILING, None, owner=owner, now=time.time(), reason="gate 25% failed: error rate 12%")
    takes = SUPPORTED[DEPLOYMENT_DAGS[dag_id]]
    for action in ACTIONS:
        if action not in takes:
            with pytest.raises(ControlRefused, match="nothing to"):
                _signal(marker, action, owner=owner)
        elif action == "abort":
            assert _signal(marker, action, owner=owner).action == "abort"
        else:
            with pytest.raises(ControlRefused, match="is failing since .*gate 25% failed: error rate 12%.*rollback "
                                                     "starts next.*An abort still goes through.*Nothing changed"):
                _signal(marker, action, owner=owner)
        try:  # without the mark the same action was not refused as failing
            _signal(None, action, owner=owner)
        except ControlRefused as exc:
            assert "failing" not in str(exc)


def test_the_mark_goes_over_no_signal_a_spent_resume_or_a_pause_never_a_pending_promote_abort_or_a_mark():
    paused = _signal(None, "pause")
    assert markable_over(None) and markable_over(_signal(paused, "resume")) and markable_over(paused)
    for pending in (_signal(None, "promote"), _signal(None, "abort")):
        assert not markable_over(pending), pending
    for phase in ("verifying", "verified", "rolling_back", FAILING):
        assert not markable_over(phase_marker(phase, None, owner=OWNER, now=T0)), phase


def test_a_mark_over_a_resume_keeps_the_lifted_pause_for_a_replay():
    """A gate restarted after its failing poll judges its earlier polls again from the lease: over the mark, the
    polls held by the pause and the deadline it moved are what they were over the resume."""
    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-21", now=T0 + 10)
    resumed = apply(paused, "resume", owner=OWNER, by="bob", reason="CHG-21 done", now=T0 + 40)
    marker = phase_marker(FAILING, resumed, owner=OWNER, now=T0 + 50, reason="gate 25% failed: error rate 12%")
    assert (marker.action, marker.replaced) == (FAILING, "resumed by bob: CHG-21 done")
    for at in (T0, T0 + 10, T0 + 25, T0 + 39.9, T0 + 40, T0 + 60):
        assert held_at(marker, at) is held_at(resumed, at), at
        assert paused_seconds(marker, T0, at) == paused_seconds(resumed, T0, at), at
    assert paused_seconds(marker, T0, T0 + 60) == 30
    assert phase_marker(FAILING, None, owner=OWNER, now=T0).paused_at is None  # nothing lifted: nothing carried
    assert phase_marker("rolling_back", resumed, owner=OWNER, now=T0).paused_at is None  # a failing wait's mark only


def test_a_mark_over_a_pause_keeps_who_paused_and_refuses_a_resume():
    """A wait that fails under a pause marks the lease over it: a resume, promote or pause is refused from then on
    (the rollback runs whatever is sent), and the mark keeps the pause to put back if it outlives its failure."""
    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-21", now=T0 + 10)
    marker = phase_marker(FAILING, paused, owner=OWNER, now=T0 + 50, reason="gate 25% failed: error rate 12%")
    assert (marker.action, marker.replaced, marker.paused_by, marker.paused_at, marker.resumed_at) == (
        FAILING, "paused by alice: CHG-21", "alice", T0 + 10, None)
    for action in ("resume", "promote", "pause"):
        with pytest.raises(ControlRefused, match="is failing since"):
            _signal(marker, action)
    assert _signal(marker, "abort").action == "abort"
    assert kept_pause(marker) == ControlSignal(action="pause", by="alice", reason="CHG-21", at=T0 + 10)
    assert failed_already(marker, None) == failed_already(marker, T0 + 50) == "gate 25% failed: error rate 12%"
    assert failed_already(marker, T0 + 51) is None  # written before the wait began: another wait's, outlived
    assert failed_already(paused, None) is None and failed_already(None, None) is None
    resumed = apply(paused, "resume", owner=OWNER, by="bob", reason="done", now=T0 + 40)
    assert kept_pause(phase_marker(FAILING, resumed, owner=OWNER, now=T0 + 50)) is None  # lifted: nothing kept
    assert kept_pause(phase_marker(FAILING, None, owner=OWNER, now=T0 + 50)) is None


def test_the_mark_is_not_a_persons_signal():
    marker = phase_marker(FAILING, None, owner=OWNER, now=time.time(), reason="gate 50% failed: p95 900 ms")
    assert (marker.phase, marker.replaced, marker.message) == (FAILING, None, f"failing by {OWNER}: gate 50% failed: p95 900 ms")
    gate = for_gate(marker)
    assert (gate.done, gate.hold) == (False, False)
    assert for_step(marker) is None and aborted_by(marker) is None
    abort = _signal(marker, "abort")
    assert aborted_by(abort) == abort.message  # an abort sent while failing is the rollback's abort, as ever


# ------------------------------------------------------------------ the gate marks on its failing verdict
class _Keeper:
    """The lease as a gate's trigger sees it: a signal (or none), and the marks it asked for."""

    marks: list = []
    signal = None

    def __init__(self, environment, owner, log, config=None):
        self.signal = type(self).signal

    async def check(self):
        return None

    async def mark_failing(self, reason):
        type(self).marks.append(reason)
        return True


@pytest.mark.parametrize(("history", "signal", "marked"), [
    ("one bad window early", None, True),       # fails on its first poll
    ("bad after the interval", None, True),
    ("conclusive only after the deadline", None, True),  # fails at its deadline: a failure too
    ("healthy", None, False),                   # passes: nothing marked
    ("one bad window early", "pause", True),    # failed under a pause: nothing can resume it, a resume is refused
    ("one bad window early", "resume", True),   # a spent resume does not: a promote after it is refused too
])
def test_a_gate_marks_the_lease_failing_only_on_its_own_failing_verdict(world, monkeypatch, history, signal, marked):  # noqa: F811
    _Keeper.marks = []
    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-21", now=T0 - 5)  # the clock is the fake's now
    resumed = apply(paused, "resume", owner=OWNER, by="alice", reason="CHG-21", now=T0 - 1)
    _Keeper.signal = {None: None, "pause": paused, "resume": resumed}[signal]
    monkeypatch.setattr(lease_module, "LeaseKeeper", _Keeper)
    trigger = MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                                started_at=T0, interval_seconds=INTERVAL, deadline=T0 + LIMIT, tolerated_failures=0,
                                owner=OWNER)
    payload, _ = world(World(HISTORIES[history], T0, T0 + INTERVAL), trigger)
    failed = HISTORIES[history] != HISTORIES["healthy"]
    assert payload["passed"] is (not failed), payload  # a pause or resume holds a pass back, never a failure
    assert _Keeper.marks == ([f"gate 25% failed: {payload['reason']}"] if marked else []), (payload, _Keeper.marks)


def _restarted_gate_at_25(run, monkeypatch, history: str, tolerated_failures: int, while_down=lambda w: None):
    """A 25 % gate stopped before its 4th poll (the triggerer restarted), rebuilt from its serialized form 3 s
    later and run to its event by `run` (the `world` fixture): (that event, the sleeps the rebuilt gate made).
    `while_down(world)` runs between."""
    from tests.unit.test_wait_restart import Restart

    _Keeper.marks, _Keeper.signal = [], None
    monkeypatch.setattr(lease_module, "LeaseKeeper", _Keeper)

    def make():
        return MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                                 started_at=T0, interval_seconds=INTERVAL, deadline=T0 + LIMIT,
                                 tolerated_failures=tolerated_failures, owner=OWNER)

    w = World(HISTORIES[history], T0, T0 + INTERVAL)
    with pytest.raises(Restart):
        run(w, make(), restart_after=3)
    while_down(w)
    w.t += 3.0
    first = make()
    return run(w, type(first)(**first.serialize()[1]))


def test_a_restarted_gate_that_ends_failing_in_its_replay_marks_the_lease(world, monkeypatch):  # noqa: F811
    """The triggerer restarted after the gate's failing poll: the rebuilt trigger's replay finds the failure
    and ends there, and marks the lease as the uninterrupted one would have."""

    def nothing_marked_yet(w):
        assert _Keeper.marks == []

    # the 2nd bad window (4th poll) fails it; stopped before that poll
    payload, sleeps = _restarted_gate_at_25(world, monkeypatch, "two bad windows", 1, nothing_marked_yet)
    assert payload["passed"] is False and sleeps == 0, payload  # decided in the replay, before any new poll
    assert _Keeper.marks == [f"gate 25% failed: {payload['reason']}"]


@pytest.mark.parametrize("mark", ["its own", "from before it began"])
def test_a_gate_restarted_mid_wait_fails_at_once_only_on_its_own_mark(world, monkeypatch, mark):  # noqa: F811
    """The triggerer restarted after the gate marked the run failing over a pause (green failed under it; nobody
    can resume over the mark): the rebuilt gate fails with that verdict before replaying a poll, though the metrics
    it would replay are healthy. A mark from before the gate began (another wait's, outlived) is not its verdict:
    the gate judges, and passes."""

    def marked(w):
        paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-21", now=T0 - 10)
        _Keeper.signal = phase_marker(FAILING, paused, owner=OWNER, now=w.t if mark == "its own" else T0 - 5,
                                      reason="gate 25% failed: error rate 12% is not below 5%")

    payload, sleeps = _restarted_gate_at_25(world, monkeypatch, "healthy", 0, marked)
    if mark == "its own":
        assert payload["passed"] is False and sleeps == 0, (payload, sleeps)  # before any replay or new poll
        assert payload["reason"] == "error rate 12% is not below 5%" and payload["evaluations"] == [], payload
    else:
        assert payload["passed"] is True, payload
    assert _Keeper.marks == []


# ------------------------------------------------------------------ the mark on a real lease (moto)
@pytest.fixture
def keeper(lock, monkeypatch):
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    return lease_module.LeaseKeeper("local", OWNER, logging.getLogger("test"))


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def test_the_mark_is_written_over_no_signal(keeper, lock):
    assert _run(keeper.check()) is None  # a renewal: the item as the gate last read it
    assert _run(keeper.mark_failing("gate 25% failed: error rate 12%")) is True
    marker = lock.holder().signal
    assert (marker.action, marker.reason, marker.by) == (FAILING, "gate 25% failed: error rate 12%", OWNER)
    with pytest.raises(ControlRefused, match="is failing"):
        _signal(marker, "promote")


def test_the_mark_is_written_over_a_resume_and_a_promote_after_it_is_refused(keeper, lock):
    """Paused, resumed, then the gate fails: before, the resume stayed on the lease and a promote sent while the
    gate's task resumed to fail was accepted and changed nothing (the rollback ran anyway)."""
    paused = _signal(None, "pause")
    assert lock.signal(OWNER, paused.to_json(), None)
    resumed = _signal(paused, "resume")
    assert lock.signal(OWNER, resumed.to_json(), paused.to_json())
    assert _run(keeper.check()) is None
    assert _run(keeper.mark_failing("gate 25% failed: error rate 12%")) is True
    marker = lock.holder().signal
    assert (marker.action, marker.replaced) == (FAILING, resumed.message)
    assert (marker.paused_at, marker.resumed_at) == (resumed.paused_at, resumed.resumed_at)
    with pytest.raises(ControlRefused, match="is failing"):
        _signal(marker, "promote")
    assert _signal(marker, "abort").action == "abort"


@pytest.mark.parametrize("action", ["pause", "promote", "abort"])
def test_a_signal_written_after_the_resume_the_gate_read_is_not_overwritten(keeper, lock, action):
    """The gate last read a resume; someone pauses, promotes or aborts before the mark: the write's condition
    (the item as the gate read it) keeps the newer signal."""
    paused = _signal(None, "pause")
    assert lock.signal(OWNER, paused.to_json(), None)
    resumed = _signal(paused, "resume")
    assert lock.signal(OWNER, resumed.to_json(), paused.to_json())
    assert _run(keeper.check()) is None  # the gate's last renewal: the resume
    newer = _signal(resumed, action)
    assert lock.signal(OWNER, newer.to_json(), resumed.to_json())
    assert _run(keeper.mark_failing("gate 25% failed")) is False
    assert lock.holder().signal == newer


def test_the_mark_is_written_over_a_pause_it_keeps_and_a_resume_after_it_is_refused(keeper, lock):
    """The gate fails under a pause: before, the pause stayed on the lease and a resume sent while the gate's task
    resumed to fail was accepted ("resumed") and changed nothing (the rollback ran anyway)."""
    paused = _signal(None, "pause")
    assert lock.signal(OWNER, paused.to_json(), None)
    assert _run(keeper.check()) is None
    assert _run(keeper.mark_failing("gate 25% failed: error rate 12%")) is True
    marker = lock.holder().signal
    assert (marker.action, marker.replaced, marker.paused_at) == (FAILING, paused.message, paused.at)
    for action in ("resume", "promote"):
        with pytest.raises(ControlRefused, match="is failing"):
            _signal(marker, action)
    assert kept_pause(marker) == ControlSignal(action="pause", by=paused.by, reason=paused.reason, at=paused.at)


@pytest.mark.parametrize("action", ["abort", "promote"])
def test_a_pending_promote_or_abort_the_gate_read_is_never_overwritten(keeper, lock, action):
    holder = lock.holder()
    assert lock.signal(OWNER, _signal(None, action).to_json(), holder.control)
    before = lock.holder().signal
    assert _run(keeper.check()) is None
    assert _run(keeper.mark_failing("gate 25% failed")) is False
    assert lock.holder().signal == before


@pytest.mark.parametrize("action", ["pause", "abort", "promote"])
def test_a_signal_written_since_the_last_renewal_is_never_overwritten(keeper, lock, action):
    """The write's condition is the item as the gate last read it: a pause too, once written after that read."""
    holder = lock.holder()
    assert lock.signal(OWNER, _signal(None, action).to_json(), holder.control)
    before = lock.holder().signal

    fresh = lease_module.LeaseKeeper("local", OWNER, logging.getLogger("test"))
    fresh.control = None  # as renewed before the person's signal was written
    assert _run(fresh.mark_failing("gate 25% failed")) is False
    assert lock.holder().signal == before


def test_the_mark_never_fails_the_gate(keeper, lock, monkeypatch):
    from latticedb_deploy.aws.locks import EnvironmentLock

    assert _run(keeper.check()) is None

    def broken(self, *args, **kwargs):
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(EnvironmentLock, "signal", broken)
    assert _run(keeper.mark_failing("gate 25% failed")) is False
    assert lock.holder().signal is None
    assert _run(lease_module.LeaseKeeper("local", None, logging.getLogger("t")).mark_failing("x")) is False  # no owner

    import threading

    stuck = threading.Event()

    def slow(self, *args, **kwargs):  # DynamoDB not answering: the write blocks until the test lets it go
        stuck.wait(30)
        return True

    monkeypatch.setattr(EnvironmentLock, "signal", slow)
    monkeypatch.setattr(lease_module, "MARK_TIMEOUT_SECONDS", 0.1)

    async def while_stuck():
        written = await keeper.mark_failing("gate 25% failed")
        return written, stuck.is_set()

    try:
        assert _run_leaving_threads(while_stuck()) == (False, False)  # given up on while the write still hangs
    finally:
        stuck.set()


def _run_leaving_threads(coro):
    """Run `coro` on a loop that does not wait for its worker threads at the end (the triggerer's loop lives on)."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# ------------------------------------------------------------------ a deployment's rollout wait marks it too
@pytest.mark.parametrize(("state", "abortable", "signal", "marked"), [
    ("failed", True, None, "latticedb-svc rollout failed: circuit breaker: tasks failed to start"),
    ("timeout", True, None, "latticedb-svc rollout timed out: 1/3 tasks running"),
    ("completed", True, None, None),
    ("failed", False, None, None),       # a rollback's own rollout wait: it is rolling back already
    ("failed", True, "pause", "latticedb-svc rollout failed: circuit breaker: tasks failed to start"),  # over the pause
    ("failed", True, "resume", "latticedb-svc rollout failed: circuit breaker: tasks failed to start"),
])
def test_a_deployments_rollout_wait_that_fails_marks_the_lease(monkeypatch, state, abortable, signal, marked):
    import asyncio

    from latticedb_deploy.rollout import COMPLETED, FAILED
    from latticedb_deploy.triggers.ecs_rollout import EcsRolloutTrigger

    _Keeper.marks = []
    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-22", now=time.time() - 5)
    _Keeper.signal = {None: None, "pause": paused,
                      "resume": apply(paused, "resume", owner=OWNER, by="alice", reason="CHG-22", now=time.time())}[signal]
    monkeypatch.setattr(lease_module, "LeaseKeeper", _Keeper)
    status = {"failed": {"state": FAILED, "reason": "circuit breaker: tasks failed to start"},
              "completed": {"state": COMPLETED, "reason": "3/3 running"},
              "timeout": {"state": "in_progress", "reason": "1/3 tasks running"}}[state]
    monkeypatch.setattr(EcsRolloutTrigger, "_poll_once", lambda self: status)

    async def no_facts(self):
        return []

    monkeypatch.setattr(EcsRolloutTrigger, "_facts", no_facts)
    trigger = EcsRolloutTrigger(environment="local", service="latticedb-svc", task_definition="arn:td:2", poll_seconds=0.01,
                                deadline=time.time() + (0 if state == "timeout" else 60), owner=OWNER, abortable=abortable)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event())["status"] == state
    assert _Keeper.marks == ([marked] if marked else []), _Keeper.marks


def test_only_a_deployments_lease_is_marked(lock, monkeypatch):
    """latticedb_service's restart waits on its own lease the same way: never marked (control does not act on it)."""
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    service_run = "latticedb_service/manual__2026-12-07T10:00:00+00:00"
    assert lock.acquire(service_run, ttl_seconds=300) is None
    keeper = lease_module.LeaseKeeper("local", service_run, logging.getLogger("test"))
    assert _run(keeper.check()) is None
    assert _run(keeper.mark_failing("latticedb-svc rollout failed")) is False
    assert lock.holder().signal is None


# ------------------------------------------------------------------ a mark that outlived its failure is cleared
@pytest.mark.parametrize("over_pause", [False, True], ids=["no-pause", "kept-pause"])
@pytest.mark.parametrize(("task_id", "cleared"), [("deploy.gate_50pct", True),
                                                  ("deploy.gate_25pct", True),  # the gate's own retry
                                                  ("rollback.restore_previous_revision", False)])
def test_a_step_that_runs_while_the_lease_says_failing_clears_the_mark(lock, monkeypatch, task_id, cleared, over_pause):
    """The gate's worker died after its trigger marked the run failing, and the gate ran again and passed (or a
    restarted trigger judged otherwise): the next step that holds the lease clears the mark, so control stops
    refusing a pause or promote; a pause the mark kept goes back on the lease (clearing the mark must not lift
    it). The rollback's own steps leave it: the run is failing."""
    from types import SimpleNamespace

    from latticedb_deploy.aws import locks
    from latticedb_deploy.operators.base import LatticeDBOperator

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    paused = _signal(None, "pause") if over_pause else None
    marker = phase_marker(FAILING, paused, owner=OWNER, now=time.time(), reason="gate 25% failed: error rate 12%")
    assert lock.signal(OWNER, marker.to_json(), None)
    op = LatticeDBOperator(task_id=task_id)
    op.environment = "local"
    context = {"dag": SimpleNamespace(dag_id="latticedb_deploy_canary"), "run_id": RUN_ID, "params": {}}
    holder = op.hold_lease(context)
    after = lock.holder().signal
    if not cleared:
        assert after == marker
    elif over_pause:
        assert (after.action, after.by, after.reason, after.at) == ("pause", "alice", "CHG-21", paused.at)
        assert holder.signal == after  # the step acts on the pause, not on the mark
        assert _signal(after, "resume").action == "resume"
    else:
        assert after is None and _signal(after, "pause").action == "pause"


@pytest.mark.parametrize("write", ["raises", "refused"])
def test_a_step_that_cannot_put_the_kept_pause_back_does_nothing_and_retries(lock, monkeypatch, write):
    """DynamoDB fails the write that puts the pause back, or its condition fails (the lease changed since the
    renewal): the step changes nothing and its task retries (a retriable error, not AirflowFailException), rather
    than act over the mark as if nobody had paused."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from latticedb_deploy.aws import locks
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.operators.base import LatticeDBOperator

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    paused = _signal(None, "pause")
    marker = phase_marker(FAILING, paused, owner=OWNER, now=time.time(), reason="gate 25% failed: error rate 12%")
    assert lock.signal(OWNER, marker.to_json(), None)

    def failing_write(self, *args, **kwargs):
        if write == "raises":
            raise RuntimeError("ProvisionedThroughputExceededException")
        return False

    monkeypatch.setattr(EnvironmentLock, "signal", failing_write)
    op = LatticeDBOperator(task_id="deploy.shift_traffic_to_50pct")
    op.environment = "local"
    with pytest.raises(AirflowException, match="could not be put back") as raised:
        op.hold_lease({"dag": SimpleNamespace(dag_id="latticedb_deploy_canary"), "run_id": RUN_ID, "params": {}})
    assert not isinstance(raised.value, AirflowFailException)  # retried
    assert "paused by alice: CHG-21" in str(raised.value) and "not run, nothing changed" in str(raised.value)
    assert lock.holder().signal == marker


def test_the_rollback_still_says_a_pause_lasted_too_long_once_the_mark_replaced_it():
    from latticedb_deploy.control import pause_expired, paused_too_long

    paused = apply(None, "pause", owner=OWNER, by="alice", reason="CHG-21", now=T0)
    expired = pause_expired(paused, T0 + 14401, 14400)
    assert paused_too_long(paused, T0 + 14401, 14400) == expired
    assert paused_too_long(phase_marker(FAILING, paused, owner=OWNER, now=T0 + 14401, reason=expired), T0 + 14402, 14400) == expired
    failed = phase_marker(FAILING, paused, owner=OWNER, now=T0 + 60, reason="gate 25% failed: error rate 12%")
    assert paused_too_long(failed, T0 + 14402, 14400) is None  # failed on its metrics, not on the pause
    assert paused_too_long(None, T0, 1) is None
