"""latticedb_control once a deployment is in verify, and past it: an abort during the smoke tests or the
post-deployment checks fails them (so the rollback runs); past verify every action is refused.

Real parts: the trigger, its LeaseKeeper, EnvironmentLock and the operators run against a lease table in
(decorator-mode) moto; only a round of post-deployment checks (ECS, ELB, CloudWatch) is scripted."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.control import (
    VERIFIED,
    VERIFYING,
    ControlRefused,
    ControlSignal,
    apply,
    effect,
    for_gate,
    for_step,
    phase_marker,
)

DAG_ID, RUN_ID = "latticedb_deploy_canary", "manual__2026-12-01T10:00:00+00:00"
OWNER = f"{DAG_ID}/{RUN_ID}"


def _signal(current, action, by="alice", reason="INC-9 replication lag", now=None):
    return apply(current, action, owner=OWNER, by=by, reason=reason, now=now or time.time(),
                 run="latticedb_control/manual__9")


def _marker(phase, current=None):
    return phase_marker(phase, current, owner=OWNER, now=time.time())


# ------------------------------------------------------------------ the rules (pure)
def test_in_verify_only_abort_applies():
    verifying = _marker(VERIFYING)
    assert _signal(verifying, "abort").action == "abort"
    with pytest.raises(ControlRefused, match="in verify .*nothing to promote.*abort still stops it"):
        _signal(verifying, "promote")
    for action in ("pause", "resume"):
        with pytest.raises(ControlRefused, match=f"in verify .*no gate or bake to hold: a {action} would be ignored"):
            _signal(verifying, action)
    assert "checks fail" in effect("abort", OWNER, verifying)
    assert "gate" in effect("abort", OWNER)  # elsewhere the strategy's effect, as before


def test_past_verify_every_action_is_refused_naming_latticedb_rollback():
    verified = _marker(VERIFIED, _marker(VERIFYING))
    for action in ("abort", "promote", "pause", "resume"):
        with pytest.raises(ControlRefused, match="past verify: its post-deployment checks passed.*latticedb_rollback"):
            _signal(verified, action)


def test_a_marker_replaces_a_promote_and_remembers_it():
    promote = _signal(None, "promote", reason="CHG-1 all good")
    verifying = _marker(VERIFYING, promote)
    assert verifying.replaced == "promoted by alice: CHG-1 all good"
    assert _marker(VERIFIED, verifying).replaced == verifying.replaced
    assert ControlSignal.from_json(verifying.to_json()) == verifying
    assert verifying.phase == VERIFYING and promote.phase is None


def test_a_marker_means_nothing_to_a_gate_or_a_step():
    for marker in (_marker(VERIFYING), _marker(VERIFIED)):
        gate = for_gate(marker)
        assert (gate.done, gate.hold) == (False, False), marker  # was: held as if paused
        assert for_step(marker) is None


# ------------------------------------------------------------------ on a real lease (moto)
@pytest.fixture
def held(lock, monkeypatch):
    """OWNER holds `local` and recorded its baseline (prepare.record_baseline); every EnvironmentLock the code
    under test builds uses the fixture's table."""
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    _hold(lock)
    return lock


def _hold(lock):
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    lock.record_last_good(OWNER, {"service": "latticedb-service-local", "task_definition": "arn:td:1"})


def _write(lock, signal):
    holder = lock.holder()
    assert lock.signal(OWNER, signal.to_json(), holder.control)


class _TI:
    dag_id = DAG_ID

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context():
    return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": RUN_ID, "ti": _TI(), "params": {}}


def _run_trigger(monkeypatch, rounds: list[str], during=None):
    """The post-deployment checks' trigger on `local`, its rounds scripted ("pass" or "settling");
    `during(n)` runs in round n (1-based), as a person acting meanwhile."""
    from latticedb_deploy import post_deployment
    from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger

    done: list[str] = []

    def one_round(env, alarms, since, clients=None):
        outcome = rounds[min(len(done), len(rounds) - 1)]
        done.append(outcome)
        if during is not None:
            during(len(done))
        steady = outcome == "pass"
        return [{"check": "service steady", "passed": steady, "detail": "ok" if steady else "1/2 running"},
                {"check": "metrics within thresholds", "passed": True, "detail": "ok", "evaluation": {"verdict": "pass"}}]

    monkeypatch.setattr(post_deployment, "RoundClients", lambda env: None)
    monkeypatch.setattr(post_deployment, "checks_round", one_round)
    trigger = PostDeploymentChecksTrigger(environment="local", since=time.time() - 100, baseline_alarms=[],
                                          timeout_seconds=1000, poll_seconds=0.01, owner=OWNER)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first_event()), done


def test_an_abort_on_the_lease_fails_the_post_deployment_checks_naming_who_and_why(held, monkeypatch):
    _write(held, _marker(VERIFYING))
    _write(held, _signal(held.holder().signal, "abort"))
    event, rounds = _run_trigger(monkeypatch, ["pass"])
    assert event["passed"] is False, event  # before the fix: the abort was ignored and the checks passed
    assert event["failure"].startswith("post-deployment checks aborted by alice: INC-9 replication lag"), event
    assert "latticedb_control/manual__9" in event["failure"]
    assert event["control"]["action"] == "abort" and rounds == []  # not one more round


def test_an_abort_during_the_checks_ends_them_at_the_next_poll(held, monkeypatch):
    _write(held, _marker(VERIFYING))

    def abort_in_round(n):
        if n == 2:  # while the checks watch a slot still settling, a person aborts
            _write(held, _signal(held.holder().signal, "abort", by="bob", reason="INC-10 errors"))

    event, rounds = _run_trigger(monkeypatch, ["settling"] * 5 + ["pass"], during=abort_in_round)
    assert rounds == ["settling", "settling"], rounds  # the round after the abort never ran
    assert event["passed"] is False and "aborted by bob: INC-10 errors" in event["failure"], event
    assert event["report"]["aborted"]["by"] == "bob" and event["report"]["rounds"] == 2, event["report"]


def test_without_an_abort_the_checks_run_to_their_verdict(held, monkeypatch):
    _write(held, _marker(VERIFYING))
    event, rounds = _run_trigger(monkeypatch, ["settling", "settling", "pass"])
    assert event["passed"] is True and rounds == ["settling", "settling", "pass"]


def test_a_pause_does_not_hold_the_checks(held, monkeypatch):
    _write(held, _signal(None, "pause"))  # written before verify began (a control run cannot pause in verify)
    event, rounds = _run_trigger(monkeypatch, ["settling", "pass"])
    assert event["passed"] is True and rounds == ["settling", "pass"]


def test_smoke_tests_stop_on_an_abort_and_mark_verify(held):
    from latticedb_deploy.operators.smoke import SmokeTestOperator

    op = SmokeTestOperator(task_id="smoke_tests", new_revision={"version": "v2.0.0"})
    op.environment = "local"
    _write(held, _signal(None, "abort"))
    with pytest.raises(AirflowFailException, match="smoke_tests not run, nothing changed: the deployment was aborted "
                                                   "by alice: INC-9 replication lag"):
        op.execute(_context())  # before the fix: the smoke tests ran, and the checks after them passed
    assert held.holder().signal.action == "abort"  # no marker over an abort


def test_smoke_tests_stop_when_the_lease_is_lost(held):
    from latticedb_deploy.operators.base import LeaseLost
    from latticedb_deploy.operators.smoke import SmokeTestOperator

    op = SmokeTestOperator(task_id="smoke_tests", new_revision={"version": "v2.0.0"})
    op.environment = "local"
    held.release(OWNER)
    assert held.acquire("latticedb_deploy_rolling/manual__other", ttl_seconds=300) is None
    with pytest.raises(LeaseLost, match="LEASE LOST.*latticedb_deploy_rolling/manual__other"):
        op.execute(_context())


def test_the_verify_markers_on_the_lease(held):
    """enter_phase: smoke tests mark `verifying` (replacing a promote), the checks' pass marks `verified`; an
    abort that lands between the checks' last round and that mark still fails them."""
    from latticedb_deploy.operators.control import enter_phase
    from latticedb_deploy.operators.post_deployment import PostDeploymentChecksOperator

    op = PostDeploymentChecksOperator(task_id="post_deployment_checks")
    op.environment = "local"
    _write(held, _signal(None, "promote", reason="CHG-1"))
    enter_phase(op, _context(), VERIFYING, aborted="{abort}")
    marker = held.holder().signal
    assert (marker.action, marker.replaced) == (VERIFYING, "promoted by alice: CHG-1")
    enter_phase(op, _context(), VERIFYING, aborted="{abort}")  # a retry: the same mark, not rewritten
    assert held.holder().signal == marker

    report = {"passed": True, "checks": [], "rounds": 3, "warnings": []}
    context = _context()
    assert op.execute_complete(context, {"passed": True, "report": report, "failure": None}) == report
    assert held.holder().signal.action == VERIFIED
    with pytest.raises(ControlRefused, match="past verify"):
        _signal(held.holder().signal, "abort")

    held.release(OWNER)
    _hold(held)
    _write(held, _marker(VERIFYING))
    _write(held, _signal(held.holder().signal, "abort"))  # after the trigger's last poll, before the resume
    context = _context()
    with pytest.raises(AirflowFailException, match="post-deployment checks passed, but the deployment was aborted by "
                                                   "alice: INC-9 replication lag"):
        op.execute_complete(context, {"passed": True, "report": report, "failure": None})
    assert held.holder().signal.action == "abort"
    assert context["ti"].pushed["return_value"] == report


def test_the_checks_operator_reports_an_abort_as_its_failure(held):
    from latticedb_deploy.operators.post_deployment import PostDeploymentChecksOperator

    op = PostDeploymentChecksOperator(task_id="post_deployment_checks")
    op.environment = "local"
    context = _context()
    failure = "post-deployment checks aborted by alice: INC-9 replication lag (latticedb_control run x at y)"
    with pytest.raises(AirflowFailException, match="aborted by alice"):
        op.execute_complete(context, {"passed": False, "report": {"passed": False, "checks": []}, "failure": failure})
    assert held.holder().signal is None  # a failure marks nothing
