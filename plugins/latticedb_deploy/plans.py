"""Canary traffic plans: the list of traffic percentages a canary walks through.

Built from the runbook's `-c/-s/-t` knobs or an explicit list (Argo Rollouts' `steps`),
and refused up front, so a bad plan fails the run before any traffic moves.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from latticedb_deploy.models import frozen_model


class PlanError(ValueError):
    """A traffic plan that cannot be run; the message names the value and why."""


@frozen_model
class TrafficStep:
    """Send `percent` of traffic to the canary, then watch it for `interval_seconds`."""

    percent: int
    interval_seconds: int

    def to_dict(self) -> dict:
        return {"percent": self.percent, "interval_seconds": self.interval_seconds}


# The canary DAG is static: it has one shift/gate task pair per slot and skips unused ones.
SLOT_PERCENTS: tuple[int, ...] = tuple(range(5, 101, 5))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _percent(name: str, value: object) -> int:
    if not _is_int(value):
        raise PlanError(f"{name} must be a whole number of percent, got {value!r}")
    if not 1 <= value <= 100:
        raise PlanError(f"{name} must be between 1 and 100, got {value}")
    return value


def _describe_allowed(allowed: Collection[int]) -> str:
    values = sorted(allowed)
    listed = ", ".join(str(v) for v in values)
    step = values[0] if values else 0
    if step and values == list(range(step, 101, step)):
        return f"the canary DAG has traffic steps at multiples of {step} ({listed})"
    return f"allowed traffic steps are {listed}"


def build_plan(
    *,
    canary_percent: int = 10,
    step_percent: int = 10,
    interval_seconds: int = 300,
    traffic_steps: Sequence[int] | None = None,
    allowed: Collection[int] | None = None,
) -> list[TrafficStep]:
    """Steps from an explicit `traffic_steps`, else canary_percent + k * step_percent, ending at 100."""
    if not _is_int(interval_seconds) or interval_seconds < 0:
        raise PlanError(f"interval_seconds must be a whole number of seconds, zero or more, got {interval_seconds!r}")
    if traffic_steps is not None:
        if isinstance(traffic_steps, (str, bytes)) or not isinstance(traffic_steps, Sequence):
            raise PlanError(f"traffic_steps must be a list of percentages, got {traffic_steps!r}")
        percents = [_percent(f"traffic step {i + 1}", p) for i, p in enumerate(traffic_steps)]
    else:
        start = _percent("canary_percent", canary_percent)
        step = _percent("step_percent", step_percent)
        percents = list(range(start, 100, step)) + [100]
    if not percents:
        raise PlanError("traffic_steps is empty: a canary needs at least one step, ending at 100")
    for prev, cur in zip(percents, percents[1:], strict=False):
        if cur <= prev:
            raise PlanError(f"traffic steps must strictly increase, got {cur} after {prev} in {percents}")
    if percents[-1] != 100:
        raise PlanError(f"the last traffic step must be 100 (full promotion), got {percents[-1]} in {percents}")
    if allowed is not None:
        for p in percents:
            if p not in allowed:
                raise PlanError(f"traffic step {p}% is not allowed: {_describe_allowed(allowed)}")
    return [TrafficStep(p, interval_seconds) for p in percents]
