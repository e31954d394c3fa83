"""Poll an ECS service until a revision's rollout completes or fails, in the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from latticedb_deploy.aws import KeptForAWait


class EcsRolloutTrigger(BaseTrigger):
    """Fires once with {"status": completed|failed|timeout|lease_lost, ...} for `task_definition` on `service`;
    failed and timeout carry "troubleshooting": the rollout's service events and stopped tasks' reasons.

    `owner` (the run's "<dag_id>/<run_id>"): the lease is renewed on every poll; if the run lost it,
    the trigger fires {"status": "lease_lost", "reason": who holds it and why} at once.
    `abortable` (a deployment's own wait, not a rollback's): a latticedb_control abort on the lease
    fires {"status": "aborted", "reason": "aborted by <user>: <reason>"} at the next poll.
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
        since: float | None = None,
        abortable: bool = False,
        config: dict | None = None,
        deployment_id: str | None = None,
    ):
        super().__init__()
        self.environment = environment
        self.service = service
        self.task_definition = task_definition
        self.poll_seconds = poll_seconds
        self.deadline = deadline
        self.owner = owner
        self.abortable = abortable
        self.config = config  # the run's config snapshot (latticedb_deploy.run_config)
        self.since = since  # when the wait began: service events from then on are this rollout's
        self.deployment_id = deployment_id  # the ECS deployment the change started (a restart: same revision)
        self._ecs = KeptForAWait()  # the EcsClient of every poll

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
                "since": self.since,
                "abortable": self.abortable,
                "config": self.config,
                "deployment_id": self.deployment_id,
            },
        )

    def _client(self) -> Any:
        from latticedb_deploy import run_config
        from latticedb_deploy.aws.ecs import EcsClient

        return self._ecs.get(lambda: EcsClient(run_config.environment(self.environment, self.config)))

    def _poll_once(self) -> dict:
        from latticedb_deploy.rollout import rollout_status

        return rollout_status(self._client().describe_service(self.service), self.task_definition, since=self.since,
                              deployment_id=self.deployment_id).to_dict()

    def _troubleshoot(self) -> list[str]:
        """Service events of this rollout and its stopped tasks' reasons and exit codes (runbook: troubleshooting)."""
        from latticedb_deploy.rollout import troubleshooting_facts

        ecs = self._client()
        service = ecs.describe_service(self.service)
        stopped = ecs.stopped_tasks(self.service, self.task_definition)
        return troubleshooting_facts(service, stopped, self.task_definition, since=self.since)

    async def _facts(self) -> list[str]:
        try:
            facts = await asyncio.to_thread(self._troubleshoot)
        except Exception as exc:  # noqa: BLE001 - the verdict stands even if the facts cannot be read
            facts = [f"could not read the troubleshooting facts: {type(exc).__name__}: {exc}"]
        for line in facts:
            self.log.warning("%s: %s", self.service, line)
        return facts

    async def _mark_failing(self, lease: Any, reason: str) -> None:
        """A deployment's own wait that fails: the lease marked `failing` (as a failing gate does), so control
        refuses a promote or pause while the task resumes to fail. Not a rollback's wait (it is rolling back)."""
        if self.abortable:
            await lease.mark_failing(reason)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.rollout import COMPLETED, FAILED
        from latticedb_deploy.triggers.lease import LeaseKeeper

        lease = LeaseKeeper(self.environment, self.owner, self.log, self.config)
        last = None
        while True:
            lost = await lease.check()
            if lost:
                yield TriggerEvent({"status": "lease_lost", "state": "lease_lost", "reason": lost})
                return
            if self.abortable and lease.signal is not None and lease.signal.action == "abort":
                yield TriggerEvent({"status": "aborted", "state": "aborted", "reason": lease.signal.message})
                return
            try:
                status = await asyncio.to_thread(self._poll_once)
            except Exception as exc:  # noqa: BLE001 - transient AWS errors: keep polling until the deadline
                self._ecs.drop()  # the next poll builds it again: a rotated connection is read anew
                self.log.warning("Polling %s failed (will retry): %s", self.service, exc)
                status = {"state": "in_progress", "reason": f"poll error: {exc}"}
            if status["reason"] != last:
                self.log.info("%s rollout of %s: %s", self.service, self.task_definition, status["reason"])
                last = status["reason"]
            if status["state"] == COMPLETED:
                yield TriggerEvent({"status": status["state"], **status})
                return
            if status["state"] == FAILED:
                await self._mark_failing(lease, f"{self.service} rollout failed: {status['reason']}")
                yield TriggerEvent({"status": status["state"], **status, "troubleshooting": await self._facts()})
                return
            if time.time() >= self.deadline:
                await self._mark_failing(lease, f"{self.service} rollout timed out: {status['reason']}")
                yield TriggerEvent({"status": "timeout", **status, "troubleshooting": await self._facts()})
                return
            await asyncio.sleep(self.poll_seconds)
