"""Two-slot traffic operations: bring up the idle slot, shift weights, retire the old slot."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import DeploymentStepOperator, control_signal


def guarded_shift(operator: Any, weights: dict[str, int], expectations: list, **kwargs: Any) -> bool:
    """Set weights through GuardedTraffic; a slot unfit for traffic fails the task, with nothing changed.
    After a wait for a slot, the operator's lease is checked again right before the change (hold_lease)."""
    from latticedb_deploy.aws.guarded_traffic import GuardedTraffic, SlotNotReady

    kwargs.setdefault("fence", operator.lease_fence() if hasattr(operator, "lease_fence") else None)
    try:
        return GuardedTraffic(operator.env).set_weights(weights, expectations, log=operator.log, **kwargs)
    except SlotNotReady as exc:
        raise AirflowFailException(f"refusing to change traffic, nothing changed: {exc}") from None


def drain_to_zero(operator: Any, context: Any, service: str, target_group_arn: str) -> None:
    """Scale a slot that should have no traffic to zero: the lease checked again, then the weights read
    again, right before (GuardedTraffic.scale_to_zero). A slot that takes traffic (an emergency rollback
    switched back to it) fails the task, with nothing changed."""
    from latticedb_deploy.aws.guarded_traffic import GuardedTraffic, SlotInUse

    try:
        GuardedTraffic(operator.env).scale_to_zero(service, target_group_arn, fence=lambda: operator.hold_lease(context))
    except SlotInUse as exc:
        raise AirflowFailException(f"refusing to scale down, nothing changed: {exc}") from None


def promote_to_full(operator: DeploymentStepOperator, context: Any, signal: Any) -> bool:
    """latticedb_control's promote: 100 % on the new slot at once (guarded, absolute, idempotent); says so
    in Slack when this call moved traffic. Returns whether it did (False: it was there already)."""
    from latticedb_deploy.readiness import new_slot

    baseline, new = operator.required("baseline", "new_revision")
    changed = guarded_shift(
        operator, {baseline["idle_target_group_arn"]: 100, baseline["target_group_arn"]: 0}, [new_slot(baseline, new)]
    )
    operator.log.warning("%s: %s 100%% (new) / %s 0%% (stable)%s", signal.message, baseline["idle_colour"],
                         baseline["colour"], "" if changed else " (already)")
    if changed:
        operator.send(context, "stage", "Promoted: 100% on the new version", {
            "Promoted by": signal.by, "Reason": signal.reason, "At": operator.task_id,
            "Weights": f"{baseline['idle_colour']} 100% / {baseline['colour']} 0%",
        })
    return changed


class DeployIdleSlotOperator(DeploymentStepOperator):
    """Put the new revision on the idle slot's service, sized like the live one, at weight 0."""

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.readiness import last_good_slot

        baseline, new = self.required("baseline", "new_revision")
        # Absolute weights first: the idle slot must carry nothing until it is stable.
        guarded_shift(self, {baseline["target_group_arn"]: 100, baseline["idle_target_group_arn"]: 0}, [last_good_slot(baseline)])
        EcsClient(self.env).update_service(baseline["idle_service"], new["task_definition"], baseline["desired_count"])
        self.log.info(
            "%s (%s) -> %s x%d at weight 0", baseline["idle_service"], baseline["idle_colour"],
            new["task_definition"], baseline["desired_count"],
        )
        return {"service": baseline["idle_service"], "task_definition": new["task_definition"]}


class ShiftTrafficOperator(DeploymentStepOperator):
    """Send `percent` % of production traffic to the new slot (absolute weights; idempotent on retry)."""

    template_fields = (*DeploymentStepOperator.template_fields, "percent")

    def __init__(self, *, percent: int, follow_plan: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.percent = percent
        self.follow_plan = follow_plan  # canary: skip percentages that are not in this run's plan

    def execute(self, context: Any) -> dict:
        holder = self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.canary import plan_for
        from latticedb_deploy.control import for_step
        from latticedb_deploy.notify import control_form_link
        from latticedb_deploy.readiness import last_good_slot, new_slot

        plan = [s.percent for s in plan_for(self.env, context["params"])] if self.follow_plan else [100]
        if int(self.percent) not in plan:
            raise AirflowSkipException(f"{self.percent}% is not a step of this run's plan {plan}")
        signal = control_signal(holder, self.log)
        if self.follow_plan and for_step(signal) == "promote":  # a canary step after latticedb_control's promote
            moved = promote_to_full(self, context, signal)
            raise AirflowSkipException(signal.message + ("; this step moved traffic to 100%" if moved else ""))
        if signal is not None and signal.paused:  # traffic stays where it is until resume: wait in the triggerer
            from latticedb_deploy.operators.base import owner_of
            from latticedb_deploy.triggers.control_hold import ControlHoldTrigger

            self.log.warning("%s: not shifting to %d%% until resumed (waiting deferred)", signal.message, int(self.percent))
            self.defer(
                trigger=ControlHoldTrigger(environment=self.env.name, config=self.config_snapshot, owner=owner_of(context),
                                           poll_seconds=self.env.metrics.poll_seconds,
                                           watch=self._watch_while_paused(context), since=time.time()),
                method_name="execute_complete",
            )
        baseline, new = self.required("baseline", "new_revision")
        weights = {baseline["idle_target_group_arn"]: int(self.percent), baseline["target_group_arn"]: 100 - int(self.percent)}
        guarded_shift(self, weights, [new_slot(baseline, new), last_good_slot(baseline)])
        self.log.info("Traffic: %s %d%% (new) / %s %d%% (stable)", baseline["idle_colour"], int(self.percent),
                      baseline["colour"], 100 - int(self.percent))
        title = (
            f"Switched: production traffic now on {baseline['idle_colour']}"
            if not self.follow_plan
            else f"Traffic shifted: {int(self.percent)}% on the new version"
        )
        self.send(context, "stage", title, {"Weights": f"{baseline['idle_colour']} {int(self.percent)}% / "
                                                       f"{baseline['colour']} {100 - int(self.percent)}%"},
                  links=control_form_link(self.env.name))
        return {"percent": int(self.percent), "plan": plan}

    def _watch_while_paused(self, context: Any) -> dict[str, Any] | None:
        """What the pause's hold judges: the new slot at the weight the listener gives it now, as its last gate
        did (that step's interval, the run's tolerated failures, the stable slot as the relative baseline);
        None while it takes no traffic (paused before the first shift, or before a blue/green switch)."""
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.canary import plan_for
        from latticedb_deploy.params import number

        baseline = self.required("baseline")
        traffic = TrafficClient(self.env)
        share = int(traffic.weights().get(baseline["idle_target_group_arn"], 0))
        if share <= 0:
            return None
        done = [s for s in plan_for(self.env, context["params"]) if s.percent < int(self.percent)] if self.follow_plan else []
        interval = max(done, key=lambda s: s.percent).interval_seconds if done else self.env.blue_green.bake_seconds
        self.log.warning("the new slot serves %d%% while paused: the hold keeps judging its metrics", share)
        return {
            "step": share, "target_group_arn": baseline["idle_target_group_arn"],
            "load_balancer_arn": baseline.get("load_balancer_arn") or traffic.load_balancer_arn(),
            "started_at": time.time(), "interval_seconds": float(interval),
            "tolerated_failures": number(None, context, "tolerated_failures", 0) or 0,
            "baseline_target_group_arn": baseline["target_group_arn"] if share < 100 else None,
        }

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        """Back from a pause (latticedb_control): decide again with the signal as it is now. A new slot that
        failed its metrics while paused, or a pause past `max_pause_seconds`, fails the step (no retry): the
        rollback puts traffic back."""
        if event.get("lease_lost"):
            self.lease_lost(context, event["reason"])
        if event.get("evaluations"):
            context["ti"].xcom_push(key="evaluations", value=event["evaluations"])
        if event.get("failed"):
            raise AirflowFailException(f"not shifting to {int(self.percent)}%: {event['reason']}")
        self.log.info("pause lifted: %s", (event.get("released") or {}).get("message", "no signal"))
        return self.execute(context)


class RetireOldSlotOperator(DeploymentStepOperator):
    """Promotion: the new slot has 100 %; scale the old one to zero (its revision stays for rollback)."""

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.readiness import new_slot

        baseline, new = self.required("baseline", "new_revision")
        guarded_shift(self, {baseline["idle_target_group_arn"]: 100, baseline["target_group_arn"]: 0}, [new_slot(baseline, new)])
        drain_to_zero(self, context, baseline["service"], baseline["target_group_arn"])
        self.log.info("%s (%s) serves 100%%; %s scaled to 0", baseline["idle_service"], baseline["idle_colour"], baseline["service"])
        return {"live_service": baseline["idle_service"], "retired_service": baseline["service"]}
