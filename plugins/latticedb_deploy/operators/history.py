"""Write a run's history record (and its deployment-log entry) from a task's context.

Called by the tasks that know how a run ends: `record_deployment` (succeeded), the rollback
(`rolled_back`; `failed_before_change`; `aborted` when auto-rollback is off), `notify_success`
(`rejected`), the failure callback (`rollback_failed`; `aborted` when the run lost its lease), and
the emergency rollback's `verify`. A record is keyed by the run, so a later writer in the same run
replaces an earlier one. Writing it never fails the task that writes it: see `record_outcome`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from latticedb_deploy.history import EMERGENCY_ROLLBACK_DAG, DeploymentRecord, iso
from latticedb_deploy.redaction import redacted

log = logging.getLogger(__name__)

REGISTER_TASK_ID = "prepare.register_task_definition"
FAILURE_KEY = "failure"  # XCom the failure callback leaves on a failed task: {"task", "reason"}


def remember_failure(context: Any) -> None:
    """On a failed task (from its failure callback): why it failed, for the run's history record."""
    try:
        ti = context["ti"]
        reason = redacted(str(context.get("exception") or "unknown error"))
        ti.xcom_push(key=FAILURE_KEY, value={"task": ti.task_id, "reason": reason[:500]})
    except Exception as exc:  # noqa: BLE001 - a nicety: the record names the step without it too
        log.debug("failure reason not kept: %s", exc)


def first_failure(context: Any) -> tuple[str | None, str | None]:
    """(task id, reason) of the run's first failed task, outside the rollback, as far as can be told."""
    ti = context["ti"]
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    except Exception:  # noqa: BLE001
        return None, None
    failed = [t for t, s in states.items() if s == "failed" and not t.startswith("rollback.") and t != "notify_success"]
    dag = context.get("dag")
    order = {t: i for i, t in enumerate(getattr(dag, "task_ids", []) or [])}
    # The deployment's own steps first (what the log has always named), then pre-flight and prepare.
    failed.sort(key=lambda t: (t.split(".")[0] not in ("deploy", "verify"), order.get(t, len(order))))
    if not failed:
        return None, None
    reason = None
    try:
        found = ti.xcom_pull(task_ids=failed[0], key=FAILURE_KEY)
        reason = (found or {}).get("reason") if isinstance(found, dict) else None
    except Exception:  # noqa: BLE001
        pass
    return failed[0], reason


def build_record(context: Any, env: Any, outcome: str, **fields: Any) -> DeploymentRecord:
    """The record of this run as it ends now; `fields` override what the context tells."""
    from latticedb_deploy import notify
    from latticedb_deploy.operators.preflight import strategy_of, triggered_by

    ti = context["ti"]
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or ti.dag_id
    params = context.get("params") or {}
    new = {}
    if dag_id != EMERGENCY_ROLLBACK_DAG:
        try:
            new = ti.xcom_pull(task_ids=REGISTER_TASK_ID) or {}
        except Exception:  # noqa: BLE001
            new = {}
    now = datetime.now(UTC)
    started = getattr(context.get("dag_run"), "start_date", None) or now
    image = new.get("image") or params.get("image_uri") or None
    values: dict[str, Any] = {
        "environment": env.name,
        "dag_id": dag_id,
        "run_id": context["run_id"],
        "strategy": "emergency_rollback" if dag_id == EMERGENCY_ROLLBACK_DAG else strategy_of(context.get("task")),
        "started": iso(started),
        "finished": iso(now),
        "outcome": outcome,
        "image": image,
        "digest": new.get("digest"),
        "version": new.get("version") or (str(image).rsplit(":", 1)[-1] if image else None),
        "triggered_by": triggered_by(context),
        "run_link": notify.run_link(context),
        "image_pushed_at": new.get("pushed_at"),
    }
    if outcome != "succeeded" and "failed_step" not in fields:
        step, reason = first_failure(context)
        values["failed_step"] = step
        values.setdefault("reason", reason)
    values.update({k: v for k, v in fields.items() if v is not None or k not in values})
    return DeploymentRecord(**values)


def write_history(env: Any, record: DeploymentRecord) -> None:
    """Put the record in the environment's history table (raises what DynamoDB raises)."""
    from latticedb_deploy.aws.history import HistoryStore

    HistoryStore(env).put(record)


def append_log(env: Any, record: DeploymentRecord) -> str:
    from latticedb_deploy.deployment_log import append_entry, resolve_log_path

    return append_entry(resolve_log_path(env.deployment_log), record.to_log_entry())


def record_outcome(
    env: Any, context: Any, outcome: str, *, write_log: bool = True, logger: Any = None, **fields: Any
) -> DeploymentRecord | None:
    """Build the record, put it in the history table and append its deployment-log entry.

    Never raises: a run that is failing, rolling back or was rejected must not fail again (or
    differently) because the history could not be written; each part that fails is a warning in
    the task's log.
    """
    logger = logger or log
    try:
        record = build_record(context, env, outcome, **fields)
    except Exception as exc:  # noqa: BLE001
        logger.warning("history record not built (%s): %s", outcome, exc)
        return None
    try:
        write_history(env, record)
        logger.info("History: %s %s -> %s", record.owner, outcome, env.history_table)
    except Exception as exc:  # noqa: BLE001
        logger.warning("history record not written to %s: %s", env.history_table, exc)
    if write_log:
        try:
            logger.info("Deployment log:\n%s", append_log(env, record))
        except Exception as exc:  # noqa: BLE001
            logger.warning("deployment log entry not written: %s", exc)
    return record
