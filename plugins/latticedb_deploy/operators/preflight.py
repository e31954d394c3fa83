"""Pre-flight: one task per runbook check, then a verdict that prints the ✓/⚠/✗ list."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator


class PreflightCheckOperator(LatticeDBOperator):
    """Run one named check; fail the task (red in the graph) when the check fails."""

    ui_color = "#e8f0fe"

    def __init__(self, *, check: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.checks import CHECKS
        from latticedb_deploy.preflight import FAIL, CheckResult

        try:
            result = CHECKS[self.check](self.env, self.image_uri, dict(context["params"]))
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check
            result = CheckResult(self.check, FAIL, f"check could not run: {type(exc).__name__}: {exc}")
        self.log.info("%s", result.line)
        if result.status == FAIL:
            context["ti"].xcom_push(key="return_value", value=result.to_dict())
            raise AirflowFailException(result.line)
        return result.to_dict()


class PreflightVerdictOperator(LatticeDBOperator):
    """Collect every check's result, print the runbook-style list, stop the run on any failure."""

    def __init__(self, *, check_task_ids: list[str], strict: Any = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.check_task_ids = check_task_ids
        self.strict = strict

    template_fields = (*LatticeDBOperator.template_fields, "strict")

    def execute(self, context: Any) -> list[dict]:
        from latticedb_deploy.preflight import FAIL, CheckResult, verdict

        ti = context["ti"]
        results = []
        for task_id in self.check_task_ids:
            raw = ti.xcom_pull(task_ids=task_id)
            name = task_id.split(".")[-1]
            results.append(CheckResult(**raw) if raw else CheckResult(name, FAIL, "check did not report a result"))
        strict = str(self.strict).lower() in ("true", "1", "yes")
        ok, lines = verdict(results, strict=strict)
        report = "\n".join(["Pre-flight checks" + (" (strict)" if strict else "") + ":", *lines])
        self.log.info("%s", report)
        if not ok:
            raise AirflowFailException("pre-flight failed:\n" + "\n".join(lines))
        return [r.to_dict() for r in results]
