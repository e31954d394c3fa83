"""A canary's traffic slots outside the run's plan, skipped without a worker starting each one.

The canary DAG has one shift/gate pair per multiple of 5 % (a graph is fixed at parse time), chained
in order with `none_failed`. A slot marked skipped early would let the next step of the plan start at
once, out of order; so the unused slots are skipped block by block, each block when the step before it
is done: `deploy.plan_traffic_steps` skips the ones before the plan's first step, and each gate that
passes skips the ones between its step and the next. The rest of the run's graph, the plan, is what
runs. A slot task that runs anyway (say after a clear) still skips itself.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.skipmixin import SkipMixin

from latticedb_deploy.operators.base import LatticeDBOperator


def unused_slots(slot_task_ids: dict[int, list[str]], plan: list[int], after: int | None) -> list[str]:
    """The slot tasks after percent `after` (None: from the start) up to the plan's next step."""
    lower = -1 if after is None else after
    upper = min((p for p in plan if p > lower), default=101)
    return [t for p, ids in sorted(slot_task_ids.items()) if lower < p < upper for t in ids]


def skip_unused_slots(operator: Any, context: Any, plan: list[int], after: int | None, result: Any) -> Any:
    """Mark the unused slots up to the next step skipped, in one call (SkipMixin), and log them.
    Skipping ends the task, so `result` (the task's return value) is pushed to XCom first."""
    unused = unused_slots(operator.slot_task_ids or {}, plan, after)
    if unused:
        operator.log.info("not in this run's plan %s, skipped: %s", plan, ", ".join(unused))
        context["ti"].xcom_push(key="return_value", value=result)
        operator.skip(context["ti"], [operator.dag.get_task(t) for t in unused])
    return result


class PlanTrafficStepsOperator(LatticeDBOperator, SkipMixin):
    """deploy.plan_traffic_steps: the run's traffic plan in the log and XCom; the slots before its first step skipped."""

    def __init__(self, *, slot_task_ids: dict[int, list[str]], **kwargs: Any):
        super().__init__(**kwargs)
        self.slot_task_ids = slot_task_ids  # percent -> the tasks of that slot (its shift and its gate)

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.canary import plan_for

        plan = plan_for(self.env, context["params"])
        percents = [s.percent for s in plan]
        result = {"plan": [s.to_dict() for s in plan]}
        self.log.info("Plan: %s, %ss per step", " -> ".join(f"{p}%" for p in percents), plan[0].interval_seconds)
        return skip_unused_slots(self, context, percents, None, result)
