"""A failure's message leaves the task process in XCom, Slack and the history record, where Airflow's
log masking does not reach: a secret the process has seen (a connection's password) is masked there too.
Narrow unit test: the task instance and Slack are fakes that keep what they were given."""

from __future__ import annotations

import pytest

SECRET = "leakCanaryPassw0rd-7Q2X"


class FakeTI:
    dag_id, task_id, run_id = "latticedb_deploy_rolling", "deploy.update_service", "manual__1"

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def seen_secret():
    """As when a task fetched a connection: Airflow registers its password with the masker."""
    from airflow.sdk.log import mask_secret

    mask_secret(SECRET)
    return SECRET


def test_a_failure_message_with_a_secret_reaches_xcom_and_slack_masked(seen_secret, monkeypatch):
    from latticedb_deploy import callbacks, notify
    from latticedb_deploy.operators.history import FAILURE_KEY

    sent = []
    monkeypatch.setattr(notify, "send", lambda env, event, title, fields, *a, **k: sent.append((title, fields)))
    ti = FakeTI()
    context = {"ti": ti, "run_id": ti.run_id, "params": {"environment": "local", "notify": True},
               "exception": RuntimeError(f"UpdateService failed: https://user:{seen_secret}@proxy.example/ refused")}
    callbacks.notify_task_failure(context)
    assert sent, "no failure message sent"
    (title, fields), = sent
    assert "UpdateService failed" in fields["Reason"] and seen_secret not in fields["Reason"], fields["Reason"]
    assert "***" in fields["Reason"]
    reason = ti.pushed[FAILURE_KEY]["reason"]
    assert "UpdateService failed" in reason and seen_secret not in reason and "***" in reason, reason
