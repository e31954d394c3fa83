"""record_deployment: the run's history record and the runbook's deployment-log entry."""

from __future__ import annotations

from typing import Any

from latticedb_deploy.deployment_log import render_entry
from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.best_effort import BestEffortMixin, best_effort_warnings
from latticedb_deploy.operators.outcome import APPROVAL_TASK_ID, OUTCOME_KEY, has_task
from latticedb_deploy.operators.preflight import strategy_of


class RecordDeploymentOperator(BestEffortMixin, LatticeDBOperator):
    """The run's history record (`succeeded`) and the runbook's deployment-log entry rendered from it.

    Best-effort like cleanup: a retry after the log was written does not append it twice, and a
    history table that stays unwritable ends as a warning on a succeeded deployment. Its issues come
    from `preflight` (preflight.verdict's results: overrides, warnings) and `post_deployment`
    (verify.post_deployment_checks's report: warnings), given as arguments."""

    template_fields = (*LatticeDBOperator.template_fields, "preflight", "post_deployment")

    def __init__(self, *, strategy: str | None = None, preflight: Any = None, post_deployment: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.strategy = strategy
        self.preflight = preflight
        self.post_deployment = post_deployment

    def run(self, context: Any) -> dict:
        from latticedb_deploy.deployment_log import inline, resolve_log_path
        from latticedb_deploy.operators.history import append_log, build_record, write_history

        ti = context["ti"]
        issues: list[str] = []
        for result in self.preflight or []:
            data = result.get("data") or {}
            if data.get("override_reason"):
                issues.append(f"deployment window overridden by {data.get('override_by')}: {data['override_reason']}")
            elif result.get("status") == "warn":
                issues.append(f"pre-flight warning: {result['check']}: {result['reason']}")
        post = self.post_deployment or {}
        issues.extend(f"post-deployment: {w}" for w in post.get("warnings") or [])
        issues.extend(f"{w['task']} failed (warning): {w['reason']}" for w in best_effort_warnings(ti))
        approval = ti.xcom_pull(task_ids=APPROVAL_TASK_ID, key=OUTCOME_KEY) if has_task(context, APPROVAL_TASK_ID) else None
        approved_by = (approval.get("by") or "unknown") if approval and approval.get("outcome") == "approved" else None
        record = build_record(
            context, self.env, "succeeded", strategy=strategy_of(self, self.strategy), issues=issues, approved_by=approved_by,
        )
        path = resolve_log_path(self.env.deployment_log)
        marker = f"- **Run**: {inline(record.run_id)}\n"
        try:
            done = path.exists() and marker in path.read_text(encoding="utf-8")
            text = None if done else append_log(self.env, record)
        except OSError as exc:
            raise OSError(f"cannot append to the deployment log {path}: {exc}") from exc
        if text:
            self.log.info("Appended to %s:\n%s", path, text)
        else:
            self.log.info("%s already has this run's entry (a retry): not appended again", path)
        try:
            write_history(self.env, record)
        except Exception as exc:
            raise RuntimeError(f"cannot write the history record to {self.env.history_table}: {exc}") from exc
        self.log.info("History: %s succeeded -> %s", record.owner, self.env.history_table)
        return {"path": str(path), "entry": text or render_entry(record.to_log_entry()), "history": record.key}
