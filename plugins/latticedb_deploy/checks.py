"""The runbook's pre-flight checks as plain functions: (environment, image, params) -> CheckResult.

Each check reads AWS through the clients and never mutates anything; the preflight
task group runs one task per check so the graph shows which one failed. `params` is the
run's params plus two keys the check operator adds: `strategy` (the DAG's strategy name)
and `triggered_by` (the Airflow user, or "schedule").

Runbook order (after the strategy check, which refuses e.g. rolling in production): required tools, AWS credentials, image, current deployment, capacity,
configuration, deployment window, active incidents, rollback plan.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from latticedb_deploy.config import Environment, interval_gate_limit_seconds, load_config
from latticedb_deploy.images import InvalidImageError, parse_image_uri
from latticedb_deploy.params import notify_enabled
from latticedb_deploy.preflight import FAIL, PASS, WARN, CheckResult

# Providers every deployment DAG needs at run time (the Redis provider only serves the flag hook).
REQUIRED_PROVIDERS = {
    "amazon": "airflow.providers.amazon.aws.hooks.base_aws",
    "slack": "airflow.providers.slack.hooks.slack_webhook",
    "standard": "airflow.providers.standard.operators.hitl",
}

# Extra tasks a strategy runs at its peak, as a multiple of the live service's desired count:
# rolling updates with maximumPercent 200 (up to one full set of new tasks beside the old),
# blue/green and canary bring the idle colour up to full size before the old one is scaled down.
PEAK_EXTRA_FACTOR = {"rolling": 1.0, "blue_green": 1.0, "canary": 1.0}


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException, or a secrets backend that cannot answer
        return False
    return True


def check_strategy_allowed(env: Environment, image_uri: str, params: dict) -> CheckResult:
    """The environment's `allowed_strategies` (re-read from the file as it is now) include this DAG's strategy."""
    name = "Strategy allowed in environment"
    strategy = str(params.get("strategy") or "")
    allowed = load_config().environment(env.name).allowed_strategies
    if strategy not in allowed:
        return CheckResult(
            name, FAIL,
            f"{strategy or '(unknown)'} deployments are not allowed in {env.name} "
            f"(allowed_strategies: {', '.join(allowed)}); use latticedb_deploy_{allowed[0]}",
            {"strategy": strategy, "allowed": list(allowed)},
        )
    return CheckResult(name, PASS, f"{strategy} is allowed in {env.name} ({', '.join(allowed)})")


def check_required_tools(env: Environment, image_uri: str, params: dict) -> CheckResult:
    name = "Required tools available"
    missing = []
    for provider, module in REQUIRED_PROVIDERS.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"provider {provider} ({exc})")
    if not _connection_exists(env.aws_conn_id):
        missing.append(f"AWS connection {env.aws_conn_id!r}")
    if missing:
        return CheckResult(name, FAIL, "missing: " + "; ".join(missing))
    slack = env.notifications.slack_conn_id
    notify = notify_enabled(None, {"params": params})
    if notify and not _connection_exists(slack):
        return CheckResult(name, WARN, f"Slack connection {slack!r} is not defined: stakeholders will not be notified")
    return CheckResult(
        name, PASS, f"providers {', '.join(REQUIRED_PROVIDERS)}; connections {env.aws_conn_id}" + (f", {slack}" if notify else "")
    )


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
    from latticedb_deploy.config import registry_host

    name = "Image exists and scanned"
    image = parse_image_uri(image_uri)
    if env.allowed_registries and image.registry not in env.allowed_registries:
        return CheckResult(
            name, FAIL, f"registry {image.registry} is not allowed in {env.name} (allowed: {', '.join(env.allowed_registries)})"
        )
    own = registry_host(env)
    if image.registry != own:  # the digest and scan below are read from the environment's own registry
        return CheckResult(name, FAIL, (
            f"registry {image.registry} is not {env.name}'s own registry {own} (account {env.account_id}, "
            f"{env.region}), where the image's digest and scan are looked up: push or replicate the image there"
        ))
    if env.ecr_repository != image.repository:
        return CheckResult(name, FAIL, f"repository {image.repository!r} is not {env.ecr_repository!r}")
    ecr = EcrClient(env)
    try:
        info = ecr.describe(image)
    except ImageNotFound as exc:
        return CheckResult(name, FAIL, str(exc))
    status, findings = ecr.scan_findings(image)
    data = {"digest": info.digest, "scan_status": status, "findings": findings}
    if findings.get("CRITICAL"):
        return CheckResult(name, FAIL, f"{info.digest[:19]} has {findings['CRITICAL']} CRITICAL scan finding(s)", data)
    if status != "COMPLETE":
        return CheckResult(name, WARN, f"{info.digest[:19]} found; scan status {status}", data)
    if findings.get("HIGH"):
        return CheckResult(name, WARN, f"{info.digest[:19]} found; {findings['HIGH']} HIGH scan finding(s)", data)
    return CheckResult(name, PASS, f"{info.digest[:19]} found; scan complete, no CRITICAL/HIGH findings", data)


def check_current_deployment(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient
    from latticedb_deploy.readiness import unsettled

    name = "Current deployment healthy"
    live, idle, weights = TrafficClient(env).live_and_idle()
    if weights.get(live.target_group_arn, 0) != 100:
        split = ", ".join(f"{s.colour} {weights.get(s.target_group_arn, 0)}%" for s in (live, idle))
        return CheckResult(name, FAIL, f"traffic is split ({split}): an unfinished deployment is in progress")
    svc = EcsClient(env).describe_service(live.service)
    why = unsettled(svc, live.service)
    if why:
        return CheckResult(name, FAIL, why)
    healthy, unhealthy = target_health(env, live.target_group_arn)
    if unhealthy or len(healthy) < svc["desiredCount"]:
        bad = ", ".join(unhealthy) or "none registered"
        return CheckResult(
            name, FAIL, f"{len(healthy)}/{svc['desiredCount']} healthy targets in the {live.colour} target group ({bad})"
        )
    return CheckResult(
        name,
        PASS,
        f"{live.service} ({live.colour}) runs {svc['runningCount']}/{svc['desiredCount']} tasks, "
        f"{len(healthy)} healthy targets, 100% of traffic",
    )


def target_health(env: Environment, target_group_arn: str, elbv2: Any = None) -> tuple[list[str], list[str]]:
    """(healthy target ids, "id: state (reason)" for every other target) of one target group, asked with
    `elbv2` (a boto3 client; built from the environment when not given)."""
    from latticedb_deploy.aws import boto_client

    resp = (elbv2 or boto_client(env, "elbv2")).describe_target_health(TargetGroupArn=target_group_arn)
    healthy, other = [], []
    for desc in resp.get("TargetHealthDescriptions", []):
        target, health = desc["Target"]["Id"], desc.get("TargetHealth") or {}
        if health.get("State") == "healthy":
            healthy.append(target)
        else:
            other.append(f"{target}: {health.get('State')}" + (f" ({health['Reason']})" if health.get("Reason") else ""))
    return healthy, other


def _cluster_tasks(ecs_client: Any, cluster: str) -> int:
    """Tasks the cluster runs or is starting: the larger of the cluster's count and its services' sum."""
    arns: list[str] = []
    kwargs: dict[str, Any] = {"cluster": cluster}
    while True:
        resp = ecs_client.list_services(**kwargs)
        arns.extend(resp.get("serviceArns", []))
        if not resp.get("nextToken"):
            break
        kwargs["nextToken"] = resp["nextToken"]
    by_service = 0
    for i in range(0, len(arns), 10):
        for svc in ecs_client.describe_services(cluster=cluster, services=arns[i : i + 10]).get("services", []):
            by_service += svc.get("runningCount", 0) + svc.get("pendingCount", 0)
    clusters = ecs_client.describe_clusters(clusters=[cluster]).get("clusters", [])
    by_cluster = sum(c.get("runningTasksCount", 0) + c.get("pendingTasksCount", 0) for c in clusters)
    return max(by_service, by_cluster)


def check_capacity(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient

    name = "Resource capacity available"
    strategy = str(params.get("strategy") or "rolling")
    live, _, _ = TrafficClient(env).live_and_idle()
    ecs = EcsClient(env)
    svc = ecs.describe_service(live.service)
    desired = svc["desiredCount"] or env.desired_count
    extra = math.ceil(PEAK_EXTRA_FACTOR.get(strategy, 1.0) * desired)
    running = _cluster_tasks(ecs.client, env.cluster)
    peak = running + extra
    data = {"strategy": strategy, "running": running, "extra": extra, "peak": peak}
    if env.capacity.max_tasks is not None:
        limit = env.capacity.max_tasks
        detail = f"{running} running + {extra} extra for {strategy} = {peak} tasks at peak, limit {limit}"
        data["limit_tasks"] = limit
        return CheckResult(name, PASS if peak <= limit else FAIL, detail, data)
    from latticedb_deploy.aws.quotas import QuotasClient

    td = ecs.describe_task_definition(svc["taskDefinition"])
    vcpu = int(td.get("cpu") or 1024) / 1024
    try:
        quota = QuotasClient(env).fargate_on_demand_vcpus()
    except Exception as exc:  # noqa: BLE001 - no quota answer is "unknown", not "full"
        return CheckResult(name, WARN, f"{peak} tasks at peak; cannot read the Fargate vCPU quota: {exc}", data)
    needed = peak * vcpu
    data.update(vcpus_needed=needed, vcpu_quota=quota)
    detail = f"{peak} tasks x {vcpu:g} vCPU = {needed:g} vCPU at peak ({strategy}), Fargate on-demand quota {quota:g}"
    return CheckResult(name, PASS if needed <= quota else FAIL, detail, data)


def check_deployment_window(env: Environment, image_uri: str, params: dict, now: datetime | None = None) -> CheckResult:
    from latticedb_deploy.windows import window_status

    name = "Deployment window appropriate"
    status = window_status(env.deployment_windows, now or datetime.now(UTC))
    if status.allowed:
        return CheckResult(name, PASS, status.reason)
    override = str(params.get("override_reason") or "").strip()
    data = {"outside_window": True, "freeze": status.freeze, "next_open": status.next_open}
    if override:
        by = params.get("triggered_by") or "unknown"
        data.update(override_reason=override, override_by=by)
        return CheckResult(name, PASS, f"{status.reason}; OVERRIDDEN by {by}: {override}", data)
    # A warning: the verdict (and this task) turn it into a failure under strict.
    return CheckResult(name, WARN, f"{status.reason}; set override_reason to proceed anyway", data)


def _feature_flag_incidents(env: Environment) -> tuple[list[str], str]:
    """HOOK (feature flags): incidents recorded in Redis by latticedb_deploy.flags, if that module exists.

    Returns (reasons, note). No module, or no Redis connection for the environment, means no
    flag checks; an unreachable Redis comes back as a reason starting with "cannot read".
    """
    try:
        from latticedb_deploy.flags import incident_reasons
    except ImportError:
        return [], "feature-flag incidents not checked (latticedb_deploy.flags not installed)"
    if not _connection_exists(env.redis_conn_id):
        return [], f"feature-flag incidents not checked (no connection {env.redis_conn_id!r})"
    return list(incident_reasons(env)), "kill switch and circuit breaker checked"


def check_no_active_incidents(env: Environment, image_uri: str, params: dict) -> CheckResult:
    from latticedb_deploy.aws.cloudwatch import MetricsClient

    name = "No active incidents"
    alarms = MetricsClient(env).alarms_in_alarm(env.alarm_prefix)
    flags, note = _feature_flag_incidents(env)
    unknown = [r for r in flags if r.startswith("cannot read")]
    incidents = [r for r in flags if r not in unknown]
    data = {"alarms": alarms, "flag_incidents": incidents}
    prefix = env.alarm_prefix or "(any)"
    if alarms or incidents:
        parts = ([f"{len(alarms)} alarm(s) in ALARM: {', '.join(alarms)}"] if alarms else []) + incidents
        return CheckResult(name, FAIL, "; ".join(parts), data)
    if unknown:
        return CheckResult(name, WARN, f"no alarms in ALARM for {prefix}; {'; '.join(unknown)}", data)
    return CheckResult(name, PASS, f"no alarms in ALARM for prefix {prefix}; {note}", data)


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
    interval = plan[0].interval_seconds
    limit = env.gate_limit_seconds(interval)
    if limit > interval_gate_limit_seconds(interval):  # the relative judge needs longer than the interval allows
        return CheckResult(name, PASS, (
            f"{steps}, {interval}s per step; each gate may wait up to {limit:.0f}s for the relative judge's "
            f"{env.judge.min_samples} samples of {env.judge_period_seconds}s a side"))
    return CheckResult(name, PASS, f"{steps}, {interval}s per step")


CHECKS: dict[str, Callable[[Environment, str, dict], CheckResult]] = {
    "check_strategy_allowed": check_strategy_allowed,
    "check_required_tools": check_required_tools,
    "check_aws_credentials": check_aws_credentials,
    "check_image": check_image,
    "check_current_deployment": check_current_deployment,
    "check_capacity": check_capacity,
    "check_configuration": check_configuration,
    "check_deployment_window": check_deployment_window,
    "check_no_active_incidents": check_no_active_incidents,
    "check_rollback_revision": check_rollback_revision,
    "check_traffic_plan": check_traffic_plan,
}
