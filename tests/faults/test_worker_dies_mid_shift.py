"""A worker dies (SIGKILL) in the middle of `shift_traffic_to_50pct`; its retry converges.

The task's execute runs in its own process, as on a Celery worker, frozen just before or just
after its ModifyListener call and killed there. The retry (a fresh process) must leave the listener
exactly where an undisturbed run leaves it. Then the failure path (rollback) puts 100 % back on the
known-good slot and says so in Slack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests.envs import ENV
from tests.faults.driver import BLUE, GREEN, listener_is_whole
from tests.faults.shift_worker import _TI, DAG_ID, PARAMS, RUN_ID

pytestmark = pytest.mark.integration
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker(percent: int, kill: str, baseline: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.shift_worker", str(percent), kill, json.dumps(baseline)],
        # One pipe, read to the end: a second, unread stderr pipe fills with the worker's log lines and
        # blocks it before it ever reaches the kill point (a hang, not a failure).
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=os.environ,
    )


def _kill_when_frozen(proc: subprocess.Popen) -> None:
    seen: list[str] = []
    for line in proc.stdout:  # log lines first; FREEZE once the worker sits at the chosen point
        if line.strip() == "FREEZE":
            break
        seen.append(line)
    else:
        raise AssertionError(f"worker ended without reaching the kill point: {proc.wait()} {''.join(seen[-50:])}")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def _bring_up(local, baseline: dict) -> None:
    import time

    local.client("ecs").update_service(
        cluster=ENV.cluster, service=baseline["idle_service"], taskDefinition=baseline["task_definition"],
        desiredCount=baseline["desired_count"],
    )
    elb = local.client("elbv2")
    deadline = time.time() + 30
    while time.time() < deadline:
        desc = elb.describe_target_health(TargetGroupArn=baseline["idle_target_group_arn"])["TargetHealthDescriptions"]
        if sum(d["TargetHealth"]["State"] == "healthy" for d in desc) == baseline["desired_count"]:
            return
        time.sleep(0.3)
    raise AssertionError("the new slot did not come up")


def _run(percent: int, baseline: dict) -> dict:
    proc = _worker(percent, "none", baseline)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


@pytest.mark.parametrize("kill", ["before", "after"])
def test_killed_shift_retries_to_the_same_weights_then_rolls_back(local, kill):
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config
    from latticedb_deploy.operators.deploy import RecordBaselineOperator, RestorePreviousRevisionOperator

    # What the run before the shift did: hold the environment, record the last good state (on the lease
    # too), and bring the new slot up (here on the baseline's revision). A slot with no running tasks is
    # never given traffic.
    assert EnvironmentLock(load_config().environment(ENV.name)).acquire(f"{DAG_ID}/{RUN_ID}") is None
    baseline = RecordBaselineOperator(task_id="record_baseline", environment=ENV.name).execute(
        {"run_id": RUN_ID, "ti": SimpleNamespace(dag_id=DAG_ID)})
    from latticedb_deploy.aws.elbv2 import TrafficClient  # the gates read the load balancer from the baseline

    assert baseline["load_balancer_arn"] == TrafficClient(load_config().environment(ENV.name)).load_balancer_arn()
    _bring_up(local, baseline)
    assert _run(25, baseline)["percent"] == 25  # the step before: 25 % on the new slot
    assert local.weights() == {GREEN: 25, BLUE: 75}

    _kill_when_frozen(_worker(50, kill, baseline))
    # Killed before the call: nothing changed. After: the change landed, the task never knew.
    assert local.weights() == ({GREEN: 25, BLUE: 75} if kill == "before" else {GREEN: 50, BLUE: 50})

    assert _run(50, baseline) == {"percent": 50, "plan": [25, 50, 100]}  # the retry
    assert local.weights() == {GREEN: 50, BLUE: 50}
    assert listener_is_whole(local)
    assert _run(50, baseline)["percent"] == 50  # and once more: still the same (idempotent)
    assert local.weights() == {GREEN: 50, BLUE: 50}

    class TI(_TI):
        def xcom_pull(self, task_ids=None, key="return_value"):
            return None if key == "evaluations" else self.baseline

    rollback = RestorePreviousRevisionOperator(
        task_id="restore_previous_revision", environment=ENV.name, image_uri="unused", notify=True,
        auto_rollback=True, mutation_task_ids=["deploy.deploy_canary_service"], baseline=baseline,
    )
    rollback.execute({"params": PARAMS, "ti": TI(baseline), "run_id": RUN_ID})
    assert local.weights() == {BLUE: 100, GREEN: 0}
    assert local.service()["taskDefinition"] == baseline["task_definition"]  # the known-good revision
    assert any("Rollback started" in t for t in local.message_texts()), local.message_texts()
