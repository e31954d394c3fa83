"""Build one deployment DAG from a Strategy: the same phases for every strategy.

notify_start -> preflight (one task per check -> verdict) -> prepare (baseline, register)
-> deploy (the strategy's steps) -> verify (smoke tests) -> cleanup -> record_deployment
-> schedule_post_deployment_watch (where configured) -> notify_success;
rollback (the strategy's rollback steps) lights up when a deploy or verify task fails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, chain

from latticedb_deploy.callbacks import notify_task_failure
from latticedb_deploy.config import load_config
from latticedb_deploy.images import IMAGE_URI_PATTERN
from latticedb_deploy.strategies import Step, Strategy

PREFLIGHT_CHECKS = (  # the strategy check first, then the runbook's order
    "check_strategy_allowed",
    "check_required_tools",
    "check_aws_credentials",
    "check_image",
    "check_current_deployment",
    "check_capacity",
    "check_configuration",
    "check_deployment_window",
    "check_no_active_incidents",
    "check_rollback_revision",
)

DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=2),
    "on_failure_callback": notify_task_failure,
}


def environment_param(description: str = "Where to deploy (from include/config/latticedb.yaml).") -> Param:
    """The `environment` field every LatticeDB DAG has: one of the configured environments."""
    return Param("local", type="string", enum=load_config().environment_names, title="Environment", description=description)


def operations_dag(
    dag_id: str, *, description: str, tags: list[str], schedule: Any = None, doc_md: str | None = None, **kwargs: Any
) -> DAG:
    """A LatticeDB DAG outside the strategy factory: the same defaults, retries, tags and failure callback."""
    from latticedb_deploy.callbacks import notify_dag_failure

    return DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        on_failure_callback=notify_dag_failure,
        tags=["latticedb", *tags],
        **kwargs,
    )


def deployment_params(extra: dict[str, Param] | None = None) -> dict[str, Param]:
    """The trigger form: titled, described, validated before a run exists."""
    params = {
        "image_uri": Param(
            type="string",
            pattern=IMAGE_URI_PATTERN,
            title="Image URI",
            description="Fully qualified image with tag or digest, e.g. "
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0",
        ),
        "environment": environment_param(),
        "auto_rollback": Param(
            True,
            type="boolean",
            title="Automatic rollback",
            description="On failure, put the service back on the last good revision with 100% of traffic.",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send Slack notifications to stakeholders."),
        "strict": Param(
            None,
            type=["null", "boolean"],
            title="Strict pre-flight",
            description="Treat pre-flight warnings (HIGH scan findings, outside the deployment window, ...) as failures. "
            "Empty: the environment's strict_preflight (true for production).",
        ),
        "override_reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            title="Deployment window override reason",
            description="Deploy outside the allowed windows or during a freeze anyway; the reason and your user "
            "are recorded in the pre-flight result and the deployment log.",
        ),
    }
    params.update(extra or {})
    return params


def canary_params() -> dict[str, Param]:
    """The canary's trigger-form fields; empty ones fall back to the environment's configured plan."""
    return {
        "canary_percent": Param(
            None, type=["null", "integer"], minimum=1, maximum=100, title="Initial canary %",
            description="First traffic step (runbook -c; default from config: 10). Multiples of 5.",
        ),
        "step_percent": Param(
            None, type=["null", "integer"], minimum=1, maximum=100, title="Step %",
            description="Traffic added per step (runbook -s; default from config: 10).",
        ),
        "interval_seconds": Param(
            None, type=["null", "integer"], minimum=0, maximum=86400, title="Interval (s)",
            description="How long each step is watched before the next (runbook -t; default from config: 300, production 600).",
        ),
        "traffic_steps": Param(
            None, type=["null", "array"], items={"type": "integer", "minimum": 1, "maximum": 100},
            title="Explicit traffic steps",
            description="Strictly increasing list ending at 100, e.g. [5, 15, 25, 50, 100]; overrides the three above.",
        ),
        "tolerated_failures": Param(
            0, type="integer", minimum=0, maximum=10, title="Tolerated failed evaluations",
            description="Failed metric evaluations a gate forgives before it rolls back (default 0).",
        ),
    }


def blue_green_params() -> dict[str, Param]:
    """Blue/green's trigger-form fields; empty ones fall back to the environment's `blue_green` config."""
    return {
        "bake_seconds": Param(
            None, type=["null", "integer"], minimum=0, maximum=86400, title="Bake (s)",
            description="How long the old colour stays warm while metrics watch the new one (default from config).",
        ),
        "require_approval": Param(
            None, type=["null", "boolean"], title="Require approval",
            description="Ask in the Airflow UI before switching production traffic (default from config: production only).",
        ),
    }


# A wait step watches the rollout started by the step named here (its XCom says service + revision).
_WAITS = {
    "wait_for_rollout": "deploy.update_service",
    "wait_for_canary_stable": "deploy.deploy_canary_service",
    "wait_for_idle_colour_stable": "deploy.deploy_idle_colour",
    "wait_for_previous_revision": "rollback.restore_previous_revision",
}


def _slot_task_ids(strategy: Strategy) -> dict[int, list[str]]:
    """percent -> the deploy-group task ids of that traffic slot (its shift and its gate)."""
    slots: dict[int, list[str]] = {}
    for s in strategy.deploy:
        if s.kind in ("shift_traffic", "gate") and s.percent is not None:
            slots.setdefault(s.percent, []).append(f"deploy.{s.task_id}")
    return slots


def _step_operator(step: Step, strategy: Strategy, mutation_task_ids: list[str], gate_task_ids: list[str]) -> Any:
    """The operator for one strategy step (deploy or rollback)."""
    from latticedb_deploy.operators.blue_green import SmokeTestIdleColourOperator, SwitchApprovalOperator
    from latticedb_deploy.operators.deploy import (
        RestorePreviousRevisionOperator,
        ShiftTrafficBackOperator,
        UpdateServiceOperator,
    )
    from latticedb_deploy.operators.slot_smoke import SmokeTestSlotOperator
    from latticedb_deploy.operators.traffic import DeployIdleSlotOperator, RetireOldSlotOperator, ShiftTrafficOperator
    from latticedb_deploy.sensors.ecs_rollout import EcsRolloutSensor
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    kind, task_id = step.kind, step.task_id
    if kind == "plan_traffic_steps":
        from latticedb_deploy.operators.plan import PlanTrafficStepsOperator

        return PlanTrafficStepsOperator(task_id=task_id, slot_task_ids=_slot_task_ids(strategy))
    if kind in _WAITS:
        return EcsRolloutSensor(task_id=task_id, service_from=_WAITS[kind], task_definition_from=_WAITS[kind])
    if kind == "update_service":
        return UpdateServiceOperator(task_id=task_id)
    if kind in ("deploy_canary_service", "deploy_idle_colour"):
        return DeployIdleSlotOperator(task_id=task_id)
    if kind == "shift_traffic":  # slots outside the plan are skipped ahead (operators/plan.py): none_failed keeps the chain
        return ShiftTrafficOperator(task_id=task_id, percent=step.percent, trigger_rule="none_failed")
    if kind == "gate":
        return MetricGateSensor(task_id=task_id, percent=step.percent, trigger_rule="none_failed",
                                slot_task_ids=_slot_task_ids(strategy))
    if kind == "retire_old_stable":  # after a promote (latticedb_control) the last canary gate skips: still retire
        return RetireOldSlotOperator(task_id=task_id, trigger_rule="none_failed")
    if kind == "scale_down_old_colour":
        return RetireOldSlotOperator(task_id=task_id)
    if kind == "smoke_test_idle_colour":
        return SmokeTestIdleColourOperator(task_id=task_id)
    if kind == "smoke_test_canary":  # runbook canary step 4: the canary slot, through the test listener
        return SmokeTestSlotOperator(task_id=task_id, slot_label="canary slot")
    if kind == "approve_switch":
        return SwitchApprovalOperator(task_id=task_id)
    if kind == "switch_traffic":
        return ShiftTrafficOperator(task_id=task_id, percent=100, follow_plan=False)
    if kind == "bake":
        return MetricGateSensor(task_id=task_id, percent=100, bake=True)
    if kind == "restore_previous_revision":
        return RestorePreviousRevisionOperator(
            task_id=task_id, mutation_task_ids=mutation_task_ids, gate_task_ids=gate_task_ids, trigger_rule="one_failed"
        )
    if kind == "shift_traffic_back":
        return ShiftTrafficBackOperator(task_id=task_id)
    raise ValueError(f"strategy {strategy.name!r}: unknown step {kind!r}")


def build_deployment_dag(
    strategy: Strategy,
    *,
    dag_id: str | None = None,
    schedule: Any = None,
    tags: list[str] | None = None,
    extra_params: dict[str, Param] | None = None,
) -> DAG:
    from latticedb_deploy.operators.cleanup import CleanupImagesOperator, CleanupRevisionsOperator
    from latticedb_deploy.operators.deploy import (
        NotifyOperator,
        RecordBaselineOperator,
        RegisterTaskDefinitionOperator,
        RollbackFinishedOperator,
    )
    from latticedb_deploy.operators.locks import AcquireEnvironmentOperator, ReleaseEnvironmentOperator
    from latticedb_deploy.operators.outcome import DeploymentOutcomeOperator
    from latticedb_deploy.operators.post_deployment import PostDeploymentChecksOperator
    from latticedb_deploy.operators.preflight import PreflightCheckOperator, PreflightVerdictOperator
    from latticedb_deploy.operators.record import RecordDeploymentOperator
    from latticedb_deploy.operators.smoke import SmokeTestOperator
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    with DAG(
        dag_id=dag_id or f"latticedb_deploy_{strategy.name}",
        description=strategy.summary,
        doc_md=f"**{strategy.summary}**\n\nRunbook: `{strategy.runbook}`",
        schedule=schedule,
        start_date=None,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        params=deployment_params(extra_params),
        tags=["latticedb", "deployment", strategy.name, *(tags or [])],
    ) as dag:
        notify_start = NotifyOperator(task_id="notify_start", event="started", title=f"{strategy.name} deployment started")

        with TaskGroup("preflight", tooltip="The runbook's pre-flight checks; nothing changes before the verdict"):
            hold = AcquireEnvironmentOperator(task_id="acquire_environment")  # one deployment per environment
            check_names = (*PREFLIGHT_CHECKS, *strategy.checks)
            checks = [
                PreflightCheckOperator(task_id=c, check=c, strategy=strategy.name, on_failure_callback=None)
                for c in check_names
            ]
            verdict = PreflightVerdictOperator(
                task_id="verdict", check_task_ids=[f"preflight.{c}" for c in check_names], trigger_rule="all_done"
            )
            chain(checks, verdict)

        with TaskGroup("prepare", tooltip="Record the last good state; register the new revision pinned by digest"):
            prepare = [RecordBaselineOperator(task_id="record_baseline"), RegisterTaskDefinitionOperator(task_id="register_task_definition")]
            chain(*prepare)

        with TaskGroup("deploy", tooltip=strategy.summary):
            deploy = [_step_operator(s, strategy, [], []) for s in strategy.deploy]
            chain(*deploy)

        with TaskGroup("verify", tooltip="Smoke tests (JSON report), then post-deployment checks with a timeout"):
            smoke = SmokeTestOperator(task_id="smoke_tests")
            post_checks = PostDeploymentChecksOperator(task_id="post_deployment_checks")
            chain(smoke, post_checks)

        with TaskGroup("cleanup", tooltip="Deregister revisions beyond the newest N; delete ECR images beyond the newest M"):
            cleanup = CleanupRevisionsOperator(task_id="deregister_old_revisions")
            cleanup_images = CleanupImagesOperator(task_id="delete_old_images")
            chain(cleanup, cleanup_images)

        record = RecordDeploymentOperator(task_id="record_deployment", strategy=strategy.name)
        # Runbook "monitor for 24 hours": trigger latticedb_post_deployment_watch (not waited for) where
        # the environment asks for it; skipped elsewhere, and a failure to schedule is only a warning.
        from latticedb_deploy.operators.watch import SchedulePostDeploymentWatchOperator

        schedule_watch = SchedulePostDeploymentWatchOperator(task_id="schedule_post_deployment_watch", retries=1)

        # The run's outcome: "succeeded" (with any cleanup/record warning), or, when an approval said
        # no and everything after it was skipped, "rejected: not deployed" (fails the run, pages nobody).
        notify_success = DeploymentOutcomeOperator(
            task_id="notify_success", event="succeeded", title=f"{strategy.name} deployment succeeded",
            trigger_rule="none_failed", on_failure_callback=None,
        )

        with TaskGroup("rollback", tooltip="Runs only when a deploy or verify task fails"):
            mutations = [deploy[0].task_id]
            gates = [t.task_id for t in deploy if isinstance(t, MetricGateSensor)]
            rollback = [_step_operator(s, strategy, mutations, gates) for s in strategy.rollback]
            notify_rollback = RollbackFinishedOperator(task_id="notify_rollback")  # verifies, then notifies
            chain(*rollback, notify_rollback)

        release = ReleaseEnvironmentOperator(task_id="release_environment").as_teardown(setups=hold)
        chain([notify_success, notify_rollback], release)
        chain(notify_start, hold, checks, verdict, prepare[0], prepare[1], deploy[0])
        chain(deploy[-1], smoke, post_checks, cleanup, cleanup_images, record, schedule_watch, notify_success)
        chain([*deploy, smoke, post_checks], rollback[0])
    return dag
