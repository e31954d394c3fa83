"""The Celery worker's preload: a task forked from a warmed worker imports nothing of ours and reads no AWS model.

Runs the way Airflow's Celery worker does: a fresh process imports `latticedb_deploy.worker_warmup`
(Celery's `imports`), then forks; the child parses a deployment DAG file and builds the AWS models'
clients' data, as a task does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from latticedb_deploy.worker_preload import AWS_SERVICES, package_modules

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
import latticedb_deploy.worker_warmup as warmup
from latticedb_deploy import aws
from tests.forked import in_a_fork

def parse_a_dag_file():
    before = set(sys.modules)
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    loader = aws._shared_loader
    cached = [s for s in sys.argv[2].split(",") if ("load_service_model", s, "service-2") in loader._cache]
    new = sorted(m for m in set(sys.modules) - before if m.startswith(("latticedb_deploy", "botocore", "boto3")))
    return {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids),
            "new": new, "cached": cached, "warmed": sorted(warmup.WARMED)}

print("RESULT " + json.dumps(in_a_fork(parse_a_dag_file)))
"""

def test_a_task_forked_from_a_warmed_worker_imports_nothing_of_ours_and_reads_no_model():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "dags" / "latticedb_deploy_canary.py"),
                          ",".join(AWS_SERVICES)], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert "crash" not in result, result
    assert result["errors"] == {}
    assert result["dags"] == ["latticedb_deploy_canary"]
    assert result["new"] == [], f"imported after the fork: {result['new']}"
    assert result["cached"] == list(AWS_SERVICES)
    assert result["warmed"] == ["aws_models", "imports"]


def test_every_module_of_the_package_is_preloaded_except_the_warmup_itself():
    names = package_modules()
    assert "latticedb_deploy.operators.traffic" in names and "latticedb_deploy.sensors.metric_gate" in names
    assert "latticedb_deploy.worker_warmup" not in names
