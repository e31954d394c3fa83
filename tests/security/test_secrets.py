"""No secret leaves its connection: a real deployment with recognisable credentials, then a search.

The local moto accepts any AWS keys and the Slack sink any path under /services/, so the run uses
keys and a webhook URL made of marker tokens; afterwards no task log, XCom value, deployment log
or report may contain any of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration

ACCESS_KEY = "AKIALEAKCANARY7Q2X"
SECRET_KEY = "leakCanarySecretKey/9f3Zr+Wq81TkLm0pX"
WEBHOOK_TOKEN = "LEAKCANARYWEBHOOK5581"
WEBHOOK_PATH = f"/services/TLEAKCANARY/BLEAKCANARY/{WEBHOOK_TOKEN}"
SECRETS = [ACCESS_KEY, SECRET_KEY, SECRET_KEY.split("/")[0], WEBHOOK_TOKEN, WEBHOOK_PATH]


@pytest.fixture
def canary_connections(local, monkeypatch, tmp_path):
    aws = json.loads(os.environ[ENV.conn_var(ENV.aws_conn_id)])
    aws.update(login=ACCESS_KEY, password=SECRET_KEY)
    monkeypatch.setenv(ENV.conn_var(ENV.aws_conn_id), json.dumps(aws))
    monkeypatch.setenv(ENV.conn_var(ENV.slack_conn_id), json.dumps(
        {"conn_type": "slackwebhook", "password": f"{local.slack_url}{WEBHOOK_PATH}"}
    ))
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LATTICEDB_REPORT_DIR", str(tmp_path / "reports"))
    return tmp_path


def _xcoms(dag_id: str, run_id: str) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        return [f"{r.task_id}/{r.key}: {json.dumps(XComModel.deserialize_value(r), default=str)}" for r in rows]


def _files(root: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def test_no_credential_appears_in_logs_xcom_deployment_log_or_reports(local, dagbag, canary_connections, capfd, caplog):
    """Task logs: dag.test() runs the tasks in this process and writes no log files, so what the tasks
    logged is captured here (stdout/stderr at the file-descriptor level and every log record at INFO,
    the level a deployment runs at); files under AIRFLOW_HOME/logs are searched too, if any appear."""
    caplog.set_level("INFO")
    logs_dir = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    before = set(_files(logs_dir))
    dr = run_dag_run(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert dr.state == "success"
    # The run really used the canary connections: Slack got its messages on the secret path.
    assert any(m.get("path") == WEBHOOK_PATH for m in local.messages()), local.messages()[:1]

    out, err = capfd.readouterr()
    records = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    task_output = "\n".join([out, err, records])
    assert "Slack notification sent" in task_output and "record_deployment" in task_output
    log_files = {p: t for p, t in _files(logs_dir).items() if p not in before}
    xcoms = _xcoms("latticedb_deploy_rolling", dr.run_id)
    assert any("record_deployment" in x for x in xcoms)
    written = _files(canary_connections / "data") | _files(canary_connections / "reports")
    assert any("DEPLOYMENT_LOG" in p for p in written) and any("smoke" in p for p in written), list(written)

    places = {"task output": task_output, **log_files, **{f"XCom {x[:60]}": x for x in xcoms}, **written}
    leaks = [f"{secret!r} in {where}" for where, text in places.items() for secret in SECRETS if secret in text]
    assert not leaks, leaks
