"""Deployment strategies as data: the steps of the deploy phase and of its rollback.

Like an Argo Rollouts spec, a strategy is a list of steps; the factory turns each step
into a task. Adding a strategy means writing a list, not a new DAG.
"""

from __future__ import annotations

from latticedb_deploy.models import frozen_model
from latticedb_deploy.plans import SLOT_PERCENTS


@frozen_model
class Step:
    """One deploy-phase step. `kind` picks the operator; `percent` is for traffic steps."""

    kind: str
    percent: int | None = None

    @property
    def task_id(self) -> str:
        if self.percent is not None:
            return f"{self.kind}_to_{self.percent}pct" if self.kind == "shift_traffic" else f"{self.kind}_{self.percent}pct"
        return self.kind


@frozen_model
class Strategy:
    name: str
    summary: str
    deploy: tuple[Step, ...]
    rollback: tuple[Step, ...]
    runbook: str = ""
    checks: tuple[str, ...] = ()  # pre-flight checks beyond the common ones


# Every strategy rolls back the same way: the last good slot back to its revision and size, wait until
# its tasks run, then (once its targets are healthy) all traffic to it in one call, the other slot to 0.
ROLLBACK = (Step("restore_previous_revision"), Step("wait_for_previous_revision"), Step("shift_traffic_back"))


ROLLING = Strategy(
    name="rolling",
    summary="Rolling update of the live ECS service with the deployment circuit breaker on.",
    deploy=(Step("update_service"), Step("wait_for_rollout")),
    rollback=ROLLBACK,
    runbook="manage-service.sh update -i $IMAGE_URI -e <env>",
)


CANARY = Strategy(
    name="canary",
    summary="Canary: the new revision on the idle slot, traffic shifted in metric-gated steps, automatic rollback.",
    deploy=(
        Step("deploy_canary_service"),
        Step("wait_for_canary_stable"),
        # Runbook canary step 4: smoke tests of the canary slot through the test listener, at the
        # initial percentage's threshold of trust (0 % of production): a failure ends the run with
        # no production traffic ever shifted.
        Step("smoke_test_canary"),
        # One shift/gate pair per possible step: Airflow's graph is fixed at parse time, so the slots
        # that are not in a run's plan are skipped ahead, block by block (operators/plan.py): the
        # plan step skips the ones before the first step, each passing gate the ones up to the next.
        Step("plan_traffic_steps"),
        *(step for p in SLOT_PERCENTS for step in (Step("shift_traffic", p), Step("gate", p))),
        Step("retire_old_stable"),
    ),
    rollback=ROLLBACK,
    runbook="canary-deploy.sh -e <env> -i $IMAGE_URI -c 10 -s 10 -t 300",
    checks=("check_traffic_plan",),
)


BLUE_GREEN = Strategy(
    name="blue_green",
    summary="Blue/green: the new revision on the idle colour, smoke-tested, approved, switched in one call, baked.",
    deploy=(
        Step("deploy_idle_colour"),
        Step("wait_for_idle_colour_stable"),
        Step("smoke_test_idle_colour"),
        Step("approve_switch"),
        Step("switch_traffic"),
        Step("bake"),
        Step("scale_down_old_colour"),
    ),
    rollback=ROLLBACK,
    runbook="blue-green-deploy.sh -e <env> -i $IMAGE_URI",
)
