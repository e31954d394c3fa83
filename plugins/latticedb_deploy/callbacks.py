"""Failure callbacks: tell stakeholders which task failed, why, with a link to the run.

Plain functions (not notifier objects) so they also work under `dag.test()` (apache/airflow#64649).
Both never raise: a callback must not mask the original failure.
"""

from __future__ import annotations

import logging
from typing import Any

from latticedb_deploy.redaction import redacted

log = logging.getLogger(__name__)


def _muted(params: Any) -> bool:
    """notify=false for the run (latticedb_deploy.params); a value that is not a boolean mutes nothing."""
    from latticedb_deploy.params import ParamError, notify_enabled

    try:
        return not notify_enabled(None, {"params": params})
    except ParamError:
        return False


def _environment(context: Any) -> Any:
    """The run's environment param; DAGs that span environments use their configured one.

    Read from the run's config snapshot when the failed task had one (latticedb_deploy.run_config):
    a rollback that failed is reported even if someone broke the config file mid-run.
    """
    from latticedb_deploy import run_config

    config = run_config.config(getattr(context.get("task"), "config_snapshot", None))
    name = (context.get("params") or {}).get("environment")
    if not name:
        ti = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "")
        stages = config.progressive_delivery.stages
        name = stages[-1].environment if dag_id == "latticedb_progressive_delivery" else config.nightly.environment
    return config.environment(name)


def notify_task_failure(context: Any) -> None:
    """Task-level on_failure_callback.

    Three kinds of failure, three messages:
    - a rollback task failed (the deployment DAGs' `rollback.*`, the emergency rollback's changes):
      an incident, "ROLLBACK FAILED: manual action needed", with the live listener weights and each
      slot's revision and running count; posted even with notify=false. The run's release_environment
      keeps the environment locked until a person clears it.
    - the run lost its environment lease (LEASE LOST: pre-empted by an emergency rollback, or expired
      and taken): it stopped without changing anything more, and the message says who holds it and why.
    - a failure the run's summary message tells (ReportedFailure): no message of its own.
    - anything else: "Deployment failed at <task>".
    """
    from latticedb_deploy import notify
    from latticedb_deploy.incidents import INCIDENT_TITLE, is_rollback_task, live_state

    try:
        params = context.get("params") or {}
        ti = context["ti"]
        exception = context.get("exception")
        reason = redacted(str(exception or "unknown error"))  # goes to Slack and the history, not only the log
        lease_lost = _is_lease_lost(exception)
        incident = is_rollback_task(ti.dag_id, ti.task_id) and not lease_lost
        _record(context, ti, reason, incident=incident, lease_lost=lease_lost)
        if (_muted(params) or _reported(exception)) and not incident:
            return
        env = _environment(context)
        fields: dict[str, object] = {
            "Environment": env.name,
            "Image": params.get("image_uri"),
            "Failed task": ti.task_id,
            "Reason": reason[:1500],
            "Run": context.get("run_id"),
        }
        deployment = ti.dag_id.startswith("latticedb_deploy_")
        link = notify.run_link(context) or getattr(ti, "log_url", None)
        if incident:
            fields.update(live_state(env))
            fields["Environment lock"] = (
                "kept: nothing deploys to this environment until a person checks production and clears it "
                "(trigger latticedb_unlock, or latticedb_rollback; README: After a failed rollback)"
            )
            notify.send(env, "rollback_failed", f"{INCIDENT_TITLE} in {env.name} ({ti.dag_id}, {ti.task_id})", fields, link)
            return
        if lease_lost:
            title = (
                f"Deployment stopped at {ti.task_id}: it no longer holds {env.name}" if deployment
                else f"{ti.dag_id} stopped at {ti.task_id}: it no longer holds {env.name}"
            )
            notify.send(env, "failed", title, {**fields, "Traffic": "not touched by this run after it lost the lease"}, link)
            return
        notify.send(
            env, "failed", f"Deployment failed at {ti.task_id}" if deployment else f"{ti.dag_id} failed at {ti.task_id}",
            fields, link,
        )
    except Exception as exc:  # noqa: BLE001 - a callback must never mask the original failure
        log.warning("failure notification not sent: %s", exc)


def _record(context: Any, ti: Any, reason: str, *, incident: bool, lease_lost: bool) -> None:
    """The history's view of this failure (before any muting: the record is not a notification).

    Every failed task leaves its reason for the run's record. Three failures also end the run's
    record here, since no later task will: a failed rollback (`rollback_failed`), a deployment that
    lost its lease (`aborted`: stopped where it was), an emergency rollback that failed before it
    changed anything (`failed_before_change`)."""
    from latticedb_deploy.incidents import EMERGENCY_DAG_ID
    from latticedb_deploy.operators.history import record_outcome, remember_failure

    remember_failure(context)
    if incident:
        outcome = "rollback_failed"
    elif lease_lost and ti.dag_id.startswith("latticedb_deploy_"):
        outcome = "aborted"
    elif ti.dag_id == EMERGENCY_DAG_ID:
        outcome = "failed_before_change"
    else:
        return
    if outcome != "aborted" and not (ti.dag_id.startswith("latticedb_deploy_") or ti.dag_id == EMERGENCY_DAG_ID):
        return
    try:
        env = _environment(context)
    except Exception as exc:  # noqa: BLE001
        log.warning("history record not written: %s", exc)
        return
    record_outcome(env, context, outcome, logger=log, failed_step=ti.task_id, reason=reason[:500])


def _is_lease_lost(exception: Any) -> bool:
    from latticedb_deploy.operators.base import LeaseLost

    return isinstance(exception, LeaseLost) or str(exception or "").startswith("LEASE LOST")


def _reported(exception: Any) -> bool:
    from latticedb_deploy.operators.base import ReportedFailure

    return isinstance(exception, ReportedFailure)


def notify_dag_failure(context: Any, told_by: str | None = None) -> None:
    """DAG-level on_failure_callback: the run as a whole failed (names the failed tasks if it can).

    `told_by`: the DAG's summary task, whose own message tells how the run ended. When it is the task
    that failed last (Airflow's `ti` for this callback), it has sent that message, or its own failure
    message if it broke or Slack did not take its message: this one would say it a second time. A run
    whose failure Airflow pins on another task is still told here. (No nightly has a dagrun_timeout:
    with one, Airflow would name the task running at the timeout, the summary perhaps, and nothing
    would be told.)"""
    from latticedb_deploy import notify

    try:
        params = context.get("params") or {}
        if _muted(params):
            return
        if told_by and getattr(context.get("ti"), "task_id", None) == told_by:
            log.info("run failure already told by %s's message", told_by)
            return
        env = _environment(context)
        dag_run = context.get("dag_run")
        failed: list[str] = []
        try:
            failed = [ti.task_id for ti in dag_run.get_task_instances(state=["failed"])]
        except Exception:  # noqa: BLE001 - the names are a nicety
            pass
        dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        notify.send(
            env,
            "failed",
            f"{dag_id} run failed",
            {
                "Environment": env.name,
                "Image": params.get("image_uri"),
                "Failed tasks": ", ".join(failed),
                "Reason": str(context.get("reason") or context.get("exception") or "")[:1500],
                "Run": context.get("run_id") or getattr(dag_run, "run_id", None),
            },
            notify.run_link(context),
        )
    except Exception as exc:  # noqa: BLE001
        log.warning("DAG failure notification not sent: %s", exc)
