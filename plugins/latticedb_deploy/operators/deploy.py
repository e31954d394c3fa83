"""Deployment steps on ECS: record what runs now, register the new revision, update the service."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import DeploymentStepOperator, LatticeDBOperator, owner_of, ran_before

# Operators take the baseline and new revision as arguments (DeploymentStepOperator); these ids are
# only for what any task or callback of a run may say about it (revision_fields, the deployment history).
BASELINE_TASK_ID = "prepare.record_baseline"
REGISTER_TASK_ID = "prepare.register_task_definition"


class RecordBaselineOperator(LatticeDBOperator):
    """Remember the last good state (live slot, its revision and size) so rollback knows where to go."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        traffic = TrafficClient(self.env)
        live, idle, weights = traffic.live_and_idle()
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
            # Known from the read above; the gates need it for CloudWatch's LoadBalancer dimension.
            "load_balancer_arn": traffic.load_balancer_arn(),
        }
        self.log.info("Last good state: %s on %s (%d tasks)", live.service, svc["taskDefinition"], svc["desiredCount"])
        self._keep_on_the_lease(context, baseline)
        return baseline

    def _keep_on_the_lease(self, context: Any, baseline: dict) -> None:
        """Written on the run's lease too: an emergency rollback that pre-empts this run takes it from there
        (the listener's weights alone cannot tell it which slot was good). A lost lease stops the run here,
        before anything changed."""
        from latticedb_deploy.aws.locks import EnvironmentLock, LeaseLostError

        try:
            EnvironmentLock(self.env).record_last_good(owner_of(context), baseline)
        except LeaseLostError as exc:
            self.lease_lost(context, str(exc))


class RegisterTaskDefinitionOperator(DeploymentStepOperator):
    """Resolve the tag to its digest and register a revision that pins it (or reuse an identical one)
    of the `baseline`'s task definition."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecr import EcrClient
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.images import parse_image_uri

        baseline = self.required("baseline")
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
            "pushed_at": info.pushed_at,  # lead time for changes starts here (history, DORA)
        }


class UpdateServiceOperator(DeploymentStepOperator):
    """Rolling update of the live service (`baseline`) to `new_revision`, ECS circuit breaker on."""

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.aws.ecs import EcsClient

        baseline, new = self.required("baseline", "new_revision")
        svc = EcsClient(self.env).update_service(baseline["service"], new["task_definition"])
        self.log.info("%s now targets %s", baseline["service"], svc["taskDefinition"])
        return {"service": baseline["service"], "task_definition": new["task_definition"]}


class RestorePreviousRevisionOperator(DeploymentStepOperator):
    """Rollback for every strategy: 100 % of traffic back on the last good slot (`baseline`), on its last
    good revision and size, and the other slot scaled to zero. Idempotent: a retry converges. No baseline
    (the run failed before recording one): nothing was changed, nothing to roll back. Its result carries
    the baseline on to the rest of the rollback."""

    template_fields = (*DeploymentStepOperator.template_fields, "auto_rollback")

    def __init__(
        self,
        *,
        mutation_task_ids: list[str],
        gate_task_ids: list[str] | None = None,
        auto_rollback: Any = None,
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
        from airflow.sdk.exceptions import AirflowSkipException

        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.aws.guarded_traffic import GuardedTraffic
        from latticedb_deploy.control import aborted_by
        from latticedb_deploy.operators.base import control_signal
        from latticedb_deploy.params import flag
        from latticedb_deploy.readiness import last_good_slot

        ti = context["ti"]
        baseline = self.baseline
        if not baseline:  # before the fencing check: a run that never got the lease changed nothing either
            record_failed_deployment(self, context, "failed_before_change", ["nothing was changed; nothing rolled back"])
            raise AirflowSkipException("nothing to roll back: the run failed before changing anything")
        holder = self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        ecs, traffic = EcsClient(self.env), TrafficClient(self.env)
        live, idle = ecs.describe_services(baseline["service"], baseline["idle_service"])
        weights = traffic.weights()
        mutated = any(ti.xcom_pull(task_ids=t) is not None for t in self.mutation_task_ids)
        untouched = (
            not mutated
            and live["taskDefinition"] == baseline["task_definition"]
            and live["desiredCount"] == baseline["desired_count"]
            and weights.get(baseline["target_group_arn"]) == 100
        )
        if untouched:
            record_failed_deployment(self, context, "failed_before_change", ["nothing was changed; nothing rolled back"])
            raise AirflowSkipException("nothing to roll back: the service was never changed")
        gate = self._failed_gate(ti)
        signal = control_signal(holder, self.log)
        aborted = aborted_by(signal)  # latticedb_control's abort, also under the rollback's own mark
        fields: dict[str, object] = {"Service": baseline["service"], "Restoring": baseline["task_definition"].split("/")[-1]}
        if aborted:
            fields["Aborted"] = aborted  # latticedb_control's abort: the reason in every message
        from latticedb_deploy.control import paused_too_long

        expired = paused_too_long(signal, time.time(), self.env.max_pause_seconds)
        if expired:
            fields["Paused too long"] = expired  # the held gate or shift failed on it: say so here too
        if gate:
            fields["Failed step"] = f"{gate.get('step')}%"
            fields["Metrics"] = gate.get("summary") or ", ".join(gate.get("reasons", []))
        else:  # not a gate (a held shift, a rollout, the checks): the run's first failed task, and why
            from latticedb_deploy.operators.history import first_failure

            step, why = first_failure(context)
            if step:
                fields["Failed step"] = step
            if why and not aborted and not expired:  # those two already say why
                fields["Why"] = why
        if not flag(self.auto_rollback, context, "auto_rollback", True):
            msg = (
                f"AUTO-ROLLBACK DISABLED: traffic and services are left as they are "
                f"(weights {weights}; {baseline['service']} on {live['taskDefinition']}). "
                "Roll back by hand or trigger latticedb_rollback."
            )
            self.log.error("%s", msg)
            self.send(context, "warning", "Deployment failed; auto-rollback disabled, nothing restored", {**fields, "State": msg})
            record_failed_deployment(self, context, "aborted", ["auto-rollback disabled", msg])
            raise AirflowSkipException(msg)
        from latticedb_deploy.operators.control import mark_rolling_back

        mark_rolling_back(self, context, holder)  # a control run sent from now on is refused, not ignored
        self.send(context, "rollback_started", "Rollback started", fields)
        detected_at = time.time()
        # 1. The last good slot back on its revision and size. No traffic moves yet: after promotion it
        #    has 0 tasks, and sending traffic there before its tasks run and pass health checks is an outage.
        #    Always, not only when the read above shows it changed: ECS's reads are eventually consistent (a
        #    service updated a moment ago may still read as before), and an UpdateService that changes
        #    neither revision nor size starts no deployment.
        ecs.update_service(baseline["service"], baseline["task_definition"], desired_count=baseline["desired_count"])
        # 2. Already fit for traffic (every failure before promotion): all traffic back in one call now,
        #    then the other slot down. Otherwise rollback.shift_traffic_back does it once the slot is ready.
        problems, _ = GuardedTraffic(self.env, ecs, traffic).problems(last_good_slot(baseline))
        shifted = not problems
        if shifted:
            traffic.set_weights({baseline["target_group_arn"]: 100, baseline["idle_target_group_arn"]: 0})
            if idle["desiredCount"] != 0:
                ecs.scale(baseline["idle_service"], 0)
            self.log.info(
                "Restored: %s on %s with 100%% of traffic; %s scaled to 0",
                baseline["service"], baseline["task_definition"], baseline["idle_service"],
            )
        else:
            self.log.info(
                "Bringing %s back to %s x%d; traffic stays where it is until it is ready (%s)",
                baseline["service"], baseline["task_definition"], baseline["desired_count"], "; ".join(problems),
            )
        return {
            "service": baseline["service"],
            "task_definition": baseline["task_definition"],
            "baseline": baseline,
            "failed_gate": gate,
            "aborted": aborted,
            "detected_at": detected_at,
            "shifted_at": time.time() if shifted else None,
        }


class ShiftTrafficBackOperator(LatticeDBOperator):
    """Rollback's last step: once the last good slot runs its revision at its size with healthy targets,
    100 % of traffic to it in one call, then the other slot to zero. Idempotent: a retry converges.
    `restore` is rollback.restore_previous_revision's result (it names the last good state)."""

    template_fields = (*LatticeDBOperator.template_fields, "restore")
    acts_on_baseline = True

    def __init__(self, *, restore: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.restore = restore

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from airflow.sdk.exceptions import AirflowSkipException

        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.operators.traffic import drain_to_zero, guarded_shift
        from latticedb_deploy.readiness import last_good_slot

        restore = self.restore or {}
        baseline = restore.get("baseline")
        if not baseline:
            raise AirflowSkipException("nothing was rolled back")
        shifted = guarded_shift(
            self, {baseline["target_group_arn"]: 100, baseline["idle_target_group_arn"]: 0}, [last_good_slot(baseline)]
        )
        if EcsClient(self.env).describe_service(baseline["idle_service"])["desiredCount"] != 0:
            drain_to_zero(self, context, baseline["idle_service"], baseline["idle_target_group_arn"])
        shifted_at = time.time() if shifted else restore.get("shifted_at") or time.time()
        seconds = round(shifted_at - restore.get("detected_at", shifted_at), 1)
        self.log.info(
            "%s (%s) serves 100%% on %s; %s scaled to 0; %.1fs from rollback start to traffic restored",
            baseline["service"], baseline["colour"], baseline["task_definition"], baseline["idle_service"], seconds,
        )
        return {"service": baseline["service"], "task_definition": baseline["task_definition"],
                "restored_at": shifted_at, "seconds_to_restore": seconds}


class NotifyOperator(LatticeDBOperator):
    """Send one stakeholder notification (start, success, rollback finished)."""

    def __init__(self, *, event: str, title: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.event = event
        self.title = title

    template_fields = (*LatticeDBOperator.template_fields, "title")

    def execute(self, context: Any) -> None:
        self.send(context, self.event, self.title, revision_fields(context["ti"]))


def revision_fields(ti: Any) -> dict[str, object]:
    """The message fields every deployment notification carries: previous and new revision, digest.
    Read from the run (not arguments): failure callbacks and notify tasks at any point call it."""
    fields: dict[str, object] = {}
    before = ran_before(ti, (REGISTER_TASK_ID, BASELINE_TASK_ID))  # none yet for notify_start
    new = ti.xcom_pull(task_ids=REGISTER_TASK_ID) if REGISTER_TASK_ID in before else None
    baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID) if BASELINE_TASK_ID in before else None
    if baseline:
        fields["Previous revision"] = baseline["task_definition"].split("/")[-1]
    if new:
        fields["New revision"] = new["task_definition"].split("/")[-1]
        fields["Digest"] = new["digest"]
    return fields


def fail(message: str) -> None:
    """Fail without retrying: the outcome is deterministic (bad input, failed rollout)."""
    raise AirflowFailException(message)


class RollbackFinishedOperator(LatticeDBOperator):
    """Verify the rollback the way the runbook does (/health on the restored version, error rate and
    latency over a short window), then say so with the result; an unhealthy restore fails loudly.
    `restore` and `shift_back` are the results of the rollback's restore and shift-back steps."""

    template_fields = (*LatticeDBOperator.template_fields, "restore", "shift_back")

    def __init__(self, *, restore: Any = None, shift_back: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.restore = restore
        self.shift_back = shift_back

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.restored import check_restored

        restore = self.restore or {}
        back = self.shift_back or {}
        baseline = restore.get("baseline")
        if not baseline:
            raise AirflowFailException("nothing to verify: rollback.restore_previous_revision gave no last good state")
        check = check_restored(
            self.env,
            target_group_arn=baseline["target_group_arn"],
            task_definition=baseline["task_definition"],
            since=back.get("restored_at") or time.time(),
            load_balancer_arn=TrafficClient(self.env).load_balancer_arn(),
        )
        fields: dict[str, object] = {
            "Serving": f"{baseline['service']} ({baseline['colour']}) on {baseline['task_definition'].split('/')[-1]}"
            + (f" ({check.version})" if check.version else ""),
            "Traffic": f"100% on {baseline['colour']}",
            "Health": check.health,
            "Metrics": check.metrics,
        }
        if back.get("seconds_to_restore") is not None:
            fields["Time to restore"] = f"{back['seconds_to_restore']}s"
        gate = restore.get("failed_gate")
        if restore.get("aborted"):
            fields["Aborted"] = restore["aborted"]
        if gate:
            fields["Failed step"] = f"{gate.get('step')}%"
        self.log.info("Rollback verification: %s", check.to_dict())
        if not check.healthy:
            raise AirflowFailException("the restored version is not healthy: " + "; ".join(check.problems))
        self.send(context, "rollback_finished", "Rollback finished: service on last good revision", fields)
        details = [f"rolled back to {baseline['task_definition'].split('/')[-1]}", f"verification: {check.health}; {check.metrics}"]
        # An abort by latticedb_control rolled back through here too: recorded as `aborted`, its reason first.
        record_failed_deployment(
            self, context, "aborted" if restore.get("aborted") else "rolled_back", details,
            time_to_restore_seconds=back.get("seconds_to_restore"),
            **({"reason": restore["aborted"]} if restore.get("aborted")
               else {"reason": gate.get("summary") or ", ".join(gate.get("reasons", []))} if gate else {}),
        )
        return {**check.to_dict(), "seconds_to_restore": back.get("seconds_to_restore")}


def failed_steps(context: Any) -> list[str]:
    """The deploy/verify tasks of this run that failed (what the deployment log names as the failure)."""
    ti = context["ti"]
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    except Exception:  # noqa: BLE001 - naming the step is a nicety; the entry is written regardless
        return []
    return sorted(t for t, s in states.items() if s == "failed" and t.split(".")[0] in ("deploy", "verify"))


def record_failed_deployment(operator: LatticeDBOperator, context: Any, outcome: str, details: list[str], **fields: Any) -> None:
    """The history record and deployment-log entry of a deployment that did not go through (rolled
    back, aborted, or failed before it changed anything), naming the step that failed. Never raises."""
    from latticedb_deploy.operators.history import record_outcome

    record_outcome(operator.env, context, outcome, logger=operator.log, details=list(details), **fields)
