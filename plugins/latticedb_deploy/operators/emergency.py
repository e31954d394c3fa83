"""latticedb_rollback: the runbook's emergency rollback (`manage-service.sh rollback -e <env>`).

plan -> switch_listener (warm old colour: one modify_listener call)
     -> update_service -> wait_for_rollout (otherwise: the live service back on the target revision)
     -> verify (100 % of traffic on the target revision) and notify.

Exactly one of the two paths runs; the other skips itself, so the graph shows which one it was.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.readiness import unsettled

SWITCH = "switch_listener"
UPDATE = "update_service"
NOTHING = "nothing_to_do"


def revision_of(arn: str) -> int:
    return int(arn.rsplit(":", 1)[1])


def short(arn: str | None) -> str:
    return (arn or "").split("/")[-1]


def is_warm(service: dict, other_task_definition: str) -> bool:
    """The idle colour still runs a full, settled fleet of a different revision."""
    return unsettled(service) is None and service.get("taskDefinition") != other_task_definition


def older_revisions(active_newest_first: list[str], current: str) -> list[str]:
    """The ACTIVE revisions of the family older than the one in service, newest first."""
    return sorted((a for a in active_newest_first if revision_of(a) < revision_of(current)), key=revision_of, reverse=True)


def previous_revision(active_newest_first: list[str], current: str) -> str | None:
    """The newest ACTIVE revision of the family older than the one in service."""
    older = older_revisions(active_newest_first, current)
    return older[0] if older else None


def choose(
    *, live: dict, idle: dict, live_weight: int, requested: str | None, active: list[str], previous=previous_revision,
    last_good: dict | None = None,
) -> dict:
    """Decide how to roll back. `requested` is a resolved ARN or None (= choose one).

    Default target, first that applies:
    - `last_good`: the revision that served before the deployment this rollback pre-empted (its
      baseline, kept on the lease). Only it says which slot is the good one: by weight, a canary past
      50 % is the "live" slot, and a blue/green waiting for approval has the new colour warm at 0 %;
    - the warm idle colour's revision when the live one takes all traffic (a blue/green switch whose
      run is gone, the old colour still warm);
    - the live colour's own revision when traffic is split (a canary in flight: all traffic back to
      the slot with most of it);
    - the newest ACTIVE revision older than the one in service, as `previous(active, live)` picks it
      (the operator's pick skips revisions whose image the deployment history knows failed).

    How: SWITCH (one listener call) when the idle colour runs the target, settled; NOTHING when the
    live colour runs it with all traffic and nothing rolling; otherwise UPDATE (the live colour gets
    all traffic and rolls to the target).
    """
    live_td, idle_td = live["taskDefinition"], idle["taskDefinition"]
    idle_warm = is_warm(idle, live_td)
    if requested is not None:
        target = requested
    elif last_good and last_good.get("task_definition"):
        target = last_good["task_definition"]
    elif idle_warm and live_weight == 100:
        target = idle_td
    elif live_weight < 100:
        target = live_td
    else:
        target = previous(active, live_td)
    if target is None:
        raise AirflowFailException(
            f"no revision to roll back to: none older than {short(live_td)} is ACTIVE and not known bad "
            "(a deployment of its image failed, or it runs the image in service), and the idle colour is "
            "not warm; name target_revision explicitly"
        )
    if idle_warm and target == idle_td:
        mode = SWITCH
    elif target == live_td and live_weight == 100 and len(live.get("deployments") or []) <= 1:
        mode = NOTHING
    else:
        mode = UPDATE
    return {"mode": mode, "target_task_definition": target, "idle_warm": idle_warm,
            "from_last_good": requested is None and bool(last_good and last_good.get("task_definition"))}


class PlanRollbackOperator(LatticeDBOperator):
    """Read the live/idle colours and revisions; pick the fast path (listener) or the slow one (service).
    `taken` is take_environment's result: the deployment in flight it pre-empted, and what served before
    that deployment (the default target)."""

    template_fields = (*LatticeDBOperator.template_fields, "target_revision", "reason", "taken")

    def __init__(self, *, target_revision: Any = None, reason: str = "{{ params.reason }}", taken: Any = None,
                 **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.target_revision = target_revision
        self.reason = reason
        self.taken = taken

    def _resolve(self, ecs: Any, context: Any) -> str | None:
        """`target_revision` (given, else the run's param; empty: choose one) as a task definition ARN."""
        from latticedb_deploy.params import given_or_param

        given = given_or_param(self.target_revision, context, "target_revision")
        ref = str(given or "").strip()
        if not ref:
            return None
        if ref.isdigit():
            ref = f"{self.env.task_family}:{ref}"
        try:
            td = ecs.describe_task_definition(ref)
        except Exception as exc:  # noqa: BLE001 - a bad name is the caller's mistake: say so, don't retry
            raise AirflowFailException(f"target_revision {given!r} not found: {exc}") from None
        if td.get("family") != self.env.task_family:
            raise AirflowFailException(f"target_revision {ref!r} is not in family {self.env.task_family!r}")
        if td.get("status") not in (None, "ACTIVE"):
            raise AirflowFailException(f"target_revision {short(td['taskDefinitionArn'])} is {td.get('status')}, not ACTIVE")
        return td["taskDefinitionArn"]

    def _previous_good(self, ecs: Any, active: list[str], live_td: str) -> tuple[str | None, list[str]]:
        """The newest older revision that is not known bad (latticedb_deploy.revisions.rollback_target):
        "the previous revision" may be a canary that was rolled back, or the image being rolled back from."""
        from latticedb_deploy.aws.history import HistoryStore
        from latticedb_deploy.revisions import image_digest, image_verdicts, rollback_target

        try:
            verdicts = image_verdicts(HistoryStore(self.env).query(limit=200))
        except Exception as exc:  # noqa: BLE001 - no history: the same rule without what it knows
            self.log.warning("deployment history unavailable (%s): choosing the rollback target without it", exc)
            verdicts = {}

        def digest_of(arn: str) -> str | None:
            return image_digest(ecs.container_image(ecs.describe_task_definition(arn)))

        return rollback_target(older_revisions(active, live_td), digest_of, digest_of(live_td), verdicts)

    def execute(self, context: Any) -> dict:
        from latticedb_deploy import notify
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        started = time.time()
        ecs, traffic = EcsClient(self.env), TrafficClient(self.env)
        live_slot, idle_slot, weights = traffic.live_and_idle()
        live, idle = ecs.describe_services(live_slot.service, idle_slot.service)
        passed_over: list[str] = []

        def previous(active: list[str], live_td: str) -> str | None:
            target, skipped = self._previous_good(ecs, active, live_td)
            passed_over.extend(skipped)
            return target

        decision = choose(
            live=live,
            idle=idle,
            live_weight=weights.get(live_slot.target_group_arn, 0),
            requested=self._resolve(ecs, context),
            active=ecs.list_revisions(),
            previous=previous,
            last_good=(self.taken or {}).get("preempted_last_good"),
        )
        for why in passed_over:
            self.log.warning("Not rolling back to %s", why)
        decision["passed_over"] = passed_over
        plan = {
            **decision,
            "started_at": started,
            "live_colour": live_slot.colour,
            "live_service": live_slot.service,
            "live_target_group_arn": live_slot.target_group_arn,
            "live_task_definition": live["taskDefinition"],
            "idle_colour": idle_slot.colour,
            "idle_service": idle_slot.service,
            "idle_target_group_arn": idle_slot.target_group_arn,
            "idle_task_definition": idle["taskDefinition"],
            "desired_count": max(live["desiredCount"], idle["desiredCount"]) or self.env.desired_count,
            "live_desired_count": live["desiredCount"],
            "idle_desired_count": idle["desiredCount"],
            "weights": weights,
            "preempted": (self.taken or {}).get("preempted"),
        }
        how = {
            SWITCH: f"switch the listener back to {idle_slot.colour} (warm, on {short(idle['taskDefinition'])})",
            UPDATE: f"update {live_slot.service} to {short(decision['target_task_definition'])} and wait until stable",
            NOTHING: "nothing: the target revision already serves 100 % of traffic",
        }[decision["mode"]]
        self.log.info("Emergency rollback plan: %s", how)
        if self.notify_enabled(context):
            notify.send(
                self.env,
                "rollback_started",
                f"Emergency rollback started in {self.environment}",
                {
                    "Environment": self.environment,
                    "Reason": self.reason,
                    "From": short(live["taskDefinition"]),
                    "To": short(decision["target_task_definition"]),
                    "How": how,
                    **({"Passed over": "; ".join(passed_over)} if passed_over else {}),
                    "Run": context["run_id"],
                },
                notify.run_link(context),
            )
        return plan


class PlannedRollbackStep(LatticeDBOperator):
    """A step of the emergency rollback that acts on `plan`, PlanRollbackOperator's result (in the DAG
    its `.output`)."""

    template_fields = (*LatticeDBOperator.template_fields, "plan")

    def __init__(self, *, plan: Any = None, **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.plan = plan

    def planned(self) -> dict:
        if not self.plan:
            raise AirflowFailException(f"{self.task_id}: no rollback plan given (the plan task's result): nothing changed")
        return self.plan


class SwitchListenerBackOperator(PlannedRollbackStep):
    """Fast path: 100 % of traffic to the warm old colour in one modify_listener call."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.operators.traffic import guarded_shift
        from latticedb_deploy.readiness import SlotExpectation

        plan = self.planned()
        if plan["mode"] != SWITCH:
            raise AirflowSkipException(f"the old colour is not warm on the target revision (plan: {plan['mode']})")
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        warm = SlotExpectation(
            plan["idle_service"], plan["idle_target_group_arn"], plan["idle_task_definition"], plan["idle_desired_count"]
        )  # still warm now? (checked again right before the one call)
        guarded_shift(self, {plan["idle_target_group_arn"]: 100, plan["live_target_group_arn"]: 0}, [warm], wait_seconds=0)
        self.log.info("Listener: %s 100 %% (%s), %s 0 %%", plan["idle_colour"], short(plan["idle_task_definition"]), plan["live_colour"])
        return {"service": plan["idle_service"], "task_definition": plan["idle_task_definition"], "switched_at": time.time()}


class RollbackServiceOperator(PlannedRollbackStep):
    """Slow path: the live colour keeps 100 % of traffic and moves to the target revision (circuit breaker on)."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.operators.traffic import guarded_shift
        from latticedb_deploy.readiness import SlotExpectation

        plan = self.planned()
        if plan["mode"] != UPDATE:
            raise AirflowSkipException(f"no service update needed (plan: {plan['mode']})")
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        # Absolute weights first: a half-shifted canary must not keep sending traffic to the bad slot.
        # The live slot keeps (or gets all) the traffic while it rolls in place, so it must be serving now.
        live = SlotExpectation(
            plan["live_service"], plan["live_target_group_arn"], plan["live_task_definition"], plan["live_desired_count"]
        )
        guarded_shift(self, {plan["live_target_group_arn"]: 100, plan["idle_target_group_arn"]: 0}, [live], wait_seconds=0)
        svc = EcsClient(self.env).update_service(
            plan["live_service"], plan["target_task_definition"], desired_count=plan["desired_count"]
        )
        self.log.info("%s -> %s x%d", plan["live_service"], short(svc["taskDefinition"]), plan["desired_count"])
        return {"service": plan["live_service"], "task_definition": plan["target_task_definition"]}


class VerifyRollbackOperator(PlannedRollbackStep):
    """Confirm 100 % of traffic reaches a settled fleet on the target revision; notify the outcome."""

    template_fields = (*PlannedRollbackStep.template_fields, "reason")

    def __init__(self, *, reason: str = "{{ params.reason }}", **kwargs: Any):
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Any) -> dict:
        from latticedb_deploy import notify
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        plan = self.planned()
        target = plan["target_task_definition"]
        ecs, traffic = EcsClient(self.env), TrafficClient(self.env)
        live_slot, idle_slot, weights = traffic.live_and_idle()
        svc = ecs.describe_service(live_slot.service)
        problems = []
        if weights.get(live_slot.target_group_arn) != 100:
            problems.append(f"listener weights are {weights}")
        if svc["taskDefinition"] != target:
            problems.append(f"{live_slot.service} runs {short(svc['taskDefinition'])}, not {short(target)}")
        why = unsettled(svc, live_slot.service)
        if why:
            problems.append(why)
        if problems:
            raise RuntimeError("rollback not complete: " + "; ".join(problems))
        elapsed = round(time.time() - plan["started_at"], 1)
        self.log.info("Rollback complete in %.1fs: %s (%s) serves 100%% on %s", elapsed, live_slot.service, live_slot.colour, short(target))
        from latticedb_deploy.restored import check_restored

        check = check_restored(
            self.env, target_group_arn=live_slot.target_group_arn, task_definition=target, since=time.time(),
            load_balancer_arn=traffic.load_balancer_arn(),
        )
        self.log.info("Rollback verification: %s", check.to_dict())
        if not check.healthy:
            raise AirflowFailException(
                f"traffic is back on {short(target)} but it is not healthy: " + "; ".join(check.problems)
            )
        if self.notify_enabled(context):
            notify.send(
                self.env,
                "rollback_finished",
                f"Emergency rollback finished in {self.environment}: 100% on {short(target)}",
                {
                    "Environment": self.environment,
                    "Reason": self.reason,
                    "Path": {SWITCH: "listener switched back", UPDATE: "service updated", NOTHING: "nothing to do"}[plan["mode"]],
                    "Serving": f"{live_slot.service} ({live_slot.colour}), {svc['runningCount']} tasks",
                    "Took": f"{elapsed}s from plan to 100% on the target revision",
                    "Health": check.health,
                    "Metrics": check.metrics,
                    "Run": context["run_id"],
                },
                notify.run_link(context),
            )
        from latticedb_deploy.operators.history import record_outcome

        record_outcome(
            self.env, context, "succeeded", logger=self.log,
            image=short(target), version=check.version or short(target), time_to_restore_seconds=elapsed,
            rolls_back=plan.get("preempted"), reason=str(self.reason), issues=[f"emergency rollback: {self.reason}"],
            details=[f"{plan['mode']}: {short(plan['live_task_definition'])} -> {short(target)}"],
        )
        return {"service": live_slot.service, "task_definition": target, "seconds": elapsed, "mode": plan["mode"],
                "verification": check.to_dict()}
