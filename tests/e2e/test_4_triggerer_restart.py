"""The triggerer restarts while a gate is deferred: the gate resumes and decides (a fault, on the e2e stack).

The suite's own running Airflow (tests/e2e/conftest.py), last in the suite since it replaces the stack's
triggerer process; before session 24 it started a stack of its own (about 45 s more per `make e2e`):

    LATTICEDB_E2E=1 .venv/bin/python -m pytest -q tests/e2e/test_4_triggerer_restart.py
"""

from __future__ import annotations

import time

from tests.envs import ENV

DAG_ID = "latticedb_deploy_canary"
GATE = "deploy.gate_50pct"


def _ti(api, run_id: str, task_id: str) -> dict:
    r = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    r.raise_for_status()
    return r.json()


def test_gate_survives_a_triggerer_restart(stack, api, local):
    from harness.airflow_stack import PY, wait_for
    from tests.integration.helpers import image

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
