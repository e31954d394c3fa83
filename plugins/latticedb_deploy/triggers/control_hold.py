"""Hold a traffic step while a person has paused the deployment (latticedb_control), from the triggerer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class ControlHoldTrigger(BaseTrigger):
    """Renews `owner`'s lease every `poll_seconds` until its control signal is no longer `pause`.

    Fires {"released": <the signal then, or None>} (resume, or an abort/promote the step then obeys), or
    {"lease_lost": True, "reason": ...} when the run lost the environment.
    """

    def __init__(self, *, environment: str, owner: str, poll_seconds: float, config: dict | None = None):
        super().__init__()
        self.environment, self.owner, self.poll_seconds = environment, owner, poll_seconds
        self.config = config  # the run's config snapshot (latticedb_deploy.run_config)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.control_hold.ControlHoldTrigger",
            {"environment": self.environment, "owner": self.owner, "poll_seconds": self.poll_seconds,
             "config": self.config},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.triggers.lease import LeaseKeeper

        lease = LeaseKeeper(self.environment, self.owner, self.log, self.config)
        announced = False
        while True:
            lost = await lease.check()
            if lost:
                yield TriggerEvent({"lease_lost": True, "reason": lost})
                return
            signal = lease.signal
            if signal is None or not signal.paused:
                yield TriggerEvent({"released": signal.to_dict() if signal else None})
                return
            if not announced:
                self.log.warning("holding: %s", signal.message)
                announced = True
            await asyncio.sleep(self.poll_seconds)
