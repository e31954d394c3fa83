"""Approvals of a deployment (the blue/green switch, a progressive-delivery stage): who may give them.

Four eyes (`approval.four_eyes`, on for production by default; the runbook's "2 engineers
minimum"): the person who triggered the run cannot approve it. Airflow's HITL API records any
answer from a user allowed to edit the DAG, so the check happens here, when the task resumes:
an approval by the run's triggering user (dag_run.triggering_user_name, which runs triggered by
another DAG inherit) is refused: the task logs and posts why, re-opens the same request (the
answer is cleared, the deadline is unchanged) and waits again. Nothing else changes. A rejection
is accepted from anyone: stopping a deployment needs no second pair of eyes.

Every answer is recorded in XCom `outcome` of the approval task: {"approved", "outcome"
("approved", "rejected", "timed_out", "not_required"), "by", "by_id", "triggered_by", "reason"};
refused self-approvals in XCom `refused`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import DownstreamTasksSkipped, TaskAwaitingInput

OUTCOME_KEY = "outcome"
REQUESTED_KEY = "requested_at"
REFUSED_KEY = "refused"


def triggering_user(context: Any) -> str | None:
    """Who triggered the run (None for a scheduled run or when Airflow does not know)."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) or None


def same_person(responder: dict | None, triggered_by: str | None) -> bool:
    """Whether the HITL responder ({"id", "name"}) is the run's triggering user (compared by id and name)."""
    if not responder or not triggered_by:
        return False
    who = triggered_by.strip().casefold()
    return who in {str(responder.get(k) or "").strip().casefold() for k in ("id", "name")} - {""}


def responder_name(responder: dict | None) -> str | None:
    if not responder:
        return None
    return responder.get("name") or responder.get("id")


class DeploymentApprovalOperator(ApprovalOperator):
    """An ApprovalOperator for a deployment into `environment`: four eyes, and the answer recorded.

    Timeout (`blue_green.approval_timeout_seconds`) means reject. Subclasses call `ask()` from
    `execute` and may override `on_approved` / `on_rejected`.
    """

    template_fields = (*ApprovalOperator.template_fields, "environment")

    def __init__(self, *, environment: str = "{{ params.environment }}", **kwargs: Any):
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)  # timeout means: do not deploy
        super().__init__(**kwargs)
        self.environment = environment

    config_snapshot: dict | None = None

    def pre_execute(self, context: Any) -> None:
        """Read the run's config as it was when the run started (latticedb_deploy.run_config)."""
        from latticedb_deploy import run_config

        super().pre_execute(context)
        self.config_snapshot = run_config.for_task(self, context)

    def _env(self) -> Any:
        from latticedb_deploy import run_config

        return run_config.environment(self.environment, self.config_snapshot)

    def _notify(self, context: Any, env: Any, event: str, title: str, fields: dict[str, object]) -> None:
        from latticedb_deploy import notify
        from latticedb_deploy.params import notify_enabled

        if not notify_enabled(None, context):
            return
        notify.send(
            env, event, title,
            {"Environment": env.name, "Image": context["params"].get("image_uri"), **fields, "Run": context["run_id"]},
            notify.run_link(context),
        )

    def ask(self, context: Any, env: Any) -> Any:
        """Open the request in the Airflow UI and wait (the task parks in `awaiting_input`)."""
        self.response_timeout = timedelta(seconds=env.blue_green.approval_timeout_seconds)
        context["ti"].xcom_push(key=REQUESTED_KEY, value=datetime.now(UTC).isoformat())
        if env.four_eyes:
            who = triggering_user(context) or "the person who triggered this run"
            self.body = (self.body or "") + (
                f"\n\n**Four eyes** ({env.name}): {who} triggered this run and cannot approve it; another engineer must."
            )
        return super().execute(context)

    def execute(self, context: Any) -> Any:
        return self.ask(context, self._env())

    def _remaining(self, context: Any, env: Any) -> timedelta:
        requested = context["ti"].xcom_pull(task_ids=self.task_id, key=REQUESTED_KEY)
        total = timedelta(seconds=env.blue_green.approval_timeout_seconds)
        if not requested:
            return total
        left = total - (datetime.now(UTC) - datetime.fromisoformat(requested))
        return max(left, timedelta(seconds=1))  # past the deadline: the scheduler applies the default (reject)

    def _refuse(self, context: Any, env: Any, responder: dict, triggered_by: str) -> None:
        """Four eyes: the run's trigger approved their own deployment. Say why, re-open, wait again."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        ti = context["ti"]
        who = responder_name(responder)
        reason = (
            f"approval by {who} refused: {triggered_by} triggered this run, and {env.name} requires four eyes "
            "(approval.four_eyes): another engineer must approve"
        )
        self.log.warning("%s. The request stays open; nothing was changed.", reason)
        refused = list(ti.xcom_pull(task_ids=self.task_id, key=REFUSED_KEY) or [])
        refused.append({"by": who, "by_id": responder.get("id"), "at": datetime.now(UTC).isoformat(), "reason": reason})
        ti.xcom_push(key=REFUSED_KEY, value=refused)
        remaining = self._remaining(context, env)
        self._notify(
            context, env, "warning", "Approval refused: four eyes",
            {"Refused": reason, "Still waiting": f"for another engineer, {int(remaining.total_seconds())}s left"},
        )
        # Re-opening the same request clears the recorded answer (the HITL detail of a task
        # instance is upserted, not duplicated); the task then waits for a new one.
        upsert_hitl_detail(
            ti_id=context["task_instance"].id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        raise TaskAwaitingInput(method_name="execute_complete", timeout=remaining)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        env = self._env()
        ti = context["ti"]
        triggered_by = triggering_user(context)
        responder = event.get("responded_by_user") or None
        chosen = event.get("chosen_options") or []
        if "error" not in event and self.APPROVE in chosen and env.four_eyes and same_person(responder, triggered_by):
            self._refuse(context, env, responder or {}, triggered_by or "")
        record = {
            "by": responder_name(responder),
            "by_id": (responder or {}).get("id"),
            "triggered_by": triggered_by,
            "environment": env.name,
            "four_eyes": env.four_eyes,
        }
        try:
            result = super().execute_complete(context, event)
        except DownstreamTasksSkipped:  # rejected, or no answer in time: what follows is skipped
            timed_out = bool(event.get("timedout")) or not responder
            outcome = "timed_out" if timed_out else "rejected"
            reason = (
                f"no answer within {env.blue_green.approval_timeout_seconds}s" if timed_out
                else f"rejected by {record['by']}"
            )
            ti.xcom_push(key=OUTCOME_KEY, value={"approved": False, "outcome": outcome, "reason": reason, **record})
            self.on_rejected(context, env, outcome, reason)
            raise
        ti.xcom_push(key=OUTCOME_KEY, value={"approved": True, "outcome": "approved", "reason": f"approved by {record['by']}", **record})
        self.log.info("Approved by %s (triggered by %s)", record["by"], triggered_by)
        self.on_approved(context, env, record)
        return {**result, "approved_by": record["by"]}

    def on_approved(self, context: Any, env: Any, record: dict) -> None:
        """Hook: the deployment was approved."""

    def on_rejected(self, context: Any, env: Any, outcome: str, reason: str) -> None:
        """Hook: the deployment was rejected or timed out."""
