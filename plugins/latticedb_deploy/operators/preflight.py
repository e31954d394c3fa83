"""Pre-flight: one task per runbook check, then a verdict that prints the ✓/⚠/✗ list.

`strict` (the run's param unless given to the operator; empty means the environment's
`strict_preflight`, latticedb_deploy.params) turns warnings
into failures, in the check's own task as well as in the verdict, so the graph shows which
check stopped a strict run. Checks only read: nothing is mutated before the verdict passes.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.config import STRATEGY_NAMES
from latticedb_deploy.operators.base import LatticeDBOperator

KNOWN_STRATEGIES = STRATEGY_NAMES


def strategy_of(task: Any, given: str | None = None) -> str:
    """The strategy a deployment DAG runs: given by the factory, else the DAG's strategy tag."""
    if given:
        return given
    tags = getattr(getattr(task, "dag", None), "tags", None) or ()
    return next((t for t in tags if t in KNOWN_STRATEGIES), "rolling")


def triggered_by(context: Any) -> str:
    """The Airflow user who triggered the run, or "schedule" for a scheduled run."""
    dag_run = context.get("dag_run")
    run_type = str(getattr(dag_run, "run_type", "") or "").lower()
    if "scheduled" in run_type:
        return "schedule"
    return getattr(dag_run, "triggering_user_name", None) or "unknown"


class _StrictMixin:
    env: Any
    strict: Any

    def strict_enabled(self, context: Any) -> bool:
        """`strict` given to the operator, else the run's param, else the environment's `strict_preflight`."""
        from latticedb_deploy.params import flag

        return flag(self.strict, context, "strict", self.env.strict_preflight)


class PreflightCheckOperator(_StrictMixin, LatticeDBOperator):
    """Run one named check; fail the task (red in the graph) when the check fails."""

    ui_color = "#e8f0fe"
    template_fields = (*LatticeDBOperator.template_fields, "strict")

    def __init__(self, *, check: str, strategy: str | None = None, strict: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check
        self.strategy = strategy
        self.strict = strict

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.checks import CHECKS
        from latticedb_deploy.preflight import FAIL, CheckResult, strictly

        params = {**dict(context["params"]), "strategy": strategy_of(self, self.strategy), "triggered_by": triggered_by(context)}
        try:
            result = strictly(CHECKS[self.check](self.env, self.image_uri, params), self.strict_enabled(context))
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check
            result = CheckResult(self.check, FAIL, f"check could not run: {type(exc).__name__}: {exc}")
        self.log.info("%s", result.line)
        if result.status == FAIL:
            context["ti"].xcom_push(key="return_value", value=result.to_dict())
            raise AirflowFailException(result.line)
        return result.to_dict()


class PreflightVerdictOperator(_StrictMixin, LatticeDBOperator):
    """Collect every check's result, print the runbook-style list, stop the run on any failure."""

    template_fields = (*LatticeDBOperator.template_fields, "strict")

    def __init__(self, *, check_task_ids: list[str], strict: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.check_task_ids = check_task_ids
        self.strict = strict

    def execute(self, context: Any) -> list[dict]:
        from latticedb_deploy.preflight import FAIL, CheckResult, verdict

        ti = context["ti"]
        results = []
        for task_id in self.check_task_ids:
            raw = ti.xcom_pull(task_ids=task_id)
            name = task_id.split(".")[-1]
            results.append(CheckResult(**raw) if raw else CheckResult(name, FAIL, "check did not report a result"))
        strict = self.strict_enabled(context)
        ok, lines = verdict(results, strict=strict)
        report = "\n".join(["Pre-flight checks" + (" (strict)" if strict else "") + ":", *lines])
        self.log.info("%s", report)
        if not ok:
            raise AirflowFailException("pre-flight failed:\n" + "\n".join(lines))
        return [r.to_dict() for r in results]
