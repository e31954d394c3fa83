"""Deployment strategies as data: the steps of the deploy phase and of its rollback.

Like an Argo Rollouts spec, a strategy is a list of steps; the factory turns each step
into a task. Adding a strategy means writing a list, not a new DAG.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One deploy-phase step. `kind` picks the operator; `percent` is for traffic steps."""

    kind: str
    percent: int | None = None

    @property
    def task_id(self) -> str:
        if self.percent is not None:
            return f"{self.kind}_to_{self.percent}pct" if self.kind == "shift_traffic" else f"{self.kind}_{self.percent}pct"
        return self.kind


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    deploy: tuple[Step, ...]
    rollback: tuple[Step, ...]
    runbook: str = ""


ROLLING = Strategy(
    name="rolling",
    summary="Rolling update of the live ECS service with the deployment circuit breaker on.",
    deploy=(Step("update_service"), Step("wait_for_rollout")),
    rollback=(Step("restore_previous_revision"), Step("wait_for_previous_revision")),
    runbook="manage-service.sh update -i $IMAGE_URI -e <env>",
)
