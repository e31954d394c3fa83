"""Two real runs against `local` at once: the second is refused, naming the run that holds it."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import pytest

from tests.envs import ENV
from tests.integration.background import new_airflow_home
from tests.integration.helpers import image, run_dag

pytestmark = pytest.mark.integration


def _holder(local) -> str | None:
    item = local.client("dynamodb").get_item(
        TableName="latticedb-deploy-locks", Key={"environment": {"S": ENV.name}}, ConsistentRead=True
    ).get("Item")
    return item["owner"]["S"] if item and "owner" in item else None  # an item without owner: a record, free


def test_concurrent_deployments_to_one_environment_never_interleave(local, dagbag):
    # Run A: a canary in its own process (its own Airflow home), as a second scheduler would run it.
    env = new_airflow_home("latticedb-airflow-a-")
    conf = {"image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [50, 100], "interval_seconds": 8}
    # Its output goes to a file: a pipe nobody reads while run B runs fills up and stalls run A.
    out_file = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed with the test
    run_a = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", "latticedb_deploy_canary", "-c", json.dumps(conf)],
        env=env, stdout=out_file, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # A new Airflow process parses every DAG file before its first task: with 8 test workers on 2 cores
        # that took more than 120 s in two of three full runs (session 19), as long as the other tests' bounds.
        deadline = time.time() + 300
        while _holder(local) is None and time.time() < deadline and run_a.poll() is None:
            time.sleep(0.5)
        holder_a = _holder(local)
        if not (holder_a and holder_a.startswith("latticedb_deploy_canary/")):
            out_file.seek(0)  # only now: the file's offset is shared with run A's writes
            raise AssertionError((holder_a, run_a.poll(), out_file.read()[-3000:]))

        # Run B: a rolling deployment to the same environment while A holds it.
        state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.1"), "environment": ENV.name})
        assert state == "failed"
        assert tasks["preflight.acquire_environment"] == "failed"
        assert tasks["prepare.register_task_definition"] == "upstream_failed"
        b_digest = local.digest("v2.0.1")  # B registered nothing (A may have registered its own meanwhile)
        assert not [r for r in local.revisions() if local.task_definition_image(r).endswith(b_digest)]
        refused = [t for t in local.message_texts() if "acquire_environment" in t]
        assert refused and holder_a in refused[0], local.message_texts()

        run_a.wait(timeout=300)
    finally:
        if run_a.poll() is None:
            run_a.kill()
        out_file.seek(0)
        out = out_file.read()
        out_file.close()
    assert run_a.returncode == 0, out[-3000:]
    # A finished undisturbed and let go of the environment.
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    assert _holder(local) is None
