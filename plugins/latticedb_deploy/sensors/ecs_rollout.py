"""Wait, deferrably, until an ECS service's rollout of a revision is COMPLETED or FAILED."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator, owner_or_none


class EcsRolloutSensor(LatticeDBOperator):
    """Defers to EcsRolloutTrigger; `execute_complete` turns its event into success or failure.

    `rollout` is the result of the task that started the rollout ({"service", "task_definition", ...};
    in a DAG that task's `.output`), so a retry watches the same rollout.
    """

    template_fields = (*LatticeDBOperator.template_fields, "rollout")

    def __init__(self, *, rollout: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.rollout = rollout

    def execute(self, context: Any) -> Any:
        from latticedb_deploy.triggers.ecs_rollout import EcsRolloutTrigger

        if not self.rollout:
            raise AirflowFailException(f"{self.task_id}: no rollout given (the result of the task that started it)")
        service, task_definition = self.rollout["service"], self.rollout["task_definition"]
        rollout = self.env.rollout
        trigger = EcsRolloutTrigger(
            environment=self.env.name,
            config=self.config_snapshot,
            service=service,
            task_definition=task_definition,
            poll_seconds=rollout.poll_seconds,
            deadline=time.time() + rollout.timeout_seconds,
            owner=owner_or_none(context),  # the trigger renews the run's lease on every poll
            since=time.time(),
            abortable=not self.task_id.startswith("rollback."),  # latticedb_control's abort stops a deployment's wait
            # A restart's new deployment of the same revision: a read that has not caught up shows the old one,
            # settled on that revision, which without its id would pass for the restart done.
            deployment_id=self.rollout.get("deployment_id"),
        )
        self.log.info("Waiting for %s to run %s (timeout %ss)", service, task_definition, rollout.timeout_seconds)
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        if event["status"] == "lease_lost":
            self.lease_lost(context, event["reason"])
        if event["status"] == "completed":
            self.log.info("Rollout completed: %s", event["reason"])
            return event
        facts = event.get("troubleshooting") or []
        message = f"rollout {event['status']}: {event['reason']}"
        if facts:
            message += "\nTroubleshooting (ECS service events, stopped tasks):\n" + "\n".join(f"- {f}" for f in facts)
            context["ti"].xcom_push(key="troubleshooting", value=facts)
        self.log.error("%s", message)
        raise AirflowFailException(message)
