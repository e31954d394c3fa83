"""gate_<p>pct: hold a traffic step for its interval while CloudWatch says the new version is healthy."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import DeploymentStepOperator, control_signal, owner_or_none

# How far before a 100 % gate (or the bake) to look for the stable slot's last periods with traffic.
BASELINE_LOOKBACK_SECONDS = 300


class MetricGateSensor(DeploymentStepOperator, SkipMixin):
    """Defers to MetricGateTrigger (no worker slot held); pushes every evaluation to XCom.

    A canary gate that passes skips the slots between its step and the plan's next one
    (`slot_task_ids`, see operators/plan.py), so no worker starts them only to skip.
    """

    template_fields = (*DeploymentStepOperator.template_fields, "percent", "tolerated_failures", "interval_seconds")

    def __init__(
        self,
        *,
        percent: int,
        tolerated_failures: Any = None,
        interval_seconds: Any = None,
        bake: bool = False,
        slot_task_ids: dict[int, list[str]] | None = None,
        **kwargs: Any,
    ):
        """A bake (`bake=True`, blue/green): watch for the run's `bake_seconds` (default the environment's
        `blue_green.bake_seconds`), or for `interval_seconds` when that is given, regardless of any canary
        plan. `tolerated_failures` unset is the run's param (default 0). See latticedb_deploy.params."""
        super().__init__(**kwargs)
        self.slot_task_ids = slot_task_ids
        self.percent = percent
        self.tolerated_failures = tolerated_failures
        self.interval_seconds = interval_seconds
        self.bake = bake

    @property
    def is_bake(self) -> bool:
        """A fixed watch (the blue/green bake), not a step of a canary plan."""
        return self.bake or self.interval_seconds is not None

    def _tolerated_failures(self, context: Any) -> int:
        from latticedb_deploy.params import number

        return number(self.tolerated_failures, context, "tolerated_failures", 0) or 0

    def _step(self, context: Any) -> Any:
        from latticedb_deploy.canary import plan_for
        from latticedb_deploy.plans import TrafficStep

        if self.is_bake:
            from latticedb_deploy.params import as_int, number

            given = as_int(self.interval_seconds, name="interval_seconds", default=None)
            seconds = number(given, context, "bake_seconds", self.env.blue_green.bake_seconds)
            return TrafficStep(int(self.percent), seconds)
        plan = {s.percent: s for s in plan_for(self.env, context["params"])}
        step = plan.get(int(self.percent))
        if step is None:
            raise AirflowSkipException(f"{self.percent}% is not a step of this run's plan {sorted(plan)}")
        return step

    def execute(self, context: Any) -> None:
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.triggers.metric_gate import MetricGateTrigger

        step = self._step(context)
        if owner_or_none(context) is not None:
            # latticedb_control's signal, read as the lease is renewed: abort fails here (hold_lease); after a
            # promote a canary gate skips, a bake ends at once. A pause is the trigger's to hold.
            signal = control_signal(self.hold_lease(context), self.log)
            if signal is not None and signal.action == "promote":
                if not self.is_bake:
                    raise AirflowSkipException(signal.message)
                return self._promoted(context, {"step": step.percent, "reason": signal.message,
                                                "control": signal.to_dict(), "evaluations": []})
        baseline = self.required("baseline")
        # A baseline recorded before it carried the load balancer's ARN (a run started on an older version).
        lb_arn = baseline.get("load_balancer_arn") or TrafficClient(self.env).load_balancer_arn()
        now = time.time()
        # The relative judge (judge.mode) compares the new slot with the stable one. Below 100 % both take
        # traffic over the same window; at a canary's 100 % step and in the blue/green bake the stable slot
        # (the old colour, kept warm) serves nothing, so it is judged on its last window before the switch.
        # Its newest `span` worth of periods with traffic count (the switch may be some tasks behind this one).
        sole = self.is_bake or step.percent >= 100
        baseline_window, baseline_periods = None, None
        if sole:
            period = self.env.judge_period_seconds
            baseline_periods = max(-(-int(step.interval_seconds) // period), self.env.judge.min_samples)
            baseline_window = [now - baseline_periods * period - BASELINE_LOOKBACK_SECONDS, now]
        trigger = MetricGateTrigger(
            environment=self.env.name,
            config=self.config_snapshot,
            step=step.percent,
            target_group_arn=baseline["idle_target_group_arn"],
            load_balancer_arn=lb_arn,
            started_at=now,
            interval_seconds=step.interval_seconds,
            deadline=now + self.env.gate_limit_seconds(step.interval_seconds),
            tolerated_failures=self._tolerated_failures(context),
            owner=owner_or_none(context),  # the trigger renews the run's lease on every poll
            baseline_target_group_arn=baseline["target_group_arn"],
            baseline_window=baseline_window,
            baseline_periods=baseline_periods,
        )
        self.log.info("Watching %d%% for %ss", step.percent, step.interval_seconds)
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        ti = context["ti"]
        for record in event["evaluations"]:
            table = record.get("relative_table")
            self.log.info("evaluation: %s", {k: v for k, v in record.items() if k != "relative_table"})
            if table:
                self.log.info("relative judge at %s%% (%s):\n%s", record.get("step"), record["relative"]["verdict"], table)
        ti.xcom_push(key="evaluations", value=event["evaluations"])
        for entry in event.get("control_log") or []:
            self.log.warning("control: %s by %s at %s: %s", entry["action"], entry["by"], entry["at_utc"], entry["reason"])
        if event.get("control_log"):
            ti.xcom_push(key="control", value=event["control_log"])
        if event.get("lease_lost"):  # not a verdict on the new version: the run no longer owns the environment
            self.lease_lost(context, event["reason"])
        if not event["passed"]:
            if event.get("control"):  # latticedb_control's abort: the rollback runs, the reason in its messages
                raise AirflowFailException(f"gate {event['step']}% {event['reason']}")
            raise AirflowFailException(f"gate {event['step']}% failed: {event['reason']}")
        if event.get("control"):
            return self._promoted(context, event)
        self.log.info("gate %s%% passed: %s", event["step"], event["reason"])
        if self.is_bake:  # the blue/green bake, not a canary step
            self.send(context, "stage", "Baked: the new colour held its metrics", {"Verdict": event["reason"]})
        result = {"step": event["step"], "passed": True, "reason": event["reason"], "last": (event["evaluations"] or [None])[-1]}
        if self.slot_task_ids:
            from latticedb_deploy.canary import plan_for
            from latticedb_deploy.operators.plan import skip_unused_slots

            return skip_unused_slots(self, context, [s.percent for s in plan_for(self.env, context["params"])],
                                     int(self.percent), result)
        return result

    def _promoted(self, context: Any, event: dict[str, Any]) -> dict:
        """latticedb_control's promote reached this gate: a canary goes to 100 % now, a bake ends."""
        from latticedb_deploy.operators.traffic import promote_to_full

        control = event["control"]
        if self.is_bake:  # the blue/green bake: traffic is on the new colour already
            self.log.warning("bake ended: %s", event["reason"])
            self.send(context, "stage", "Bake ended early: promoted", {"Promoted by": control["by"], "Reason": control["reason"]})
        else:
            signal = control_signal(self.hold_lease(context), self.log)  # fencing before the change
            if signal is None or signal.action != "promote":
                raise AirflowFailException(f"gate {event['step']}%: the promote signal is gone from the lease; nothing changed")
            promote_to_full(self, context, signal)
        result = {"step": event["step"], "passed": True, "promoted": True, "reason": event["reason"], "control": control,
                  "last": (event["evaluations"] or [None])[-1]}
        if not self.is_bake and self.slot_task_ids:  # at 100 % now: every later slot is moot
            from latticedb_deploy.operators.plan import skip_unused_slots

            return skip_unused_slots(self, context, [], int(self.percent), result)
        return result
