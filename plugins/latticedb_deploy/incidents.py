"""A failed rollback is an incident: which tasks are rollbacks, and what production looks like now.

When a rollback task fails for good, the failure callback posts "ROLLBACK FAILED: manual action
needed" with the live listener weights and each slot's revision and running count (read here), and
the run's release_environment keeps the environment locked until a person clears it.
"""

from __future__ import annotations

from typing import Any

INCIDENT_TITLE = "ROLLBACK FAILED: manual action needed"
EMERGENCY_DAG_ID = "latticedb_rollback"
# The emergency rollback's tasks that change or verify production (plan only reads; failing there changes nothing).
EMERGENCY_ROLLBACK_TASKS = ("switch_listener", "update_service", "wait_for_rollout", "verify")
# A snapshot must not hang on an AWS endpoint that is down: short timeouts, few attempts.
_QUICK = {"connect_timeout": 3, "read_timeout": 5, "retries": {"max_attempts": 2, "mode": "standard"}}


def is_rollback_task(dag_id: str, task_id: str) -> bool:
    """A task whose failure means production may be left in a bad state, with nobody fixing it."""
    if dag_id == EMERGENCY_DAG_ID:
        return task_id in EMERGENCY_ROLLBACK_TASKS
    # rollback.notify_rollback included: it verifies the restored version, and an unhealthy restore is an incident too.
    return task_id.startswith("rollback.")


def _quick_client(env: Any, service: str) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.config import Config

    return AwsBaseHook(
        aws_conn_id=env.aws_conn_id, client_type=service, region_name=env.region, config=Config(**_QUICK)
    ).conn


def live_state(env: Any) -> dict[str, str]:
    """Slack fields: the production listener's weights, and each slot's revision and running tasks.

    Never raises: what could not be read says so (the AWS endpoint may be why the rollback failed)."""
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient

    fields: dict[str, str] = {}
    try:
        traffic = TrafficClient(env, client=_quick_client(env, "elbv2"))
        slots = traffic.slots()
        weights = traffic.weights()
        fields["Listener weights"] = " / ".join(f"{s.colour} {weights.get(s.target_group_arn, 0)}%" for s in slots)
    except Exception as exc:  # noqa: BLE001 - report what we can
        fields["Listener weights"] = f"could not read: {exc}"[:300]
    try:
        ecs = EcsClient(env, client=_quick_client(env, "ecs"))
        for colour, service in zip(("blue", "green"), env.services, strict=True):
            svc = ecs.describe_service(service)
            deployments = len(svc.get("deployments") or [])
            fields[f"{colour} slot"] = (
                f"{service}: {svc['taskDefinition'].split('/')[-1]}, {svc.get('runningCount', 0)}/"
                f"{svc.get('desiredCount', 0)} running" + (f", {deployments} deployments in progress" if deployments > 1 else "")
            )
    except Exception as exc:  # noqa: BLE001
        fields["Slots"] = f"could not read: {exc}"[:300]
    return fields
