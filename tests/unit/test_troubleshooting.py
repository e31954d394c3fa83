"""Issue 15, troubleshooting facts: stopped tasks (ListTasks STOPPED + DescribeTasks) and the service
events of a failed rollout, read with botocore Stubber and formatted from known payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from latticedb_deploy.aws.ecs import EcsClient
from latticedb_deploy.config import load_config
from latticedb_deploy.rollout import troubleshooting_facts

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def env():
    return load_config().environment("local")


def _td(env, rev):
    return f"arn:aws:ecs:us-east-1:123456789012:task-definition/{env.task_family}:{rev}"


def _task(env, tid, rev, service, stopped_at, exit_code=1, group=None):
    return {
        "taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/{env.cluster}/{tid}",
        "taskDefinitionArn": _td(env, rev),
        "group": group or f"service:{service}",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stoppedReason": "Essential container in task exited",
        "stopCode": "EssentialContainerExited",
        "stoppedAt": stopped_at,
        "containers": [{"name": env.container_name, "exitCode": exit_code, "reason": "OutOfMemoryError: Container killed"}],
    }


def test_stopped_tasks_of_the_revision_newest_first(env):
    client = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    arns = [f"arn:aws:ecs:us-east-1:123456789012:task/{env.cluster}/{t}" for t in ("a", "b", "c", "d")]
    tasks = [
        _task(env, "a", 7, env.service, T0),
        _task(env, "b", 7, env.service, T0 + timedelta(seconds=20), exit_code=137),
        _task(env, "c", 6, env.service, T0 + timedelta(seconds=30)),  # another revision
        _task(env, "d", 7, env.green_service, T0 + timedelta(seconds=40)),  # the other slot
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "list_tasks", {"taskArns": arns[:2], "nextToken": "n"},
            {"cluster": env.cluster, "serviceName": env.service, "desiredStatus": "STOPPED"},
        )
        stub.add_response(
            "list_tasks", {"taskArns": arns[2:]},
            {"cluster": env.cluster, "serviceName": env.service, "desiredStatus": "STOPPED", "nextToken": "n"},
        )
        stub.add_response("describe_tasks", {"tasks": tasks}, {"cluster": env.cluster, "tasks": arns})
        found = EcsClient(env, client=client).stopped_tasks(env.service, _td(env, 7))
        stub.assert_no_pending_responses()
    assert [t["taskArn"].rsplit("/", 1)[-1] for t in found] == ["b", "a"]


def test_facts_name_reasons_exit_codes_and_the_rollouts_events(env):
    service = {
        "deployments": [
            {"id": "ecs-svc/111", "taskDefinition": _td(env, 6), "status": "PRIMARY"},
            {"id": "ecs-svc/222", "taskDefinition": _td(env, 7), "status": "ACTIVE", "rolloutState": "FAILED"},
        ],
        "events": [
            {"createdAt": T0 + timedelta(seconds=50), "message": "(service s) (deployment ecs-svc/222) deployment failed: tasks failed to start."},
            {"createdAt": T0 + timedelta(seconds=40), "message": "(service s) has stopped 1 running tasks: (task b). Reason: Essential container in task exited"},
            {"createdAt": T0 - timedelta(hours=1), "message": "(service s) has reached a steady state."},  # before the rollout
            {"createdAt": T0 - timedelta(hours=2), "message": "(service s) has started 2 tasks: (deployment ecs-svc/222)."},
        ],
    }
    stopped = [_task(env, "b", 7, env.service, T0 + timedelta(seconds=40), exit_code=137)]
    facts = troubleshooting_facts(service, stopped, _td(env, 7), since=T0.timestamp())
    assert facts[0] == (
        f"stopped task b ({env.task_family}:7) at 12:00:40Z: Essential container in task exited [EssentialContainerExited]; "
        f"container {env.container_name} exit code 137 (OutOfMemoryError: Container killed)"
    )
    assert facts[1:] == [
        "event 12:00:50Z: (service s) (deployment ecs-svc/222) deployment failed: tasks failed to start.",
        "event 12:00:40Z: (service s) has stopped 1 running tasks: (task b). Reason: Essential container in task exited",
        "event 10:00:00Z: (service s) has started 2 tasks: (deployment ecs-svc/222).",  # names the deployment
    ]


def test_nothing_to_show_says_so(env):
    facts = troubleshooting_facts({"deployments": [], "events": []}, [], _td(env, 7), since=T0.timestamp())
    assert facts == [
        "no stopped tasks of this revision (ECS keeps stopped tasks for about an hour)",
        "no ECS service events for this rollout",
    ]
