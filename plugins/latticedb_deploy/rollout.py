"""Read an ECS service description and say where a rollout stands.

Shared by the rollout sensor and its trigger so both reach the same verdict from the
same `describe_services` payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"


@dataclass(frozen=True)
class RolloutStatus:
    state: str
    reason: str
    running: int = 0
    desired: int = 0
    failed_tasks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


# How long after the wait began a description that shows neither our deployment nor our revision is
# taken for a stale read, not a replacement: "The Amazon ECS API follows an eventual consistency model"
# (ECS API reference), so a DescribeServices right after UpdateService may show the service as it was.
# A circuit breaker's rollback takes several failed tasks, far longer than this.
CONSISTENCY_GRACE_SECONDS = 30.0


def rollout_status(
    service: dict, task_definition_arn: str, *, since: float | None = None, now: float | None = None,
    deployment_id: str | None = None,
) -> RolloutStatus:
    """Where the rollout of `task_definition_arn` on `service` stands right now: completed once the
    service is settled (latticedb_deploy.readiness.unsettled) on it. `since`: when the wait began (just
    after the UpdateService); within CONSISTENCY_GRACE_SECONDS of it, a description without our
    deployment is a read that has not caught up yet. `deployment_id` (the deployment the UpdateService
    answered with): only that deployment is ours. A restart deploys the same revision again, and a read
    that has not caught up shows the old deployment, settled on it: by revision alone, done at once."""
    import time

    from latticedb_deploy.readiness import unsettled

    deployments = service.get("deployments") or []
    ours = [d for d in deployments if d.get("taskDefinition") == task_definition_arn
            and (deployment_id is None or d.get("id") == deployment_id)]
    failed = [d for d in ours if d.get("rolloutState") == "FAILED"]
    if failed:
        d = failed[0]
        return RolloutStatus(
            FAILED,
            d.get("rolloutStateReason") or "ECS reported the deployment as FAILED",
            d.get("runningCount", 0),
            d.get("desiredCount", 0),
            d.get("failedTasks", 0),
        )
    if not ours and deployment_id is not None:
        now = time.time() if now is None else now
        if since is not None and now - since < CONSISTENCY_GRACE_SECONDS:
            return RolloutStatus(IN_PROGRESS, f"ECS does not show deployment {deployment_id} yet "
                                              "(its API is eventually consistent): looking again")
        return RolloutStatus(FAILED, f"deployment {deployment_id} is gone from the service (now on "
                                     f"{service.get('taskDefinition')}): the ECS deployment circuit breaker or "
                                     "someone else replaced it")
    if not ours:
        now = time.time() if now is None else now
        if service.get("taskDefinition") != task_definition_arn and since is not None and now - since < CONSISTENCY_GRACE_SECONDS:
            return RolloutStatus(IN_PROGRESS, f"ECS does not show the deployment of {task_definition_arn} yet "
                                              "(its API is eventually consistent): looking again")
        if service.get("taskDefinition") != task_definition_arn:
            return RolloutStatus(
                FAILED,
                f"service now runs {service.get('taskDefinition')}, not {task_definition_arn} "
                "(the ECS deployment circuit breaker or someone else replaced it)",
            )
        return RolloutStatus(IN_PROGRESS, "waiting for ECS to start the deployment")
    primary = next((d for d in ours if d.get("status") == "PRIMARY"), ours[0])
    running, desired = primary.get("runningCount", 0), primary.get("desiredCount", 0)
    failed_tasks = primary.get("failedTasks", 0)
    done = primary.get("status") == "PRIMARY" and unsettled(service) is None
    if done:
        return RolloutStatus(COMPLETED, f"{running}/{desired} tasks running, deployment completed", running, desired)
    return RolloutStatus(
        IN_PROGRESS,
        f"{running}/{desired} tasks running, {failed_tasks} failed, {len(deployments)} deployments active",
        running,
        desired,
        failed_tasks,
    )


def _when(moment: Any) -> str:
    if isinstance(moment, datetime):
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%H:%M:%SZ")
    return str(moment or "?")


def _epoch(moment: Any) -> float | None:
    return moment.timestamp() if isinstance(moment, datetime) else None


def troubleshooting_facts(
    service: dict, stopped_tasks: list[dict], task_definition: str, *, since: float | None = None, max_events: int = 6
) -> list[str]:
    """The runbook's troubleshooting facts for a rollout of `task_definition` that failed or timed out.

    Each stopped task's stoppedReason, stop code and its containers' exit codes first (the most
    telling, and a Slack message is cut at 1500 characters), then the service's events about the
    rollout (those naming one of its deployments, or newer than `since`), newest first. Plain
    strings, for a failure message, a log and XCom.
    """
    lines = []
    for task in stopped_tasks:
        task_id = str(task.get("taskArn", "?")).rsplit("/", 1)[-1]
        revision = str(task.get("taskDefinitionArn", "?")).rsplit("/", 1)[-1]
        reason = task.get("stoppedReason") or "no stoppedReason"
        code = f" [{task['stopCode']}]" if task.get("stopCode") else ""
        containers = "; ".join(
            f"container {c.get('name', '?')} exit code {c.get('exitCode', 'none')}" + (f" ({c['reason']})" if c.get("reason") else "")
            for c in task.get("containers") or []
        )
        lines.append(
            f"stopped task {task_id} ({revision}) at {_when(task.get('stoppedAt'))}: {reason}{code}"
            + (f"; {containers}" if containers else "")
        )
    if not stopped_tasks:
        lines.append("no stopped tasks of this revision (ECS keeps stopped tasks for about an hour)")
    ids = [d["id"] for d in service.get("deployments") or [] if d.get("taskDefinition") == task_definition and d.get("id")]
    events = []
    for event in service.get("events") or []:
        message = str(event.get("message") or "")
        at = _epoch(event.get("createdAt"))
        if any(i in message for i in ids) or (since is not None and at is not None and at >= since):
            events.append(f"event {_when(event.get('createdAt'))}: {message}")
    lines += events[:max_events] or ["no ECS service events for this rollout"]
    return lines
