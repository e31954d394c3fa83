"""A worker process running `shift_traffic_to_<p>pct`'s execute, optionally frozen around its
ModifyListener call so the test can SIGKILL it there (python -m tests.faults.shift_worker ...)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))

from tests.envs import ENV  # noqa: E402 - this worker's environment (inherited PYTEST_XDIST_WORKER)

PARAMS = {"traffic_steps": [25, 50, 100], "interval_seconds": 6, "environment": ENV.name}
DAG_ID, RUN_ID = "fault-worker-dies", "fault-worker-dies-run"  # the lease owner the test holds: DAG_ID/RUN_ID


class _TI:
    log_url = "http://airflow.invalid/log"
    dag_id = DAG_ID

    def __init__(self, baseline):
        self.baseline = baseline

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.baseline


def main(percent: int, kill: str, baseline: dict) -> None:
    from latticedb_deploy.aws import elbv2
    from latticedb_deploy.operators.traffic import ShiftTrafficOperator

    real = elbv2.TrafficClient.set_weights

    def frozen(self, weights, port=None):
        if kill == "before":
            print("FREEZE", flush=True)
            time.sleep(120)
        real(self, weights, port)
        if kill == "after":
            print("FREEZE", flush=True)
            time.sleep(120)

    elbv2.TrafficClient.set_weights = frozen
    # the new slot runs the baseline's revision here (see the test), so it is also the new revision
    op = ShiftTrafficOperator(task_id=f"shift_traffic_to_{percent}pct", percent=percent, environment=ENV.name,
                              image_uri="unused", baseline=baseline, new_revision=baseline)
    print(json.dumps(op.execute({"params": PARAMS, "ti": _TI(baseline), "run_id": RUN_ID})), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
