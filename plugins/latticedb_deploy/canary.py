"""The canary plan of one run: its params over the environment's configured defaults."""

from __future__ import annotations

from typing import Any

from latticedb_deploy.config import Environment
from latticedb_deploy.plans import SLOT_PERCENTS, TrafficStep, build_plan


def _given(params: dict[str, Any], key: str) -> Any:
    value = params.get(key)
    return None if value in (None, "", []) else value


def plan_for(env: Environment, params: dict[str, Any]) -> list[TrafficStep]:
    """traffic_steps > (canary_percent, step_percent) > the environment's configured plan.

    Raises PlanError for a plan that does not end at 100, is not increasing, has a step out of
    range, or a step the DAG has no task for.
    """
    c = env.canary
    interval = _given(params, "interval_seconds")
    interval = c.interval_seconds if interval is None else int(interval)
    steps = _given(params, "traffic_steps")
    if steps is None and _given(params, "canary_percent") is None and _given(params, "step_percent") is None:
        steps = list(c.traffic_steps) if c.traffic_steps else None
    if steps is not None:
        return build_plan(traffic_steps=list(steps), interval_seconds=interval, allowed=SLOT_PERCENTS)
    return build_plan(
        canary_percent=int(_given(params, "canary_percent") or c.canary_percent),
        step_percent=int(_given(params, "step_percent") or c.step_percent),
        interval_seconds=interval,
        allowed=SLOT_PERCENTS,
    )
