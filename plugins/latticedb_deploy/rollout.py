"""Read an ECS service description and say where a rollout stands.

Shared by the rollout sensor and its trigger so both reach the same verdict from the
same `describe_services` payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


def rollout_status(service: dict, task_definition_arn: str) -> RolloutStatus:
    """Where the rollout of `task_definition_arn` on `service` stands right now."""
    deployments = service.get("deployments") or []
    ours = [d for d in deployments if d.get("taskDefinition") == task_definition_arn]
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
    if not ours:
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
    done = (
        primary.get("status") == "PRIMARY"
        and primary.get("rolloutState", "COMPLETED") == "COMPLETED"
        and running == desired
        and len(deployments) == 1
    )
    if done:
        return RolloutStatus(COMPLETED, f"{running}/{desired} tasks running, deployment completed", running, desired)
    return RolloutStatus(
        IN_PROGRESS,
        f"{running}/{desired} tasks running, {failed_tasks} failed, {len(deployments)} deployments active",
        running,
        desired,
        failed_tasks,
    )
