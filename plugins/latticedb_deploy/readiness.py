"""Is a slot fit to take traffic? The check every weight change makes before it gives a slot weight > 0.

Pure: reads an ECS `describe_services` payload and a count of healthy targets, so the same verdict
is reached by the operators, the rollback and the tests, with no AWS in the way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
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
    deployments = service.get("deployments") or []
    unsettled = [d for d in deployments if d.get("status") != "PRIMARY" or d.get("rolloutState", "COMPLETED") != "COMPLETED"]
    if len(deployments) > 1 or unsettled:
        states = ", ".join(f"{d.get('status')}/{d.get('rolloutState')}" for d in deployments)
        problems.append(f"{name} is not settled (deployments: {states})")
    running = service.get("runningCount", 0)
    want = max(expected.desired_count, 1)
    if running < want:
        problems.append(f"{name} has {running}/{want} tasks running")
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
