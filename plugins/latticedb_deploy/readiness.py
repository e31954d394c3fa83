"""Is a slot fit to take traffic? The check every weight change makes before it gives a slot weight > 0.

Pure: reads an ECS `describe_services` payload and a count of healthy targets, so the same verdict
is reached by the operators, the rollback and the tests, with no AWS in the way.
"""

from __future__ import annotations

from latticedb_deploy.models import frozen_model


@frozen_model
class SlotExpectation:
    """What a slot must be running before it may take traffic."""

    service: str
    target_group_arn: str
    task_definition: str
    desired_count: int

    def to_dict(self) -> dict:
        return {
            "service": self.service,
            "target_group_arn": self.target_group_arn,
            "task_definition": self.task_definition,
            "desired_count": self.desired_count,
        }


def _short(arn: str | None) -> str:
    return (arn or "?").split("/")[-1]


def unsettled(service: dict, name: str | None = None) -> str | None:
    """Why an ECS service is not settled, or None: one deployment, PRIMARY and COMPLETED, with every
    desired task running (and at least one). The one answer to "is this service settled?" that the
    weight guard, pre-flight, the post-deployment checks and the emergency rollback all ask."""
    name = name or service.get("serviceName") or "the service"
    deployments = service.get("deployments") or []
    if len(deployments) > 1 or any(
        d.get("status") != "PRIMARY" or d.get("rolloutState", "COMPLETED") != "COMPLETED" for d in deployments
    ):
        states = ", ".join(f"{d.get('status')}/{d.get('rolloutState')}" for d in deployments)
        return f"{name} is not settled (deployments: {states})"
    running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
    if desired <= 0:
        return f"{name} wants no tasks"
    if running != desired:
        return f"{name} has {running}/{desired} tasks running"
    return None


def slot_problems(service: dict, expected: SlotExpectation, healthy_targets: int) -> list[str]:
    """Why `service` may not take traffic yet; empty when it runs the expected revision, settled, at the
    expected size, with as many healthy targets as tasks."""
    problems = []
    name = expected.service
    if service.get("taskDefinition") != expected.task_definition:
        problems.append(f"{name} runs {_short(service.get('taskDefinition'))}, not {_short(expected.task_definition)}")
    desired = service.get("desiredCount", 0)
    if expected.desired_count <= 0:
        problems.append(f"{name}: expected size is {expected.desired_count}; a slot with no tasks cannot take traffic")
    elif desired != expected.desired_count:
        problems.append(f"{name} wants {desired} tasks, expected {expected.desired_count}")
    why = unsettled(service, name)
    if why and not (desired <= 0 < expected.desired_count):  # a slot scaled to zero is said above
        problems.append(why)
    want = max(expected.desired_count, 1)
    if healthy_targets < want:
        problems.append(f"{name} has {healthy_targets}/{want} healthy targets")
    return problems


def last_good_slot(baseline: dict) -> SlotExpectation:
    """The slot that served before the deployment, as `prepare.record_baseline` recorded it."""
    return SlotExpectation(
        baseline["service"], baseline["target_group_arn"], baseline["task_definition"], baseline["desired_count"]
    )


def new_slot(baseline: dict, new: dict) -> SlotExpectation:
    """The idle slot on the new revision (`prepare.register_task_definition`), sized like the last good one."""
    return SlotExpectation(
        baseline["idle_service"], baseline["idle_target_group_arn"], new["task_definition"], baseline["desired_count"]
    )
