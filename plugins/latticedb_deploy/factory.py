"""Build one deployment DAG from a Strategy: the same phases for every strategy.

notify_start -> preflight (one task per check -> verdict) -> prepare (baseline, register)
-> deploy (the strategy's steps) -> verify (smoke tests) -> cleanup -> record_deployment
-> schedule_post_deployment_watch (where configured) -> notify_success;
rollback (the strategy's rollback steps) lights up when a deploy or verify task fails.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import field
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup

from latticedb_deploy.callbacks import notify_task_failure
from latticedb_deploy.config import load_config
from latticedb_deploy.edges import chain
from latticedb_deploy.images import IMAGE_URI_PATTERN
from latticedb_deploy.models import frozen_model
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


# Active runs of a DAG whose runs each act on one environment and are serialized per environment by its
# lease: enough for every environment at once, so one environment's long wait never queues another's run.
RUNS_ACROSS_ENVIRONMENTS = 16


@contextmanager
def operations_dag(
    dag_id: str, *, description: str, tags: list[str], schedule: Any = None, doc_md: str | None = None,
    max_active_runs: int = 1, failure_told_by: str | None = None, **kwargs: Any,
) -> Iterator[DAG]:
    """A LatticeDB DAG outside the strategy factory: the same defaults, retries, tags and failure callback.
    One active run by default; a DAG whose runs act on one environment each and are serialized per
    environment by its lease (latticedb_rollback, latticedb_service) allows more, so one environment's
    wait never queues another's emergency.

    Used as `with operations_dag(...) as dag:`, like `with DAG(...) as dag:`; its tasks get one copy
    of the DAG's params each (params_copied_once). `failure_told_by`: the task whose message tells how a
    run ended (callbacks.notify_dag_failure), so a failed run is not told twice."""
    from functools import partial

    from latticedb_deploy.callbacks import notify_dag_failure

    with DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=schedule,
        catchup=False,
        max_active_runs=max_active_runs,
        default_args=DEFAULT_ARGS,
        on_failure_callback=partial(notify_dag_failure, told_by=failure_told_by) if failure_told_by else notify_dag_failure,
        tags=["latticedb", *tags],
        **kwargs,
    ) as dag, params_copied_once(dag):
        yield dag


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


# A wait step watches the rollout started by the earlier step of the kind named here (its result says
# service + revision, passed to the wait as an argument).
_WAITS = {
    "wait_for_rollout": "update_service",
    "wait_for_canary_stable": "deploy_canary_service",
    "wait_for_idle_colour_stable": "deploy_idle_colour",
    "wait_for_previous_revision": "restore_previous_revision",
}


def _slot_task_ids(strategy: Strategy) -> dict[int, list[str]]:
    """percent -> the deploy-group task ids of that traffic slot (its shift and its gate)."""
    slots: dict[int, list[str]] = {}
    for s in strategy.deploy:
        if s.kind in ("shift_traffic", "gate") and s.percent is not None:
            slots.setdefault(s.percent, []).append(f"deploy.{s.task_id}")
    return slots


# Steps as data (the way Argo Rollouts reads a rollout's steps): each step kind names the function that
# builds its task. A strategy (strategies.py) is a list of steps; adding a kind is one builder here.


@frozen_model
class StepContext:
    """What a step's builder may need beyond the step itself: the strategy (its traffic slots), the
    run's inputs (`baseline` and `new_revision`: the prepare tasks' `.output`), the tasks built so far
    in this phase by step kind (`built`: a wait takes the result of the step that started its rollout)
    and, for the rollback, which deploy tasks change something (`mutation_task_ids`) and which are gates."""

    strategy: Strategy
    baseline: Any = None
    new_revision: Any = None
    built: dict[str, Any] = field(default_factory=dict)
    mutation_task_ids: tuple[str, ...] = ()
    gate_task_ids: tuple[str, ...] = ()

    @cached_property
    def slot_task_ids(self) -> dict[int, list[str]]:
        """The strategy's traffic slots (_slot_task_ids), worked out once for all its gates."""
        return _slot_task_ids(self.strategy)

    @property
    def inputs(self) -> dict[str, Any]:
        """baseline= and new_revision= for a DeploymentStepOperator."""
        return {"baseline": self.baseline, "new_revision": self.new_revision}


StepBuilder = Callable[[Step, StepContext], Any]
STEP_BUILDERS: dict[str, StepBuilder] = {}


def step_builder(*kinds: str) -> Callable[[StepBuilder], StepBuilder]:
    """Register the decorated function as the builder of these step kinds (each kind once)."""

    def register(builder: StepBuilder) -> StepBuilder:
        for kind in kinds:
            if kind in STEP_BUILDERS:
                raise ValueError(f"step kind {kind!r} has two builders")
            STEP_BUILDERS[kind] = builder
        return builder

    return register


def build_step(step: Step, ctx: StepContext) -> Any:
    """The task for one strategy step (deploy or rollback); an unknown kind is a ValueError naming both.
    The task is remembered in `ctx.built` under its kind, for the steps after it."""
    builder = STEP_BUILDERS.get(step.kind)
    if builder is None:
        raise ValueError(
            f"strategy {ctx.strategy.name!r}: unknown step {step.kind!r} (known: {', '.join(sorted(STEP_BUILDERS))})"
        )
    task = builder(step, ctx)
    ctx.built[step.kind] = task
    return task


def _output_of(kind: str, step: Step, ctx: StepContext) -> Any:
    """The `.output` of the earlier step of `kind` this step reads; a strategy without one is a ValueError."""
    task = ctx.built.get(kind)
    if task is None:
        raise ValueError(f"strategy {ctx.strategy.name!r}: step {step.kind!r} needs an earlier {kind!r} step")
    return task.output


@step_builder("plan_traffic_steps")
def _plan_traffic_steps(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.plan import PlanTrafficStepsOperator

    return PlanTrafficStepsOperator(task_id=step.task_id, slot_task_ids=ctx.slot_task_ids)


@step_builder(*_WAITS)
def _wait_for_rollout(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.sensors.ecs_rollout import EcsRolloutSensor

    return EcsRolloutSensor(task_id=step.task_id, rollout=_output_of(_WAITS[step.kind], step, ctx))


@step_builder("update_service")
def _update_service(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.deploy import UpdateServiceOperator

    return UpdateServiceOperator(task_id=step.task_id, **ctx.inputs)


@step_builder("deploy_canary_service", "deploy_idle_colour")
def _deploy_idle_slot(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.traffic import DeployIdleSlotOperator

    return DeployIdleSlotOperator(task_id=step.task_id, **ctx.inputs)


@step_builder("shift_traffic")
def _shift_traffic(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.traffic import ShiftTrafficOperator

    # slots outside the plan are skipped ahead (operators/plan.py): none_failed keeps the chain
    return ShiftTrafficOperator(task_id=step.task_id, percent=step.percent, trigger_rule="none_failed", **ctx.inputs)


@step_builder("gate")
def _gate(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    return MetricGateSensor(task_id=step.task_id, percent=step.percent, trigger_rule="none_failed",
                            slot_task_ids=ctx.slot_task_ids, **ctx.inputs)


@step_builder("retire_old_stable", "scale_down_old_colour")
def _retire_old_slot(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.traffic import RetireOldSlotOperator

    if step.kind == "retire_old_stable":  # after a promote (latticedb_control) the last canary gate skips: still retire
        return RetireOldSlotOperator(task_id=step.task_id, trigger_rule="none_failed", **ctx.inputs)
    return RetireOldSlotOperator(task_id=step.task_id, **ctx.inputs)


@step_builder("smoke_test_idle_colour")
def _smoke_test_idle_colour(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.blue_green import SmokeTestIdleColourOperator

    return SmokeTestIdleColourOperator(task_id=step.task_id, **ctx.inputs)


@step_builder("smoke_test_canary")
def _smoke_test_canary(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.slot_smoke import SmokeTestSlotOperator

    # runbook canary step 4: the canary slot, through the test listener
    return SmokeTestSlotOperator(task_id=step.task_id, slot_label="canary slot", **ctx.inputs)


@step_builder("approve_switch")
def _approve_switch(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.blue_green import SwitchApprovalOperator

    return SwitchApprovalOperator(task_id=step.task_id, baseline=ctx.baseline)


@step_builder("switch_traffic")
def _switch_traffic(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.traffic import ShiftTrafficOperator

    return ShiftTrafficOperator(task_id=step.task_id, percent=100, follow_plan=False, **ctx.inputs)


@step_builder("bake")
def _bake(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    return MetricGateSensor(task_id=step.task_id, percent=100, bake=True, **ctx.inputs)


@step_builder("restore_previous_revision")
def _restore_previous_revision(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.deploy import RestorePreviousRevisionOperator

    # one_failed: runs when any deploy or verify task fails, or record_baseline (then with no baseline: nothing to undo)
    return RestorePreviousRevisionOperator(
        task_id=step.task_id, mutation_task_ids=list(ctx.mutation_task_ids), gate_task_ids=list(ctx.gate_task_ids),
        trigger_rule="one_failed", baseline=ctx.baseline,
    )


@step_builder("shift_traffic_back")
def _shift_traffic_back(step: Step, ctx: StepContext) -> Any:
    from latticedb_deploy.operators.deploy import ShiftTrafficBackOperator

    return ShiftTrafficBackOperator(task_id=step.task_id, restore=_output_of("restore_previous_revision", step, ctx))


# The phases every strategy shares, one function each; build_deployment_dag wires them.


def _preflight(strategy: Strategy) -> tuple[Any, list[Any], Any]:
    from latticedb_deploy.operators.locks import AcquireEnvironmentOperator
    from latticedb_deploy.operators.preflight import PreflightCheckOperator, PreflightVerdictOperator

    with TaskGroup("preflight", tooltip="The runbook's pre-flight checks; nothing changes before the verdict"):
        hold = AcquireEnvironmentOperator(task_id="acquire_environment")  # one deployment per environment
        names = (*PREFLIGHT_CHECKS, *strategy.checks)
        checks = [PreflightCheckOperator(task_id=c, check=c, strategy=strategy.name, on_failure_callback=None) for c in names]
        verdict = PreflightVerdictOperator(
            task_id="verdict", check_task_ids=[f"preflight.{c}" for c in names], trigger_rule="all_done"
        )
        chain(checks, verdict)
    return hold, checks, verdict


def _chained_group(group_id: str, tooltip: str, tasks: Any) -> list[Any]:
    """A phase: a task group whose tasks (built inside it by `tasks()`) run one after another."""
    with TaskGroup(group_id, tooltip=tooltip):
        built = list(tasks())
        chain(*built)
    return built


def _prepare() -> list[Any]:
    """record_baseline -> register_task_definition; their `.output` are the run's inputs (StepContext)."""
    from latticedb_deploy.operators.deploy import RecordBaselineOperator, RegisterTaskDefinitionOperator

    def tasks() -> tuple[Any, Any]:
        record = RecordBaselineOperator(task_id="record_baseline")
        return record, RegisterTaskDefinitionOperator(task_id="register_task_definition", baseline=record.output)

    return _chained_group("prepare", "Record the last good state; register the new revision pinned by digest", tasks)


def _deploy(strategy: Strategy, inputs: StepContext) -> list[Any]:
    return _chained_group("deploy", strategy.summary, lambda: [build_step(s, inputs) for s in strategy.deploy])


def _verify(inputs: StepContext, incidents: Any) -> list[Any]:
    """smoke_tests -> post_deployment_checks (alarms already in ALARM at pre-flight, from `incidents`, are not new)."""
    from latticedb_deploy.operators.post_deployment import PostDeploymentChecksOperator
    from latticedb_deploy.operators.smoke import SmokeTestOperator

    return _chained_group("verify", "Smoke tests (JSON report), then post-deployment checks with a timeout", lambda: (
        SmokeTestOperator(task_id="smoke_tests", new_revision=inputs.new_revision),
        PostDeploymentChecksOperator(task_id="post_deployment_checks", preflight_incidents=incidents.output)))


def _cleanup(inputs: StepContext) -> list[Any]:
    from latticedb_deploy.operators.cleanup import CleanupImagesOperator, CleanupRevisionsOperator

    return _chained_group(
        "cleanup", "Deregister revisions beyond the newest N; delete ECR images beyond the newest M", lambda: (
            CleanupRevisionsOperator(task_id="deregister_old_revisions", **inputs.inputs),
            CleanupImagesOperator(task_id="delete_old_images", **inputs.inputs)))


def _finish(strategy: Strategy, inputs: StepContext, verdict: Any, post_deployment: Any) -> list[Any]:
    """record_deployment -> schedule_post_deployment_watch -> notify_success (best-effort, then the outcome)."""
    from latticedb_deploy.operators.outcome import DeploymentOutcomeOperator
    from latticedb_deploy.operators.record import RecordDeploymentOperator
    from latticedb_deploy.operators.watch import SchedulePostDeploymentWatchOperator

    record = RecordDeploymentOperator(task_id="record_deployment", strategy=strategy.name, preflight=verdict.output,
                                      post_deployment=post_deployment.output)
    return [
        record,
        # Runbook "monitor for 24 hours": trigger latticedb_post_deployment_watch (not waited for) where
        # the environment asks for it; skipped elsewhere, and a failure to schedule is only a warning.
        SchedulePostDeploymentWatchOperator(task_id="schedule_post_deployment_watch", retries=1,
                                            new_revision=inputs.new_revision),
        # The run's outcome: "succeeded" (with any cleanup/record warning), or, when an approval said
        # no and everything after it was skipped, "rejected: not deployed" (fails the run, pages nobody).
        DeploymentOutcomeOperator(
            task_id="notify_success", event="succeeded", title=f"{strategy.name} deployment succeeded",
            trigger_rule="none_failed", on_failure_callback=None, recorded=record.output,
        ),
    ]


def _rollback(strategy: Strategy, deploy: list[Any], inputs: StepContext) -> list[Any]:
    """The strategy's rollback steps, then notify_rollback (verifies, then notifies)."""
    from latticedb_deploy.operators.deploy import RollbackFinishedOperator
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    ctx = StepContext(
        strategy,
        baseline=inputs.baseline,  # the rollback's first step only: it hands the baseline on in its result
        mutation_task_ids=(deploy[0].task_id,),
        gate_task_ids=tuple(t.task_id for t in deploy if isinstance(t, MetricGateSensor)),
    )
    with TaskGroup("rollback", tooltip="Runs only when a deploy or verify task fails"):
        steps = [build_step(s, ctx) for s in strategy.rollback]
        restore, shift_back = ctx.built.get("restore_previous_revision"), ctx.built.get("shift_traffic_back")
        rollback = [*steps, RollbackFinishedOperator(
            task_id="notify_rollback", restore=restore.output if restore else None,
            shift_back=shift_back.output if shift_back else None)]
        chain(*rollback)
    return rollback


@contextmanager
def params_copied_once(dag: DAG) -> Iterator[None]:
    """Give each task built inside one copy of the DAG's params, not one per layer of its class.

    Airflow deep-copies the DAG's params into an operator at every `__init__` of its class hierarchy
    (`_get_parent_defaults`, three to four per operator here): 264 copies, 22 ms of the canary DAG's 45 ms
    of parse, paid by every task process (each parses its DAG file) and the dag-processor. The tasks are
    built while the DAG has no params, then each gets the one copy Airflow's merge would have left it
    (the DAG's params, source "dag", under the task's own). An approval (HITLOperator) keeps what it
    has: its params are its form's fields, and it drops the DAG's from them itself.
    """
    from airflow.sdk.definitions.param import ParamsDict

    params = dag.params
    dag.params = ParamsDict()
    try:
        yield
    finally:
        dag.params = params
    # Airflow's HITL module, only if a task imported it: a DAG without an approval does not pay its import.
    hitl = sys.modules.get("airflow.providers.standard.operators.hitl")
    for task in dag.tasks:
        if hitl is not None and isinstance(task, hitl.HITLOperator):
            continue
        merged = ParamsDict({name: _own_param(params.get_param(name)) for name in params})
        merged._fill_missing_param_source("dag")
        merged.update(task.params)
        task.params = merged


def _own_param(param: Param) -> Param:
    """A task's own Param: its own object and value (a run's values are resolved into them, in place),
    the schema shared (read only: validated against, serialized). Built without `Param.__init__`: its
    JSON check of the value passed when the DAG's Param was made, and a copy of that value stays JSON."""
    own = object.__new__(type(param))
    own.__dict__.update(param.__dict__)
    if isinstance(param.value, (dict, list)):  # a scalar is immutable: nothing to share
        own.value = copy.deepcopy(param.value)
    return own


def build_deployment_dag(
    strategy: Strategy,
    *,
    dag_id: str | None = None,
    schedule: Any = None,
    tags: list[str] | None = None,
    extra_params: dict[str, Param] | None = None,
) -> DAG:
    """The strategy's DAG: the shared phases around its deploy steps (see the module docstring).

    No DAG-level on_failure_callback (the operations DAGs have notify_dag_failure), on purpose:
    - a failed deployment is announced once already, by the failed task's notify_task_failure
      ("Deployment failed at <task>", ROLLBACK FAILED, LEASE LOST) and the rollback's own messages;
      the silent tasks are silent on purpose (a pre-flight check: its verdict posts; notify_success on a
      rejected approval: reported, not paged). A run-level "run failed" would page twice, and page a
      rejection as a failure.
    - Airflow 3.3 cannot build a DAG callback's context for these DAGs: DagRun.execute_dag_callbacks ->
      get_template_context -> process_params(suppress_exception=False) raises ParamValidationError for
      `image_uri` (required, no default) before any callback runs, and under dag.test() that exception
      fails the run loop itself (seen with a plain-function callback: tests/integration/test_canary.py::
      test_auto_rollback_off_leaves_traffic_as_it_is_and_says_so).
    """
    from latticedb_deploy.operators.deploy import NotifyOperator
    from latticedb_deploy.operators.locks import ReleaseEnvironmentOperator

    with DAG(
        dag_id=dag_id or f"latticedb_deploy_{strategy.name}",
        description=strategy.summary,
        doc_md=f"**{strategy.summary}**\n\nRunbook: `{strategy.runbook}`",
        schedule=schedule,
        start_date=None,
        catchup=False,
        # Production's hour-long canary must not queue staging's run of the same DAG: the lease allows one
        # deployment per environment and refuses a second at once, naming the run that holds it.
        max_active_runs=RUNS_ACROSS_ENVIRONMENTS,
        default_args=DEFAULT_ARGS,
        params=deployment_params(extra_params),
        tags=["latticedb", "deployment", strategy.name, *(tags or [])],
    ) as dag, params_copied_once(dag):
        notify_start = NotifyOperator(task_id="notify_start", event="started", title=f"{strategy.name} deployment started")
        hold, checks, verdict = _preflight(strategy)
        prepare = _prepare()
        inputs = StepContext(strategy, baseline=prepare[0].output, new_revision=prepare[1].output)
        deploy = _deploy(strategy, inputs)
        incidents = next(c for c in checks if c.task_id == "preflight.check_no_active_incidents")
        verify = _verify(inputs, incidents)
        cleanup = _cleanup(inputs)
        finish = _finish(strategy, inputs, verdict, verify[-1])  # record_deployment, ..._watch, notify_success
        rollback = _rollback(strategy, deploy, inputs)  # ..., notify_rollback
        release = ReleaseEnvironmentOperator(task_id="release_environment").as_teardown(setups=hold)

        chain(notify_start, hold, checks, verdict, *prepare, deploy[0])
        chain(deploy[-1], *verify, *cleanup, *finish)
        chain([*deploy, *verify], rollback[0])  # any deploy or verify task that fails starts the rollback
        chain([finish[-1], rollback[-1]], release)
    return dag
