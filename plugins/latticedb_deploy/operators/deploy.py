"""Deployment steps on ECS: record what runs now, register the new revision, update the service."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator

BASELINE_TASK_ID = "prepare.record_baseline"
REGISTER_TASK_ID = "prepare.register_task_definition"


class RecordBaselineOperator(LatticeDBOperator):
    """Remember the last good state (live slot, its revision and size) so rollback knows where to go."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        live, idle, weights = TrafficClient(self.env).live_and_idle()
        svc = EcsClient(self.env).describe_service(live.service)
        baseline = {
            "colour": live.colour,
            "service": live.service,
            "target_group_arn": live.target_group_arn,
            "idle_colour": idle.colour,
            "idle_service": idle.service,
            "idle_target_group_arn": idle.target_group_arn,
            "task_definition": svc["taskDefinition"],
            "desired_count": svc["desiredCount"],
            "weights": weights,
        }
        self.log.info("Last good state: %s on %s (%d tasks)", live.service, svc["taskDefinition"], svc["desiredCount"])
        return baseline


class RegisterTaskDefinitionOperator(LatticeDBOperator):
    """Resolve the tag to its digest and register a revision that pins it (or reuse an identical one)."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecr import EcrClient
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.images import parse_image_uri

        baseline = context["ti"].xcom_pull(task_ids=BASELINE_TASK_ID)
        image = parse_image_uri(self.image_uri)
        info = EcrClient(self.env).describe(image)
        pinned = image.pinned(info.digest)
        arn, created = EcsClient(self.env).register_with_image(baseline["task_definition"], pinned)
        self.log.info("%s %s with %s", "Registered" if created else "Reusing", arn, pinned)
        return {
            "task_definition": arn,
            "created": created,
            "image": pinned,
            "digest": info.digest,
            "version": image.tag or (info.tags[0] if info.tags else info.digest[:19]),
            "previous_task_definition": baseline["task_definition"],
        }


class UpdateServiceOperator(LatticeDBOperator):
    """Rolling update of the live service to the new revision, ECS circuit breaker on."""

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.aws.ecs import EcsClient

        ti = context["ti"]
        baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID)
        new = ti.xcom_pull(task_ids=REGISTER_TASK_ID)
        svc = EcsClient(self.env).update_service(baseline["service"], new["task_definition"])
        self.log.info("%s now targets %s", baseline["service"], svc["taskDefinition"])
        return {"service": baseline["service"], "task_definition": new["task_definition"]}


class RestorePreviousRevisionOperator(LatticeDBOperator):
    """Rollback for every strategy: 100 % of traffic back on the last good slot, on its last good
    revision and size, and the other slot scaled to zero. Idempotent: a retry converges."""

    template_fields = (*LatticeDBOperator.template_fields, "auto_rollback")

    def __init__(
        self,
        *,
        mutation_task_ids: list[str],
        gate_task_ids: list[str] | None = None,
        auto_rollback: Any = "{{ params.auto_rollback }}",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.mutation_task_ids = mutation_task_ids
        self.gate_task_ids = gate_task_ids or []
        self.auto_rollback = auto_rollback

    def _failed_gate(self, ti: Any) -> dict | None:
        for task_id in self.gate_task_ids:
            for record in reversed(ti.xcom_pull(task_ids=task_id, key="evaluations") or []):
                if record.get("verdict") == "fail":
                    return record
        return None

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from airflow.sdk.exceptions import AirflowSkipException

        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        ti = context["ti"]
        baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID)
        if not baseline:
            raise AirflowSkipException("nothing to roll back: the run failed before changing anything")
        ecs, traffic = EcsClient(self.env), TrafficClient(self.env)
        live = ecs.describe_service(baseline["service"])
        idle = ecs.describe_service(baseline["idle_service"])
        weights = traffic.weights()
        mutated = any(ti.xcom_pull(task_ids=t) is not None for t in self.mutation_task_ids)
        untouched = (
            not mutated
            and live["taskDefinition"] == baseline["task_definition"]
            and live["desiredCount"] == baseline["desired_count"]
            and weights.get(baseline["target_group_arn"]) == 100
        )
        if untouched:
            raise AirflowSkipException("nothing to roll back: the service was never changed")
        gate = self._failed_gate(ti)
        fields: dict[str, object] = {"Service": baseline["service"], "Restoring": baseline["task_definition"].split("/")[-1]}
        if gate:
            fields["Failed step"] = f"{gate.get('step')}%"
            fields["Metrics"] = gate.get("summary") or ", ".join(gate.get("reasons", []))
        if str(self.auto_rollback).lower() in ("false", "0", "no"):
            msg = (
                f"AUTO-ROLLBACK DISABLED: traffic and services are left as they are "
                f"(weights {weights}; {baseline['service']} on {live['taskDefinition']}). "
                "Roll back by hand or trigger latticedb_rollback."
            )
            self.log.error("%s", msg)
            self.send(context, "warning", "Deployment failed; auto-rollback disabled, nothing restored", {**fields, "State": msg})
            raise AirflowSkipException(msg)
        self.send(context, "rollback_started", "Rollback started", fields)
        traffic.set_weights({baseline["target_group_arn"]: 100, baseline["idle_target_group_arn"]: 0})
        if (
            live["taskDefinition"] != baseline["task_definition"]
            or live["desiredCount"] != baseline["desired_count"]
            or len(live.get("deployments", [])) != 1
        ):
            ecs.update_service(baseline["service"], baseline["task_definition"], desired_count=baseline["desired_count"])
        if idle["desiredCount"] != 0:
            ecs.scale(baseline["idle_service"], 0)
        self.log.info(
            "Restored: %s on %s with 100%% of traffic; %s scaled to 0",
            baseline["service"], baseline["task_definition"], baseline["idle_service"],
        )
        return {"service": baseline["service"], "task_definition": baseline["task_definition"], "failed_gate": gate}


class NotifyOperator(LatticeDBOperator):
    """Send one stakeholder notification (start, success, rollback finished)."""

    def __init__(self, *, event: str, title: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.event = event
        self.title = title

    template_fields = (*LatticeDBOperator.template_fields, "title")

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        fields: dict[str, object] = {}
        new = ti.xcom_pull(task_ids=REGISTER_TASK_ID)
        baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID)
        if baseline:
            fields["Previous revision"] = baseline["task_definition"].split("/")[-1]
        if new:
            fields["New revision"] = new["task_definition"].split("/")[-1]
            fields["Digest"] = new["digest"]
        self.send(context, self.event, self.title, fields)


def fail(message: str) -> None:
    """Fail without retrying: the outcome is deterministic (bad input, failed rollout)."""
    raise AirflowFailException(message)
