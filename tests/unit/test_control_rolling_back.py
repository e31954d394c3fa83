"""latticedb_control while a deployment rolls back: every action is refused, none accepted and ignored.

Before, a promote or abort sent once a deployment's rollback had started was accepted and reported with
an effect ("100 % on the new slot at the next gate poll") while the rollback went on regardless. The
rollback's first step now marks the lease `rolling_back`; the rules refuse every action on it, over every
signal it may replace and every strategy. The mark is best effort: it never fails or holds the rollback.

The rules are pure; the mark runs against a lease table in (decorator-mode) moto.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from latticedb_deploy.control import (
    ACTIONS,
    DEPLOYMENT_DAGS,
    ROLLING_BACK,
    SUPPORTED,
    VERIFYING,
    ControlRefused,
    ControlSignal,
    aborted_by,
    apply,
    for_gate,
    for_step,
    phase_marker,
)

RUN_ID = "manual__2026-12-07T10:00:00+00:00"
OWNER = f"latticedb_deploy_canary/{RUN_ID}"


def _signal(current, action, owner=OWNER, by="alice", reason="INC-9 replication lag"):
    return apply(current, action, owner=owner, by=by, reason=reason, now=time.time(), run="latticedb_control/manual__9")


def _before(kind: str, owner: str = OWNER) -> ControlSignal | None:
    """What the lease may carry when the rollback starts."""
    if kind == "nothing":
        return None
    if kind == "verifying":  # the smoke tests or the checks failed
        return phase_marker(VERIFYING, None, owner=owner, now=time.time())
    if kind == "resume":
        return _signal(_signal(None, "pause", owner=owner), "resume", owner=owner)
    return _signal(None, kind, owner=owner)


BEFORE = ("nothing", "pause", "resume", "promote", "abort", "verifying")


# ------------------------------------------------------------------ the rules (pure)
@pytest.mark.parametrize("dag_id", list(DEPLOYMENT_DAGS))
@pytest.mark.parametrize("before", BEFORE)
def test_while_rolling_back_every_action_is_refused(dag_id, before):
    owner = f"{dag_id}/{RUN_ID}"
    takes = SUPPORTED[DEPLOYMENT_DAGS[dag_id]]
    # What the lease may carry: a rolling deployment takes only abort, so it never carries a pause or promote.
    previous = _before(before, owner) if before in ("nothing", "abort", "verifying") or "promote" in takes else None
    marker = phase_marker(ROLLING_BACK, previous, owner=owner, now=time.time())
    for action in ACTIONS:
        match = ("is rolling back.*runs to its end whatever is sent.*Nothing changed" if action in takes
                 else "nothing to .*Nothing changed")  # refused for the strategy's own reason first
        with pytest.raises(ControlRefused, match=match):
            _signal(marker, action, owner=owner)
        # before the mark, the same action was not refused as "rolling back" (accepted, or refused for its own reason)
        try:
            _signal(previous, action, owner=owner)
        except ControlRefused as exc:
            assert "rolling back" not in str(exc)


@pytest.mark.parametrize("before", BEFORE)
def test_the_mark_remembers_a_persons_signal_it_replaces(before):
    previous = _before(before)
    marker = phase_marker(ROLLING_BACK, previous, owner=OWNER, now=time.time())
    expected = None if previous is None or previous.phase is not None else previous.message
    assert (marker.action, marker.phase, marker.replaced) == (ROLLING_BACK, ROLLING_BACK, expected)
    assert ControlSignal.from_json(marker.to_json()) == marker
    refusal = pytest.raises(ControlRefused, match="rolling back \\(after it was aborted by alice: INC-9")
    if before == "abort":
        with refusal:
            _signal(marker, "promote")
    gate = for_gate(marker)
    assert (gate.done, gate.hold) == (False, False)  # a mark is not a person's signal
    assert for_step(marker) is None and for_step(marker, rollback=True) is None


# ------------------------------------------------------------------ the mark on a real lease (moto)
@pytest.fixture
def held(lock):
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    return lock


def _restore(lock):
    """The rollback's first step as mark_rolling_back sees it: its environment and its lock's table."""
    from latticedb_deploy.operators.deploy import RestorePreviousRevisionOperator

    op = RestorePreviousRevisionOperator(task_id="restore_previous_revision", mutation_task_ids=[])
    op.environment = "local"
    return op


def _context():
    return {"dag": SimpleNamespace(dag_id="latticedb_deploy_canary"), "run_id": RUN_ID, "params": {}}


def _write(lock, signal):
    holder = lock.holder()
    assert lock.signal(OWNER, signal.to_json(), holder.control)


@pytest.fixture
def same_table(lock, monkeypatch):
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)


@pytest.mark.parametrize("before", BEFORE)
def test_the_rollback_marks_the_lease_over_whatever_it_carries(held, same_table, before):
    from latticedb_deploy.operators.control import mark_rolling_back

    previous = _before(before)
    if previous is not None:
        _write(held, previous)
    assert mark_rolling_back(_restore(held), _context(), held.holder()) is True
    marker = held.holder().signal
    assert marker.action == ROLLING_BACK and marker.by == OWNER, marker
    assert aborted_by(marker) == (previous.message if before == "abort" else None)  # a retry still names the abort
    assert mark_rolling_back(_restore(held), _context(), held.holder()) is True  # a retry: the same mark
    assert held.holder().signal == marker


def test_a_control_run_racing_the_mark_is_read_again(held, same_table):
    """The lease's signal changed between the rollback's read and its write (a person's abort): the mark is
    written over the new signal, and remembers it."""
    from latticedb_deploy.operators.control import mark_rolling_back

    stale = held.holder()
    _write(held, _signal(None, "abort", by="bob", reason="INC-10 errors"))
    assert mark_rolling_back(_restore(held), _context(), stale) is True
    marker = held.holder().signal
    assert (marker.action, marker.replaced) == (ROLLING_BACK, "aborted by bob: INC-10 errors")


def test_the_mark_never_fails_the_rollback(held, same_table, monkeypatch):
    """Another run holds the environment (an emergency rollback took it), or the table cannot be written:
    nothing is marked, nothing raised; the rollback step goes on to its own fencing and restore."""
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.operators.control import mark_rolling_back

    stale = held.holder()
    held.release(OWNER)
    assert held.acquire("latticedb_rollback/manual__x", ttl_seconds=300) is None
    before = held.holder()
    assert mark_rolling_back(_restore(held), _context(), stale) is False
    assert held.holder() == before  # nothing written on the other run's lease

    def broken(self, *args, **kwargs):
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(EnvironmentLock, "signal", broken)
    assert mark_rolling_back(_restore(held), _context(), held.holder()) is False
    assert mark_rolling_back(_restore(held), {"params": {}}, held.holder()) is False  # no run: nothing to mark
