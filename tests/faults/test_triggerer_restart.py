"""The triggerer restarts while a gate is deferred: the gate resumes and decides.

Needs a running, distributed Airflow (harness/airflow_stack.py: Postgres, Redis, api-server, scheduler,
dag-processor, triggerer, Celery worker), so it only runs with LATTICEDB_E2E=1 (`make e2e` style):

    LATTICEDB_E2E=1 .venv/bin/python -m pytest -q tests/faults/test_triggerer_restart.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.envs import ENV

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("LATTICEDB_E2E") != "1", reason="needs a running Airflow: set LATTICEDB_E2E=1"),
]
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "latticedb_deploy_canary"
GATE = "deploy.gate_50pct"


@pytest.fixture(scope="module")
def stack():
    from harness.airflow_stack import Stack
    from harness.api import ApiClient

    artifacts = Path(os.environ.get("LATTICEDB_E2E_ARTIFACTS") or ROOT / "artifacts" / "e2e") / "faults"
    s = Stack(artifacts)
    try:
        s.start()
        s.wait_for_components(ApiClient(s.api_url), [DAG_ID])
    except BaseException:
        print(s.log_tails(80))
        s.stop()
        raise
    yield s
    s.stop()


def _ti(api, run_id: str, task_id: str) -> dict:
    r = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    r.raise_for_status()
    return r.json()


def test_gate_survives_a_triggerer_restart(stack):
    from harness.airflow_stack import PY, wait_for
    from harness.api import ApiClient
    from tests.integration.helpers import LocalEnv, image

    api, local = ApiClient(stack.api_url), LocalEnv(stack.moto_url, stack.service_url, stack.slack_url)
    local.reset()
    api.unpause(DAG_ID)
    r = api.trigger(DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                             "traffic_steps": [50, 100], "interval_seconds": 40})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    wait_for(lambda: _ti(api, run_id, GATE)["state"] == "deferred", 300, f"{GATE} to defer", interval=1)

    old = stack.procs["triggerer"]
    stack._stop_proc("triggerer", old)  # noqa: SLF001 - the Stack's own way of ending its processes
    assert old.poll() is not None
    time.sleep(3)
    assert _ti(api, run_id, GATE)["state"] == "deferred"  # nobody is watching now; the gate waits
    new = stack._spawn("triggerer", [PY, "-m", "airflow", "triggerer", "--skip-serve-logs"])  # noqa: SLF001
    assert new.pid != old.pid

    final = wait_for(lambda: (run := api.run(DAG_ID, run_id))["state"] in ("success", "failed") and run, 420,
                     "the canary run to finish", interval=2)
    gate = _ti(api, run_id, GATE)
    assert final["state"] == "success", final
    assert gate["state"] == "success", gate
    assert gate["try_number"] == 1  # resumed, not retried
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    assert any("canary deployment succeeded" in t for t in local.message_texts()), local.message_texts()
