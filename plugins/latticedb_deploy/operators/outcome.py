"""notify_success: the run's outcome (deployed, or not deployed because an approval said no)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.best_effort import RECORD_TASK_ID, WATCH_TASK_ID, best_effort_warnings
from latticedb_deploy.operators.deploy import NotifyOperator, revision_fields

APPROVAL_TASK_ID = "deploy.approve_switch"
OUTCOME_KEY = "outcome"


def has_task(context: Any, task_id: str) -> bool:
    """Whether the run's DAG has `task_id` (only blue/green has an approval)."""
    dag = context.get("dag")
    return dag is not None and task_id in getattr(dag, "task_ids", ())


class DeploymentOutcomeOperator(NotifyOperator):
    """notify_success: the run's outcome, for people (Slack) and for callers (XCom `outcome`).

    Runs when nothing upstream failed (trigger rule none_failed):
    - deployed (record_deployment ran): posts "<strategy> deployment succeeded", naming who
      approved and any warning of the best-effort steps; outcome {"deployed": true, ...}.
    - not deployed because an approval said no (rejected or timed out): outcome
      {"deployed": false, "outcome": "rejected", ...} and the task fails with
      "rejected: not deployed", so the run ends failed: whatever waits on the run (progressive
      delivery, the nightly, a CI job polling the REST API) sees that nothing was deployed.
      No rollback runs (nothing to restore) and no failure is paged: the approval step has
      already said "Deployment rejected" in Slack and scaled the idle colour down.

    `recorded` is record_deployment's result (None: nothing was deployed). The approval's and the
    watch's outcomes are read by task id where the DAG has those tasks: they are optional XComs
    (an approval or a watch that did not run pushed none), which an XComArg cannot leave unset.
    """

    template_fields = (*NotifyOperator.template_fields, "recorded")

    def __init__(self, *, recorded: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.recorded = recorded

    def execute(self, context: Any) -> dict:
        ti = context["ti"]
        approval = ti.xcom_pull(task_ids=APPROVAL_TASK_ID, key=OUTCOME_KEY) if has_task(context, APPROVAL_TASK_ID) else None
        recorded = self.recorded
        if recorded is None:
            if approval and not approval.get("approved"):
                outcome = {"deployed": False, "outcome": approval.get("outcome", "rejected"), "reason": approval.get("reason")}
                ti.xcom_push(key=OUTCOME_KEY, value=outcome)
                from latticedb_deploy.operators.history import record_outcome

                record_outcome(  # a timed-out approval is a rejection too: nothing was deployed
                    self.env, context, "rejected", logger=self.log, failed_step=APPROVAL_TASK_ID,
                    # "rejected by <who>" says it all; a timeout says so ("timed out: no answer within 3600s").
                    reason=(approval.get("reason") if approval.get("outcome", "rejected") == "rejected"
                            else f"{str(approval.get('outcome')).replace('_', ' ')}: {approval.get('reason')}"),
                )
                raise AirflowFailException(f"{approval.get('outcome', 'rejected')}: not deployed: {approval.get('reason')}")
            raise AirflowSkipException("nothing was deployed")
        warnings = best_effort_warnings(ti, known={RECORD_TASK_ID: recorded})
        fields = revision_fields(ti)
        if approval and approval.get("outcome") == "approved":
            fields["Approved by"] = approval.get("by")
        watch = ti.xcom_pull(task_ids=WATCH_TASK_ID, key="watch") if has_task(context, WATCH_TASK_ID) else None
        if watch and not any(w["task"] == WATCH_TASK_ID for w in warnings):
            fields["Post-deployment watch"] = f"{watch['due']} (run {watch['run_id']})"
            if watch.get("paused"):
                warnings.append({"task": WATCH_TASK_ID, "reason": "latticedb_post_deployment_watch is paused: "
                                 "unpause it or its checks never run"})
        if warnings:
            fields["Warnings"] = "\n".join(f"{w['task']}: {w['reason']}" for w in warnings)
        title = self.title + (f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else "")
        self.send(context, self.event, title, fields)
        outcome = {
            "deployed": True, "outcome": "deployed", "approved_by": (approval or {}).get("by"),
            "warnings": [f"{w['task']}: {w['reason']}" for w in warnings],
        }
        ti.xcom_push(key=OUTCOME_KEY, value=outcome)
        return outcome
