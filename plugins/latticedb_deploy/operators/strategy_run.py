"""A stage of work that is a triggered strategy DAG (nightly, progressive delivery), waited for deferrably,
and what that run did (deployed, not deployed because its approval said no, or failed)."""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import ReportedFailure

OUTCOME_TASK_ID = "notify_success"  # in a strategy run: XCom `outcome` says whether it deployed
OUTCOME_KEY = "outcome"


def triggered_outcome(ti: Any, dag_id: str, run_id: str, state: str | None) -> dict:
    """What a triggered strategy run did: {"deployed": bool, "outcome", "reason"}.

    A run that ended `success` deployed. A failed run either was not deployed on purpose (an
    approval rejected or timed out: its notify_success recorded that in XCom `outcome`) or failed.
    """
    if state == "success":
        return {"deployed": True, "outcome": "deployed", "reason": None}
    recorded = None
    try:
        recorded = ti.xcom_pull(task_ids=OUTCOME_TASK_ID, key=OUTCOME_KEY, dag_id=dag_id, run_id=run_id)
    except Exception:  # noqa: BLE001 - without it the run simply failed
        recorded = None
    if isinstance(recorded, dict) and recorded.get("deployed") is False:
        return {"deployed": False, "outcome": recorded.get("outcome") or "rejected", "reason": recorded.get("reason")}
    return {"deployed": False, "outcome": "failed", "reason": f"run state {state}"}


class StrategyRunOperator(TriggerDagRunOperator):
    """Trigger a strategy DAG and wait for it deferrably; its failure fails this task *without retries*.

    A failed deployment run is an outcome, not a hiccup: retrying would deploy the same image again.
    The run id is derived from this run and task (`<run_id>__<task_id>`), so a retry after a
    transient error cannot start a second deployment either. A run that was not deployed because
    its approval was rejected (or timed out) fails this task with "NOT deployed: rejected ...":
    promotion stops there. This task's XCom `outcome` says which. `failure_told_by_summary`: a DAG whose
    summary message tells the outcome (the nightly) sends no "failed at deploy" message besides it
    (ReportedFailure); the deployment run's own messages say what failed.
    """

    def __init__(self, *, failure_told_by_summary: bool = False, **kwargs: Any):
        kwargs.setdefault("trigger_run_id", "{{ run_id }}__{{ ti.task_id }}")
        kwargs.setdefault("wait_for_completion", True)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("allowed_states", ["success"])
        kwargs.setdefault("failed_states", ["failed"])
        super().__init__(**kwargs)
        self.failure_told_by_summary = failure_told_by_summary

    def execute_complete(self, context: Any, event: Any) -> Any:
        try:
            result = super().execute_complete(context, event)
        except AirflowFailException:
            raise
        except Exception as exc:  # noqa: BLE001 - the triggered deployment failed: final
            fail = ReportedFailure if self.failure_told_by_summary else AirflowFailException
            _, data = event
            run_id = (data.get("run_ids") or [None])[0]
            outcome = triggered_outcome(context["ti"], self.trigger_dag_id, run_id, data.get(run_id) if run_id else None)
            context["ti"].xcom_push(key=OUTCOME_KEY, value=outcome)
            if outcome["outcome"] in ("rejected", "timed_out"):
                raise fail(
                    f"{self.trigger_dag_id} run {run_id}: NOT deployed ({outcome['outcome']}: {outcome['reason']}); "
                    "promotion stops here"
                ) from None
            raise fail(str(exc)) from None
        context["ti"].xcom_push(key=OUTCOME_KEY, value={"deployed": True, "outcome": "deployed", "reason": None})
        return result


def strategy_dag_id(strategy: str) -> str:
    return f"latticedb_deploy_{strategy}"
