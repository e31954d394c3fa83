"""The runbook's pre-flight checks as plain functions: (environment, image) -> CheckResult.

Each check reads AWS through the clients and never mutates anything; the preflight
task group runs one task per check so the graph shows which one failed.
"""

from __future__ import annotations

from collections.abc import Callable

from latticedb_deploy.config import Environment, load_config
from latticedb_deploy.images import InvalidImageError, parse_image_uri
from latticedb_deploy.preflight import FAIL, PASS, WARN, CheckResult


def check_configuration(env: Environment, image_uri: str, params: dict) -> CheckResult:
    name = "Configuration files valid"
    load_config()  # re-validate the file as it is on disk now, not as it was at parse time
    try:
        parse_image_uri(image_uri)
    except InvalidImageError as exc:
        return CheckResult(name, FAIL, str(exc))
    return CheckResult(name, PASS, f"config loads; environment {env.name!r} -> cluster {env.cluster}")


def check_aws_credentials(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws import boto_client

    name = "AWS credentials valid"
    try:
        identity = boto_client(env, "sts").get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - any failure here means the credentials are unusable
        return CheckResult(name, FAIL, f"STS GetCallerIdentity failed via connection {env.aws_conn_id!r}: {exc}")
    if identity["Account"] != env.account_id:
        return CheckResult(
            name, FAIL, f"credentials are for account {identity['Account']}, environment {env.name} is {env.account_id}"
        )
    return CheckResult(name, PASS, f"{identity['Arn']} in account {identity['Account']}")


def check_image(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.ecr import EcrClient, ImageNotFound

    name = "Image exists and scanned"
    image = parse_image_uri(image_uri)
    if env.allowed_registries and image.registry not in env.allowed_registries:
        return CheckResult(
            name, FAIL, f"registry {image.registry} is not allowed in {env.name} (allowed: {', '.join(env.allowed_registries)})"
        )
    if env.ecr_repository != image.repository:
        return CheckResult(name, FAIL, f"repository {image.repository!r} is not {env.ecr_repository!r}")
    ecr = EcrClient(env)
    try:
        info = ecr.describe(image)
    except ImageNotFound as exc:
        return CheckResult(name, FAIL, str(exc))
    status, findings = ecr.scan_findings(image)
    if findings.get("CRITICAL"):
        return CheckResult(name, FAIL, f"{info.digest[:19]} has {findings['CRITICAL']} CRITICAL scan finding(s)")
    if status != "COMPLETE":
        return CheckResult(name, WARN, f"{info.digest[:19]} found; scan status {status}")
    if findings.get("HIGH"):
        return CheckResult(name, WARN, f"{info.digest[:19]} found; {findings['HIGH']} HIGH scan finding(s)")
    return CheckResult(name, PASS, f"{info.digest[:19]} found; scan complete, no CRITICAL/HIGH findings")


def check_current_deployment(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient

    name = "Current deployment healthy"
    live, idle, weights = TrafficClient(env).live_and_idle()
    if weights.get(live.target_group_arn, 0) != 100:
        split = ", ".join(f"{s.colour} {weights.get(s.target_group_arn, 0)}%" for s in (live, idle))
        return CheckResult(name, FAIL, f"traffic is split ({split}): an unfinished deployment is in progress")
    svc = EcsClient(env).describe_service(live.service)
    deployments = svc.get("deployments", [])
    if len(deployments) != 1 or deployments[0].get("rolloutState", "COMPLETED") != "COMPLETED":
        return CheckResult(name, FAIL, f"{live.service} has {len(deployments)} deployment(s) not yet completed")
    if svc["runningCount"] != svc["desiredCount"]:
        return CheckResult(name, FAIL, f"{live.service} runs {svc['runningCount']}/{svc['desiredCount']} tasks")
    return CheckResult(
        name, PASS, f"{live.service} ({live.colour}) runs {svc['runningCount']}/{svc['desiredCount']} tasks, 100% of traffic"
    )


def check_rollback_revision(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient

    name = "Rollback plan available"
    live, _, _ = TrafficClient(env).live_and_idle()
    ecs = EcsClient(env)
    arn = ecs.describe_service(live.service)["taskDefinition"]
    td = ecs.describe_task_definition(arn)
    if td.get("status") != "ACTIVE":
        return CheckResult(name, FAIL, f"{arn} (in service now) is {td.get('status')}: nothing to roll back to")
    return CheckResult(name, PASS, f"{arn.split('/')[-1]} is ACTIVE and will be restored on failure")


def check_traffic_plan(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.canary import plan_for
    from latticedb_deploy.plans import PlanError

    name = "Traffic plan valid"
    try:
        plan = plan_for(env, params)
    except PlanError as exc:
        return CheckResult(name, FAIL, str(exc))
    steps = " -> ".join(f"{s.percent}%" for s in plan)
    return CheckResult(name, PASS, f"{steps}, {plan[0].interval_seconds}s per step")


CHECKS: dict[str, Callable[[Environment, str, dict], CheckResult]] = {
    "check_configuration": check_configuration,
    "check_aws_credentials": check_aws_credentials,
    "check_image": check_image,
    "check_current_deployment": check_current_deployment,
    "check_rollback_revision": check_rollback_revision,
    "check_traffic_plan": check_traffic_plan,
}
