"""Wait, in the triggerer, until no run holds an environment's lease (or its hold lapsed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from latticedb_deploy.aws import KeptForAWait


def lease_state(holder: Any, name: str) -> tuple[str, str | None]:
    """What a lease means for a run that wants environment `name`: ("free", None) when nobody holds it or
    the hold lapsed; ("locked", why) after a failed rollback (a person must look); ("held", who and since when)."""
    from latticedb_deploy.control import clock

    if holder is None or holder.expired():
        return "free", None
    if holder.blocked:
        return "locked", f"{name!r} is locked because {holder.blocked} (latticedb_unlock clears it)"
    return "held", f"{name!r} is held by {holder.owner} (since {clock(holder.acquired_at)})"


class EnvironmentFreeTrigger(BaseTrigger):
    """Fires once: {"free": True, "waited_seconds", "waited_for"} as soon as nobody holds `environment` (or the
    hold lapsed); {"free": False, "reason"} when it is locked after a failed rollback (a person must look:
    latticedb_unlock) or still held at `deadline`. A read that fails (AWS throttled or down) is logged
    and tried again at the next poll. `holder`: who held it when the wait began (named if it lets go before
    the first poll)."""

    def __init__(self, *, environment: str, poll_seconds: float, deadline: float, started_at: float,
                 config: dict | None = None, holder: str | None = None):
        super().__init__()
        self.environment = environment
        self.poll_seconds = poll_seconds
        self.deadline = deadline
        self.started_at = started_at
        self.config = config
        self.holder = holder
        self._lock = KeptForAWait()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.environment_free.EnvironmentFreeTrigger",
            {"environment": self.environment, "poll_seconds": self.poll_seconds, "deadline": self.deadline,
             "started_at": self.started_at, "config": self.config, "holder": self.holder},
        )

    def _holder(self) -> Any:
        from latticedb_deploy import run_config
        from latticedb_deploy.aws.locks import EnvironmentLock

        lock = self._lock.get(lambda: EnvironmentLock(run_config.environment(self.environment, self.config)))
        return lock.holder()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        last, error = self.holder, None  # the holder last seen; why the latest read failed (None: it did not)
        while True:
            try:
                holder = await asyncio.to_thread(self._holder)
            except Exception as exc:  # noqa: BLE001 - not an answer: look again at the next poll
                self.log.warning("reading the lease on %s failed (will retry): %s", self.environment, exc)
                self._lock.drop()
                error = f"{type(exc).__name__}: {exc}"
            else:
                error = None
                state, why = lease_state(holder, self.environment)
                if state == "free":
                    yield TriggerEvent({"free": True, "waited_seconds": round(time.time() - self.started_at, 1),
                                        "waited_for": last})
                    return
                if state == "locked":
                    yield TriggerEvent({"free": False, "reason": why})
                    return
                if holder.owner != last:
                    self.log.info("%s: waiting", why)
                last = holder.owner
            now = time.time()
            if now >= self.deadline:
                yield TriggerEvent({"free": False, "reason": self._timed_out(last, error, now)})
                return
            await asyncio.sleep(min(self.poll_seconds, self.deadline - now))

    def _timed_out(self, last: str | None, error: str | None, now: float) -> str:
        """Why the wait ended without the environment: held by whom, or its lease unreadable at the end."""
        waited = f"after {now - self.started_at:.0f} s of waiting"
        if error is None:
            return f"{self.environment!r} was still held by {last} {waited}"
        seen = f"; last seen held by {last}" if last else ""
        return f"{self.environment!r}'s lease could not be read at the end of the wait ({error}){seen}, {waited}"
