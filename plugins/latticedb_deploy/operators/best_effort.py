"""The steps after verify passed (cleanup, record, the watch): their failure is a warning, not a failure."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DagRunTriggerException

from latticedb_deploy.operators.base import ran_before

RECORD_TASK_ID = "record_deployment"
WATCH_TASK_ID = "schedule_post_deployment_watch"
# After verify passed the deployment is done: these steps only warn (see BestEffortMixin).
BEST_EFFORT_TASK_IDS = ("cleanup.deregister_old_revisions", "cleanup.delete_old_images", RECORD_TASK_ID, WATCH_TASK_ID)


class BestEffortMixin:
    """A step after verify passed: its failure is a warning on a succeeded deployment, never a failure.

    The step's own errors still get the task's retries (a throttled or briefly unreachable AWS
    converges); on the last try, or at once for an error that retrying cannot fix
    (AirflowFailException), the task logs the error, posts a Slack warning naming the task and
    the reason, returns {"warning": true, "task", "reason", "attempts"} and succeeds. The run
    then succeeds too and notify_success lists the warning. Subclasses implement `run`.
    """

    def run(self, context: Any) -> Any:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        try:
            return self.run(context)
        except (AirflowSkipException, DagRunTriggerException):  # a skip; a trigger handed to the task runner
            raise
        except Exception as exc:
            ti = context["ti"]
            tries_left = int(getattr(ti, "max_tries", 0) or 0) - int(getattr(ti, "try_number", 1) or 1) + 1
            if not isinstance(exc, AirflowFailException) and tries_left > 0:
                raise  # retried by Airflow
            reason = f"{type(exc).__name__}: {exc}"[:1000]
            attempts = int(getattr(ti, "try_number", 1) or 1)
            self.log.warning(
                "%s failed after %d attempt(s); the deployment itself succeeded, so this is a warning: %s",
                ti.task_id, attempts, reason, exc_info=True,
            )
            self.send(  # type: ignore[attr-defined]
                context, "warning", f"Warning: {ti.task_id} failed; the deployment succeeded",
                {"Task": ti.task_id, "Reason": reason, "Attempts": attempts,
                 "Deployment": "succeeded and verified; this step is best-effort"},
            )
            return {"warning": True, "task": ti.task_id, "reason": reason, "attempts": attempts}


def best_effort_warnings(ti: Any, known: dict[str, Any] | None = None) -> list[dict]:
    """The warnings the best-effort steps before this task returned (empty when all went well). `known`:
    results the caller already holds (an argument fed by that task's .output), by task id, not read again."""
    known = known or {}
    found = []
    for task_id in ran_before(ti, BEST_EFFORT_TASK_IDS):
        value = known[task_id] if task_id in known else ti.xcom_pull(task_ids=task_id)
        if isinstance(value, dict) and value.get("warning"):
            found.append(value)
    return found
