"""A slot may take traffic only when it runs the expected revision, settled, at size, with healthy targets."""

from __future__ import annotations

import pytest

from latticedb_deploy.readiness import SlotExpectation, last_good_slot, new_slot, slot_problems

TD1 = "arn:aws:ecs:us-east-1:123456789012:task-definition/latticedb-task-local:1"
TD2 = "arn:aws:ecs:us-east-1:123456789012:task-definition/latticedb-task-local:2"
EXPECT = SlotExpectation("blue", "arn:tg/blue", TD1, 2)


def service(td=TD1, desired=2, running=2, deployments=None) -> dict:
    deployments = deployments if deployments is not None else [
        {"status": "PRIMARY", "rolloutState": "COMPLETED", "taskDefinition": td, "runningCount": running}
    ]
    return {"taskDefinition": td, "desiredCount": desired, "runningCount": running, "deployments": deployments}


def test_a_settled_full_slot_with_healthy_targets_is_ready():
    assert slot_problems(service(), EXPECT, healthy_targets=2) == []


@pytest.mark.parametrize(
    ("svc", "healthy", "says"),
    [
        (service(desired=0, running=0), 0, "wants 0 tasks, expected 2"),  # scaled to zero: the outage case
        (service(td=TD2), 2, "runs latticedb-task-local:2, not latticedb-task-local:1"),
        (service(running=1), 1, "1/2 tasks running"),
        (service(), 1, "1/2 healthy targets"),  # tasks run, targets still `initial`
        (
            service(deployments=[
                {"status": "PRIMARY", "rolloutState": "IN_PROGRESS"},
                {"status": "ACTIVE", "rolloutState": "COMPLETED"},
            ]),
            2,
            "is not settled",
        ),
    ],
)
def test_a_slot_that_cannot_serve_yet_says_why(svc, healthy, says):
    problems = slot_problems(svc, EXPECT, healthy_targets=healthy)
    assert any(says in p for p in problems), problems


def test_an_expectation_of_zero_tasks_is_never_ready():
    problems = slot_problems(service(desired=0, running=0), SlotExpectation("blue", "arn:tg/blue", TD1, 0), 0)
    assert any("cannot take traffic" in p for p in problems), problems


def test_expectations_come_from_the_recorded_baseline_and_the_new_revision():
    baseline = {
        "service": "blue", "target_group_arn": "arn:tg/blue", "task_definition": TD1, "desired_count": 2,
        "idle_service": "green", "idle_target_group_arn": "arn:tg/green",
    }
    assert last_good_slot(baseline) == EXPECT
    assert new_slot(baseline, {"task_definition": TD2}) == SlotExpectation("green", "arn:tg/green", TD2, 2)


@pytest.mark.parametrize(
    ("svc", "says"),
    [
        (service(), None),
        (service(running=1), "1/2 tasks running"),
        (service(desired=0, running=0), "wants no tasks"),
        (service(deployments=[{"status": "PRIMARY", "rolloutState": "IN_PROGRESS"}]), "is not settled"),
        (service(deployments=[{"status": "PRIMARY", "rolloutState": "COMPLETED"},
                              {"status": "ACTIVE", "rolloutState": "COMPLETED"}]), "is not settled"),
        (service(deployments=[{"status": "ACTIVE", "rolloutState": "COMPLETED"}]), "is not settled"),
    ],
)
def test_one_answer_to_is_this_service_settled(svc, says):
    """readiness.unsettled: what the weight guard, pre-flight, post-deployment checks, rollout waits and
    the emergency rollback all ask; each of them agrees with it."""
    from latticedb_deploy.operators.emergency import is_warm
    from latticedb_deploy.readiness import unsettled
    from latticedb_deploy.rollout import COMPLETED, rollout_status

    why = unsettled(svc, "blue")
    assert (why is None) is (says is None) and (says is None or says in why), why
    assert is_warm(svc, TD2) is (says is None)
    assert (rollout_status({**svc, "deployments": [{"taskDefinition": TD1, **d} for d in svc["deployments"]]}, TD1).state
            == COMPLETED) is (says is None)
    assert (slot_problems(svc, EXPECT, healthy_targets=2) == []) is (says is None)
