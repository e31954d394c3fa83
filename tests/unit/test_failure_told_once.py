"""One event, one message: a failure the run's own summary tells (the nightly's) is not told again by the
task's failure callback, nor by the DAG's. Narrow unit test: the task instance and Slack are fakes that
keep what they were given (tests/integration/test_nightly.py counts the messages a real Slack sink gets)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import ReportedFailure


class FakeTI:
    run_id = "manual__1"

    def __init__(self, dag_id: str, task_id: str):
        self.dag_id, self.task_id, self.pushed = dag_id, task_id, {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def sent(monkeypatch):
    from latticedb_deploy import notify

    messages = []
    monkeypatch.setattr(notify, "send", lambda env, event, title, fields, *a, **k: messages.append(title))
    return messages


def _task_failure(dag_id: str, task_id: str, exception: Exception) -> FakeTI:
    from latticedb_deploy import callbacks

    ti = FakeTI(dag_id, task_id)
    callbacks.notify_task_failure({"ti": ti, "run_id": ti.run_id, "exception": exception,
                                   "params": {"environment": "local", "notify": True}})
    return ti


@pytest.mark.parametrize(("dag_id", "task_id", "exception", "told"), [
    ("latticedb_nightly_staging", "wait_for_environment", ReportedFailure("nightly NOT deployed: held"), False),
    ("latticedb_nightly_staging", "summary", ReportedFailure("nightly deployment NOT deployed"), False),
    ("latticedb_nightly_staging", "resolve_image", AirflowFailException("AccessDenied on DescribeImages"), True),
    ("latticedb_nightly_staging", "summary", RuntimeError("Slack down, summary broke"), True),
    # a failed rollback is an incident: told whatever the exception says
    ("latticedb_deploy_rolling", "rollback.restore_previous_revision", ReportedFailure("x"), True),
], ids=["held", "summary-reported", "other-task", "summary-broke", "rollback-incident"])
def test_a_reported_failure_sends_no_message_of_its_own_but_is_recorded(sent, dag_id, task_id, exception, told):
    from latticedb_deploy.operators.history import FAILURE_KEY

    ti = _task_failure(dag_id, task_id, exception)
    assert bool(sent) is told, sent
    assert str(exception) in ti.pushed[FAILURE_KEY]["reason"]  # the run's history still names why


def _dag_failure(callback, last_task_id: str | None) -> None:
    context = {"run_id": "manual__1", "reason": "task_failure", "params": {"environment": "local"},
               "dag": SimpleNamespace(dag_id="latticedb_nightly_staging")}
    if last_task_id:
        context["ti"] = FakeTI("latticedb_nightly_staging", last_task_id)
    callback(context)


@pytest.mark.parametrize(("last", "told"), [
    ("summary", False),  # the summary's message (or its own failure's) has told the run's end
    ("wait_for_environment", True),  # another task is the one Airflow names: not told by the summary
    (None, True),  # no task to name: not told yet
])
def test_the_nightly_dag_failure_is_told_unless_its_summary_ended_the_run(sent, dagbag_nightly, last, told):
    _dag_failure(dagbag_nightly.on_failure_callback, last)
    assert bool(sent) is told, sent


def test_a_dag_without_a_summary_tells_every_failure(sent):
    from latticedb_deploy.callbacks import notify_dag_failure

    _dag_failure(notify_dag_failure, "summary")
    assert sent == ["latticedb_nightly_staging run failed"]


@pytest.fixture(scope="module")
def dagbag_nightly():
    """The nightly DAG as parsed from its file: its callback is the one tested, not a hand-built one."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    path = Path(__file__).resolve().parents[2] / "dags" / "latticedb_nightly_staging.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["latticedb_nightly_staging"]
