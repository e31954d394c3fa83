"""Poll an ECS service until a revision's rollout completes or fails, in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class EcsRolloutTrigger(BaseTrigger):
    """Fires once with {"status": completed|failed|timeout|lease_lost, ...} for `task_definition` on `service`.

    `owner` (the run's "<dag_id>/<run_id>"): the lease is renewed on every poll; if the run lost it,
    the trigger fires {"status": "lease_lost", "reason": who holds it and why} at once.
    """

    def __init__(
        self,
        *,
        environment: str,
        service: str,
        task_definition: str,
        poll_seconds: float,
        deadline: float,
        owner: str | None = None,
    ):
        super().__init__()
        self.environment = environment
        self.service = service
        self.task_definition = task_definition
        self.poll_seconds = poll_seconds
        self.deadline = deadline
        self.owner = owner

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.ecs_rollout.EcsRolloutTrigger",
            {
                "environment": self.environment,
                "service": self.service,
                "task_definition": self.task_definition,
                "poll_seconds": self.poll_seconds,
                "deadline": self.deadline,
                "owner": self.owner,
            },
        )

    def _poll_once(self) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.config import load_config
        from latticedb_deploy.rollout import rollout_status

        env = load_config().environment(self.environment)
        return rollout_status(EcsClient(env).describe_service(self.service), self.task_definition).to_dict()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.rollout import COMPLETED, FAILED
        from latticedb_deploy.triggers.lease import LeaseKeeper

        lease = LeaseKeeper(self.environment, self.owner, self.log)
        last = None
        while True:
            lost = await lease.check()
            if lost:
                yield TriggerEvent({"status": "lease_lost", "state": "lease_lost", "reason": lost})
                return
            try:
                status = await asyncio.to_thread(self._poll_once)
            except Exception as exc:  # noqa: BLE001 - transient AWS errors: keep polling until the deadline
                self.log.warning("Polling %s failed (will retry): %s", self.service, exc)
                status = {"state": "in_progress", "reason": f"poll error: {exc}"}
            if status["reason"] != last:
                self.log.info("%s rollout of %s: %s", self.service, self.task_definition, status["reason"])
                last = status["reason"]
            if status["state"] in (COMPLETED, FAILED):
                yield TriggerEvent({"status": status["state"], **status})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", **status})
                return
            await asyncio.sleep(self.poll_seconds)
