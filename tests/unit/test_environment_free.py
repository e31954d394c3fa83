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
    event, polls = _wait(same_table, lambda n: script(same_table, n))
    assert event["free"] is free, (case, event)
    if free:
        assert event["waited_seconds"] >= 0
    else:
        assert reason in event["reason"], (case, event)
    if case == "held, released at the 3rd poll":
        assert len(polls) == 3, polls  # free at the first poll that saw it free, not before
    if case == "held past the deadline":
        assert polls[-1] - polls[0] >= 1.5 and len(polls) >= 10, polls  # kept looking until the deadline


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
