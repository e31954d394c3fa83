"""Keep a run's environment lease alive from the triggerer while the run waits (and notice losing it)."""

from __future__ import annotations

import asyncio
from typing import Any

from latticedb_deploy.aws import KeptForAWait

MARK_TIMEOUT_SECONDS = 5.0  # the failing mark's write, at most: the event it comes before starts the rollback


class LeaseKeeper:
    """Renews `owner`'s lease on `environment`; `check()` returns why it was lost, else None.

    A renewal that fails for another reason (AWS throttled or down) is logged and tried again at the
    next poll: the lease lasts `lock_ttl_seconds`, far longer than a poll. `owner` None: nothing to do
    (a trigger serialized before leases were renewed from the triggerer).

    `signal`: the latticedb_control signal on the lease item as of the last renewal (the renewal reads
    the item anyway), so a person's promote/pause/resume/abort reaches a deferred wait within one poll.
    """

    def __init__(self, environment: str, owner: str | None, log: Any, config: dict | None = None):
        self.environment, self.owner, self.log, self.config = environment, owner, log, config
        self._lock = KeptForAWait()  # the EnvironmentLock (its DynamoDB client) of every renewal
        self.signal = None
        self.control = None  # the signal as stored (JSON) at the last renewal: what a mark is written over

    def _renew(self) -> str | None:
        from latticedb_deploy import run_config
        from latticedb_deploy.aws.locks import EnvironmentLock, LeaseLostError

        lock = self._lock.get(lambda: EnvironmentLock(run_config.environment(self.environment, self.config)))
        try:
            holder = lock.renew(self.owner)
        except LeaseLostError as exc:
            return str(exc)
        self.control = holder.control
        try:
            self.signal = holder.signal
        except (ValueError, TypeError) as exc:  # a malformed signal is not a verdict: ignore it, loudly
            self.log.error("ignoring an unreadable control signal on %s: %s", self.environment, exc)
        return None

    async def check(self) -> str | None:
        if not self.owner:
            return None
        try:
            lost = await asyncio.to_thread(self._renew)
        except Exception as exc:  # noqa: BLE001 - not a verdict on the lease: try again next poll
            self.log.warning("renewing the lease on %s for %s failed (will retry): %s", self.environment, self.owner, exc)
            self._lock.drop()  # the next poll builds its client again: a rotated connection is read anew
            return None
        if lost:
            self.log.error("%s", lost)
        return lost

    def _mark_failing(self, reason: str) -> bool:
        import time

        from latticedb_deploy import run_config
        from latticedb_deploy.aws.locks import EnvironmentLock
        from latticedb_deploy.control import FAILING, ControlSignal, phase_marker

        current = ControlSignal.from_json(self.control)  # exactly what the write's condition expects to replace
        lock = self._lock.get(lambda: EnvironmentLock(run_config.environment(self.environment, self.config)))
        marker = phase_marker(FAILING, current, owner=self.owner, now=time.time(), reason=reason)
        return lock.signal(self.owner, marker.to_json(), self.control)

    async def mark_failing(self, reason: str) -> bool:
        """Mark the lease `failing` (control.FAILING) as the wait fails on its verdict, so a promote, pause or resume
        sent before the rollback's own mark is refused rather than accepted and ignored. Only over no signal, a spent
        resume or a pause (control.markable_over; a pending promote or abort, or a mark, stays as it is: the write
        is conditional on the item as last renewed, so one written since is not overwritten either). Best effort:
        never raises; whether it was written. Callers need not check the rule: nothing is asked of DynamoDB then."""
        from latticedb_deploy.control import ControlSignal, markable_over, strategy_of_owner

        if not self.owner or strategy_of_owner(self.owner) is None:
            return False  # no lease, or not a deployment's (latticedb_service's own rollout wait)
        if not markable_over(ControlSignal.from_json(self.control)):
            return False  # a pending promote or abort, or a mark: it stays
        try:  # bounded: a slow DynamoDB must not hold the failing event (and so the rollback) back
            written = await asyncio.wait_for(asyncio.to_thread(self._mark_failing, reason), MARK_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the verdict stands whatever the mark does
            self.log.warning("could not mark %s failing for %s: %s", self.environment, self.owner, exc)
            return False
        if not written:
            self.log.info("%s's lease changed since the last renewal: not marked failing", self.environment)
        return written
