"""latticedb_service: the operations commands of `manage-service.sh` (status, scale, restart).

check_request (validate; capacity for scale/restart; read only) -> status (action=status: report,
Slack, XCom) | acquire_environment -> update_service (scale: desired count of the live slot;
restart: forceNewDeployment of the same revision) -> wait_for_service (deferred: EcsRolloutTrigger)
-> report (what the service is now, Slack, XCom) -> release_environment (teardown).
Domain logic: latticedb_deploy.service_ops.
"""

from __future__ import annotations

import math
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.locks import AcquireEnvironmentOperator
from latticedb_deploy.sensors.ecs_rollout import EcsRolloutSensor


class ServiceOperator(LatticeDBOperator):
    """An operations task: no image; action, desired_count and reason from the run's params
    (`desired_count` unset is the run's param, a number already: latticedb_deploy.params)."""

    template_fields = (*LatticeDBOperator.template_fields, "action", "desired_count", "reason")

    def __init__(
        self,
        *,
        action: str = "{{ params.action }}",
        desired_count: Any = None,
        reason: Any = "{{ params.reason }}",
        **kwargs: Any,
    ):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.action, self.desired_count, self.reason = action, desired_count, reason

    def request(self, context: Any):
        from latticedb_deploy.params import given_or_param
        from latticedb_deploy.service_ops import RequestError, parse_request

        try:
            return parse_request(self.action, given_or_param(self.desired_count, context, "desired_count"), self.reason)
        except RequestError as exc:
            raise AirflowFailException(str(exc)) from None

    def send(self, context: Any, event: str, title: str, fields: dict[str, object]) -> None:
        from latticedb_deploy import notify

        if not self.notify_enabled(context):
            self.log.info("notify=false: not sending %r", event)
            return
        fields = {"Environment": self.environment, "Run": context["run_id"], **fields}
        notify.send(self.env, event, title, fields, notify.run_link(context))


def read_status(env: Any) -> dict:
    """Services, revisions, running/desired, listener weights, target health, last deployment."""
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient
    from latticedb_deploy.deployment_log import resolve_log_path
    from latticedb_deploy.service_ops import read_last_deployment

    ecs, traffic = EcsClient(env), TrafficClient(env)
    live, _, weights = traffic.live_and_idle()
    test_weights = traffic.weights(env.load_balancer.test_listener_port) if env.test_url else {}
    slots = []
    for slot in traffic.slots():
        svc = ecs.describe_service(slot.service)
        deployments = svc.get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        slots.append({
            "colour": slot.colour,
            "service": slot.service,
            "live": slot.service == live.service,
            "task_definition": svc.get("taskDefinition"),
            "running": svc.get("runningCount", 0),
            "desired": svc.get("desiredCount", 0),
            "pending": svc.get("pendingCount", 0),
            "deployments": len(deployments),
            "rollout_state": primary.get("rolloutState", "COMPLETED"),
            "deployment_id": primary.get("id"),
            "weight": weights.get(slot.target_group_arn, 0),
            "test_weight": test_weights.get(slot.target_group_arn, 0),
            "healthy_targets": traffic.healthy_targets(slot.target_group_arn),
            "target_group_arn": slot.target_group_arn,
        })
    return {
        "environment": env.name,
        "cluster": env.cluster,
        "live_service": live.service,
        "slots": slots,
        "last_deployment": read_last_deployment(resolve_log_path(env.deployment_log), env.name),
    }


def _task_limit(env: Any, ecs: Any, task_definition: str) -> tuple[int | None, str]:
    """The environment's task limit: capacity.max_tasks, else the Fargate vCPU quota / the task's vCPUs."""
    if env.capacity.max_tasks is not None:
        return env.capacity.max_tasks, "capacity.max_tasks"
    from latticedb_deploy.aws.quotas import QuotasClient

    vcpu = int(ecs.describe_task_definition(task_definition).get("cpu") or 1024) / 1024
    try:
        quota = QuotasClient(env).fargate_on_demand_vcpus()
    except Exception as exc:  # noqa: BLE001 - unknown is not full: say so and go on
        return None, f"no capacity.max_tasks and the Fargate quota is unreadable ({exc})"
    return math.floor(quota / vcpu), f"Fargate on-demand quota {quota:g} vCPU / {vcpu:g} per task"


class CheckServiceRequestOperator(ServiceOperator):
    """Validate the request and, for scale/restart, the capacity: refused here, nothing has changed."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.service_ops import capacity_problem

        req = self.request(context)
        plan: dict[str, Any] = {"action": req.action, "reason": req.reason, "environment": self.env.name}
        if not req.changes:
            return plan
        status = read_status(self.env)
        live = next(s for s in status["slots"] if s["live"])
        other = next(s for s in status["slots"] if not s["live"])
        if live["deployments"] > 1 or live["rollout_state"] != "COMPLETED":
            raise AirflowFailException(
                f"{live['service']} has a deployment in progress ({live['deployments']} deployments, "
                f"{live['rollout_state']}): not changing it now. Nothing was changed."
            )
        limit, source = _task_limit(self.env, EcsClient(self.env), live["task_definition"])
        problem, numbers = capacity_problem(
            action=req.action, live_desired=live["desired"], new_desired=req.desired_count,
            other_tasks=max(other["desired"], other["running"]), max_tasks=limit,
        )
        numbers["limit_source"] = source
        self.log.info("Capacity: %s", numbers)
        if problem:
            raise AirflowFailException(f"{req.action} refused: {problem}")
        plan.update(
            service=live["service"], colour=live["colour"], task_definition=live["task_definition"],
            desired_before=live["desired"], desired_count=req.desired_count, capacity=numbers,
            deployment_before=live["deployment_id"],
        )
        return plan


class ServiceStatusOperator(ServiceOperator):
    """action=status: the service as `manage-service.sh status` shows it, in Slack and XCom."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.service_ops import summary_lines

        if self.request(context).action != "status":
            raise AirflowSkipException("not a status request")
        status = read_status(self.env)
        lines = summary_lines(status)
        for line in lines:
            self.log.info("%s", line)
        self.send(context, "stage", f"Service status: {self.env.name}", {"Status": "\n".join(lines)})
        return status


class AcquireForChangeOperator(AcquireEnvironmentOperator):
    """Take the environment's lease for scale/restart; a status request takes nothing (skips)."""

    template_fields = (*AcquireEnvironmentOperator.template_fields, "action")
    changes_production = True

    def __init__(self, *, action: str = "{{ params.action }}", **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.action = action

    def execute(self, context: Any) -> dict:
        if str(self.action) == "status":
            raise AirflowSkipException("status changes nothing: no lease needed")
        return super().execute(context)


class UpdateServiceForActionOperator(ServiceOperator):
    """scale: the live slot's desired count; restart: a forced new deployment of the same revision.
    `plan` is check_request's result (the service and how it was before)."""

    template_fields = (*ServiceOperator.template_fields, "plan")

    def __init__(self, *, plan: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.aws.ecs import EcsClient

        req = self.request(context)
        plan = self.plan
        if not plan:
            raise AirflowFailException(f"{self.task_id}: no plan given (check_request's result): nothing changed")
        ecs = EcsClient(self.env)
        service = plan["service"]
        if req.action == "scale":
            title = f"Scaling {service} from {plan['desired_before']} to {req.desired_count} tasks"
            svc = ecs.scale(service, req.desired_count)
        else:
            title = f"Restarting {service}: new deployment of {plan['task_definition'].rsplit('/', 1)[-1]}"
            svc = ecs.describe_service(service)
            primary = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
            if primary.get("id") and primary.get("id") != plan.get("deployment_before"):
                self.log.info("A retry: %s already has the new deployment %s; not forcing another", service, primary["id"])
            else:
                svc = ecs.force_new_deployment(service)
        self.log.info("%s (reason: %s)", title, req.reason)
        self.send(context, "stage", title, {"Reason": req.reason, "Requested": req.action})
        primary = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
        return {
            "action": req.action, "service": service, "task_definition": svc.get("taskDefinition") or plan["task_definition"],
            "desired_count": svc.get("desiredCount"), "deployment_id": primary.get("id"), "started_at": time.time(),
        }


class WaitForServiceSensor(EcsRolloutSensor):
    """EcsRolloutSensor (deferred) that also insists the service runs its full desired count."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        result = super().execute_complete(context, event)  # lease lost / failed / timeout raise
        change = self.rollout or {}
        expected = change.get("desired_count")
        if expected is not None and int(result.get("running", -1)) != int(expected):
            if time.time() > float(change.get("started_at") or 0) + self.env.rollout.timeout_seconds:
                raise AirflowFailException(
                    f"{change.get('service')}: {result.get('running')} running, expected {expected}, "
                    f"after rollout.timeout_seconds ({self.env.rollout.timeout_seconds}s)"
                )
            self.log.info("ECS says completed with %s/%s running; waiting for %s", result.get("running"),
                          result.get("desired"), expected)
            return self.execute(context)  # defers again
        return result


class ServiceReportOperator(ServiceOperator):
    """After scale/restart: what the service is now (in XCom and Slack). `plan` is check_request's
    result, `change` update_service's."""

    template_fields = (*ServiceOperator.template_fields, "plan", "change")

    def __init__(self, *, plan: Any = None, change: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan, self.change = plan, change

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.service_ops import short, summary_lines

        req = self.request(context)
        change, plan = self.change, self.plan
        status = read_status(self.env)
        live = next(s for s in status["slots"] if s["service"] == change["service"])
        if live["task_definition"] != plan["task_definition"]:
            raise AirflowFailException(
                f"{live['service']} now runs {short(live['task_definition'])}, not {short(plan['task_definition'])}"
            )
        verb = "Scaled" if req.action == "scale" else "Restarted"
        title = f"{verb} {live['service']}: {live['running']}/{live['desired']} running on {short(live['task_definition'])}"
        self.send(context, "succeeded", title, {"Reason": req.reason, "Status": "\n".join(summary_lines(status))})
        return {"action": req.action, "reason": req.reason, "before": plan, "after": status}
