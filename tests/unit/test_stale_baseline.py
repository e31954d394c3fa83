"""A step that changes production from its run's baseline acts only while that baseline is the environment's
latest (the lease's baseline_by names the run): a run whose preflight.acquire_environment was cleared and
re-run after another deployment holds the lease again, with a baseline from before that deployment.

Real parts: the operators' lease check (hold_lease) against a lease table in decorator-mode moto."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

DAG_ID, RUN_ID = "latticedb_deploy_canary", "manual__2026-12-07T10:00:00+00:00"
OWNER = f"{DAG_ID}/{RUN_ID}"
OTHER = "latticedb_deploy_rolling/manual__2026-12-07T11:00:00+00:00"


@pytest.fixture
def table(lock, monkeypatch):
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    monkeypatch.setattr("latticedb_deploy.operators.base.LatticeDBOperator.send", lambda *a, **k: None)
    return lock


def _context():
    return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": RUN_ID, "ti": SimpleNamespace(dag_id=DAG_ID), "params": {}}


def _operator(task_id):
    from latticedb_deploy.operators.traffic import ShiftTrafficOperator

    op = ShiftTrafficOperator(task_id=task_id, percent=50)
    op.environment = "local"
    return op


def _record_outcome(monkeypatch):
    recorded = []
    monkeypatch.setattr("latticedb_deploy.operators.history.record_outcome",
                        lambda env, context, outcome, **kw: recorded.append(outcome))
    return recorded


def _own_baseline(lock):
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    lock.record_last_good(OWNER, {"service": "svc-blue"})


def _reacquired_after_another_deployment(lock):
    _own_baseline(lock)
    assert lock.release(OWNER)
    assert lock.acquire(OTHER, ttl_seconds=300) is None
    lock.record_last_good(OTHER, {"service": "svc-green"})
    assert lock.release(OTHER)
    assert lock.acquire(OWNER, ttl_seconds=300) is None  # the cleared acquire_environment, re-run


def _reacquired_after_a_clear_by_hand(lock):
    _own_baseline(lock)
    assert lock.clear()
    assert lock.acquire(OWNER, ttl_seconds=300) is None


def _reacquired_with_nothing_in_between(lock):
    _own_baseline(lock)
    assert lock.release(OWNER)
    assert lock.acquire(OWNER, ttl_seconds=300) is None


@pytest.mark.parametrize("history, stale", [
    (_own_baseline, False),
    (_reacquired_with_nothing_in_between, False),
    (_reacquired_after_another_deployment, True),
    (_reacquired_after_a_clear_by_hand, True),
], ids=lambda v: v.__name__.strip("_") if callable(v) else str(v))
def test_a_step_acts_only_on_the_latest_baseline(table, monkeypatch, history, stale):
    from latticedb_deploy.operators.base import LeaseLost

    history(table)
    recorded = _record_outcome(monkeypatch)
    step, rollback = _operator("deploy.shift_traffic_to_50pct"), _operator("rollback.restore_previous_revision")
    if not stale:
        assert step.hold_lease(_context()).owner == OWNER
        assert rollback.hold_lease(_context()).owner == OWNER
        return
    with pytest.raises(LeaseLost, match="STALE BASELINE"):
        step.hold_lease(_context())
    with pytest.raises(AirflowSkipException, match="STALE BASELINE.*Automatic rollback not run"):
        rollback.hold_lease(_context())  # it restores nothing from a baseline that no longer served last
    assert recorded == ["aborted"]
    assert table.holder().owner == OWNER  # the run still holds it: its release gives it back


def test_steps_that_do_not_act_on_a_baseline_are_not_fenced_by_it(table):
    """Pre-flight, the metric gate's renewals in its trigger, service operations: only the lease counts."""
    from latticedb_deploy.operators.locks import ReleaseEnvironmentOperator

    _reacquired_after_another_deployment(table)
    op = ReleaseEnvironmentOperator(task_id="release_environment")
    op.environment = "local"
    assert op.hold_lease(_context()).owner == OWNER
