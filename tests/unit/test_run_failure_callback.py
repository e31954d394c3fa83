"""The deployment DAGs' run-level failure notifier: only for the failures no task announced."""

from __future__ import annotations

import pytest


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr("latticedb_deploy.notify.send", lambda env, event, title, fields, link=None, **kw: messages.append(
        (env.name, event, title, fields)))
    monkeypatch.setattr("latticedb_deploy.notify.run_link", lambda context: None)
    return messages


def _context(reason, **params):
    return {"reason": reason, "run_id": "manual__1", "params": {"environment": "local", "image_uri": "repo/latticedb:v2", **params}}


def test_a_run_failed_by_a_task_is_not_paged_twice(sent):
    """The task's own callback said "Deployment failed at <task>" (or a rejection was reported, not paged)."""
    from latticedb_deploy.callbacks import notify_deployment_run_failure

    notify_deployment_run_failure(_context("task_failure"))
    assert sent == []


@pytest.mark.parametrize("reason", ["timed_out", "all_tasks_deadlocked"])
def test_a_run_that_failed_without_a_failed_task_is_reported(sent, reason):
    from latticedb_deploy.callbacks import notify_deployment_run_failure

    notify_deployment_run_failure(_context(reason))
    assert [(env, event) for env, event, _, _ in sent] == [("local", "failed")]
    assert sent[0][3]["Reason"] == reason and sent[0][3]["Image"] == "repo/latticedb:v2"


def test_notify_false_mutes_it_too(sent):
    from latticedb_deploy.callbacks import notify_deployment_run_failure

    notify_deployment_run_failure(_context("timed_out", notify=False))
    assert sent == []


def test_every_deployment_dag_has_it_as_a_plain_function():
    """A notifier object as a DAG callback crashes under dag.test (apache/airflow#64649)."""
    import types

    from latticedb_deploy.callbacks import notify_deployment_run_failure
    from latticedb_deploy.factory import build_deployment_dag
    from latticedb_deploy.strategies import BLUE_GREEN, CANARY, ROLLING

    for strategy in (ROLLING, CANARY, BLUE_GREEN):
        dag = build_deployment_dag(strategy)
        assert dag.on_failure_callback is notify_deployment_run_failure
        assert isinstance(dag.on_failure_callback, types.FunctionType)
