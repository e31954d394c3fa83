"""The nightly's wait for its environment (EnvironmentFreeTrigger) over what the lease may do meanwhile.

Real parts: the trigger and EnvironmentLock against a lease table in (decorator-mode) moto; a script
changes the lease between polls, as another run (or a person) does.
"""

from __future__ import annotations

import asyncio
import time

import pytest

OWNER = "latticedb_deploy_canary/manual__2026-12-07T01:50:00+00:00"


@pytest.fixture
def same_table(lock, monkeypatch):
    from latticedb_deploy.aws import locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    return lock


def _wait(lock, script, wait_seconds=2.0, poll=0.05, monkeypatch=None):
    """Run the trigger; `script(n)` acts on the lease before poll n (1-based). Returns (event, polls)."""
    from latticedb_deploy.triggers.environment_free import EnvironmentFreeTrigger

    now = time.time()
    trigger = EnvironmentFreeTrigger(environment="local", poll_seconds=poll, deadline=now + wait_seconds, started_at=now)
    polls = []
    read = trigger._holder

    def scripted():
        polls.append(time.time())
        script(len(polls))
        return read()

    trigger._holder = scripted

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first()), polls


def _nothing(n):
    return None


# What the lease does while the nightly waits -> whether it deploys, and what the reason names.
SCRIPTS = {
    "free from the start": (lambda lock: None, lambda lock, n: None, True, None),
    "held, released at the 3rd poll": (
        lambda lock: lock.acquire(OWNER, ttl_seconds=300),
        lambda lock, n: lock.release(OWNER) if n == 3 else None, True, None),
    "held past the deadline": (
        lambda lock: lock.acquire(OWNER, ttl_seconds=300), lambda lock, n: None, False, f"still held by {OWNER}"),
    "held, then lapsed (a crashed run)": (
        lambda lock: lock.acquire(OWNER, ttl_seconds=1), lambda lock, n: None, True, None),
    "held, then locked by a failed rollback": (
        lambda lock: lock.acquire(OWNER, ttl_seconds=300),
        lambda lock, n: lock.block(OWNER, "the rollback of run X failed") if n == 2 else None,
        False, "is locked because the rollback of run X failed"),
    "released, then taken by the next run": (
        lambda lock: lock.acquire(OWNER, ttl_seconds=300),
        lambda lock, n: (lock.release(OWNER), lock.acquire("latticedb_deploy_rolling/manual__2", ttl_seconds=300))
        if n == 2 else None, False, "still held by latticedb_deploy_rolling/manual__2"),
}


@pytest.mark.parametrize("case", list(SCRIPTS))
def test_the_nightly_waits_for_its_environment(same_table, case):
    before, script, free, reason = SCRIPTS[case]
    before(same_table)
    started = time.time()
    event, polls = _wait(same_table, lambda n: script(same_table, n))
    assert event["free"] is free, (case, event)
    if free:
        assert event["waited_seconds"] >= 0
    else:
        assert reason in event["reason"], (case, event)
    if case == "held, released at the 3rd poll":
        assert len(polls) == 3, polls  # free at the first poll that saw it free, not before
    if case == "held past the deadline":
        ended = time.time()  # after the event: the trigger checks its deadline after each read
        assert len(polls) > 2 and ended >= started + 2.0, polls  # kept looking until the 2 s deadline


def test_a_read_that_fails_is_tried_again(same_table):
    same_table.acquire(OWNER, ttl_seconds=300)
    failures = []

    def flaky(n):
        if n in (1, 2):
            failures.append(n)
            raise RuntimeError("ThrottlingException")
        if n == 4:
            same_table.release(OWNER)

    event, polls = _wait(same_table, flaky)
    assert failures == [1, 2] and event["free"] is True and len(polls) == 4, (event, polls)


def test_a_wait_whose_last_read_failed_says_so_not_who_held_it(same_table):
    """At the deadline the lease could not be read: the reason says that (and whom it saw last), not "still
    held" by a holder it can no longer see, nor a garbled sentence."""
    same_table.acquire(OWNER, ttl_seconds=300)

    def unreadable_after_the_first(n):
        if n > 1:
            raise RuntimeError("AccessDeniedException: not authorized to perform GetItem")

    event, polls = _wait(same_table, unreadable_after_the_first, wait_seconds=2.0)
    assert event["free"] is False and len(polls) > 2, (event, polls)
    assert "'local''s lease could not be read at the end of the wait (RuntimeError: AccessDeniedException" in event["reason"]
    assert f"last seen held by {OWNER}" in event["reason"] and "still held" not in event["reason"], event

    never, _ = _wait(same_table, lambda n: (_ for _ in ()).throw(RuntimeError("ThrottlingException")), wait_seconds=0.2)
    assert never["free"] is False and "last seen" not in never["reason"] and "could not be read" in never["reason"]


def test_a_restarted_wait_keeps_its_deadline_and_says_whom_it_waited_for(same_table):
    """The triggerer rebuilds the trigger from serialize(): the same deadline and start, so a restart past
    the deadline ends it at its first poll; a wait that ends free names the run it waited for."""
    from latticedb_deploy.triggers.environment_free import EnvironmentFreeTrigger

    same_table.acquire(OWNER, ttl_seconds=300)
    now = time.time()
    first = EnvironmentFreeTrigger(environment="local", poll_seconds=0.05, deadline=now - 1, started_at=now - 61)
    path, kwargs = first.serialize()
    assert path == "latticedb_deploy.triggers.environment_free.EnvironmentFreeTrigger"
    again = EnvironmentFreeTrigger(**kwargs)

    async def first_event(trigger):
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event(again))
    assert event["free"] is False and f"still held by {OWNER} after 6" in event["reason"], event  # 61 s, not 0

    def released_at_2(n):
        if n == 2:
            same_table.release(OWNER)

    same_table.acquire(OWNER, ttl_seconds=300)
    event, _ = _wait(same_table, released_at_2)
    assert event == {**event, "free": True, "waited_for": OWNER} and event["waited_seconds"] > 0, event
    # gone before the trigger's first poll: still named, from what the task saw when it deferred
    gone = EnvironmentFreeTrigger(environment="local", poll_seconds=0.05, deadline=now + 5, started_at=now, holder=OWNER)
    gone = EnvironmentFreeTrigger(**gone.serialize()[1])  # as the triggerer builds it
    event = asyncio.run(first_event(gone))
    assert event["free"] is True and event["waited_for"] == OWNER, event


# ------------------------------------------------------------------ the nightly's task: when it waits, until when
@pytest.fixture
def nightly_local(same_table, tmp_path, monkeypatch):
    """The config with the nightly sent to `local` (the lease table above), waiting an hour."""
    import yaml

    from latticedb_deploy.config import config_path

    raw = yaml.safe_load(config_path().read_text())
    raw["nightly"] = {**raw["nightly"], "environment": "local", "wait_for_environment_seconds": 3600}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    return same_table


def _wait_task(started_minutes_ago: float):
    """wait_for_environment's execute in a run that started that long ago: ("deferred", trigger) or
    ("returned", result) or ("failed", message, XCom held)."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from latticedb_deploy.operators.nightly import WaitForEnvironmentOperator

    pushed = {}
    context = {"dag_run": SimpleNamespace(start_date=datetime.now(UTC) - timedelta(minutes=started_minutes_ago)),
               "ti": SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value)), "params": {}}
    op = WaitForEnvironmentOperator(task_id="wait_for_environment")
    try:
        return ("returned", op.execute(context))
    except TaskDeferred as deferred:
        return ("deferred", deferred.trigger)
    except AirflowFailException as exc:
        return ("failed", str(exc), pushed.get("held"))


def test_the_wait_counts_from_the_runs_start_not_from_a_retry(nightly_local):
    assert _wait_task(5) == ("returned", {"environment": "local", "waited_seconds": 0})  # free: no wait at all
    nightly_local.acquire(OWNER, ttl_seconds=300)
    kind, trigger = _wait_task(10)
    assert kind == "deferred" and abs(trigger.deadline - (time.time() - 600 + 3600)) < 5, trigger.serialize()  # 50 min left
    assert abs(trigger.started_at - time.time()) < 5 and trigger.holder == OWNER  # waited_seconds: the wait's own
    kind, message, held = _wait_task(61)  # a retry after the hour: not another hour
    assert kind == "failed" and held and f"held by {OWNER}" in held and "started more than" in message, (message, held)


def test_a_locked_environment_is_not_waited_for_even_once_its_lease_has_expired(nightly_local):
    """A failed rollback keeps the lease past its expiry (blocked): the nightly fails at once, naming why."""
    nightly_local.acquire(OWNER, ttl_seconds=1, now=time.time() - 3600)  # acquired an hour ago, long expired
    assert nightly_local.block(OWNER, "the rollback of run X failed")
    kind, message, held = _wait_task(1)
    assert kind == "failed" and "is locked because the rollback of run X failed" in held, (message, held)


@pytest.mark.parametrize(("acquire", "reason", "taken"), [
    ("failed", "environment 'staging' is held by latticedb_deploy_canary/manual__9 (since 02:00:04 UTC; ...)", True),
    ("failed", "environment 'staging' is locked since 02:00:04 UTC because a rollback failed (...)", True),
    ("failed", "lock table latticedb-locks-staging does not exist: run the bootstrap", False),  # not a race
    ("failed", "An error occurred (AccessDeniedException) when calling the PutItem operation", False),
    ("failed", None, False),  # killed: no reason recorded
    ("success", None, False),  # it held the environment: a failure after that is the deployment's own
])
def test_the_summary_says_taken_only_when_another_run_had_the_environment(acquire, reason, taken):
    from types import SimpleNamespace

    from latticedb_deploy.operators.nightly import ACQUIRE_TASK_ID, taken_before_held

    ti = SimpleNamespace(
        get_task_states=lambda **kw: {kw["run_ids"][0]: {ACQUIRE_TASK_ID: acquire}},
        xcom_pull=lambda **kw: {"task": ACQUIRE_TASK_ID, "reason": reason} if reason else None)
    why = taken_before_held(ti, "latticedb_deploy_rolling", "nightly__1__deploy")
    assert (why is not None) is taken, why
    if taken:
        assert why.startswith("the environment was taken before the deployment could hold it") and reason in why
