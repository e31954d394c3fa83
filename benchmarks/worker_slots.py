"""(d) Worker slots during bakes: N concurrent gated runs on a running, distributed Airflow.

tests/e2e/stack.py's Stack (Postgres, Redis, api-server, scheduler, dag-processor, triggerer, Celery
worker), with the worker's concurrency cut to WORKER_SLOTS. While the runs' gates wait, the REST API
is polled every second for how many task instances are running, queued and deferred.

What runs: N concurrent runs of `bench_gate_slots`, a DAG generated here whose gates are the
product's own MetricGateSensor (same trigger, same CloudWatch queries, same deferral) against the
`local` environment, each gate baking BAKE seconds. Why not N canaries: one deployment per
environment is enforced (preflight.acquire_environment holds a DynamoDB lease), so N canaries to
`local` would queue behind the lease, and N copies of `local` sharing one cluster would defeat the
lease and measure nothing real. The bench DAG reads AWS (baseline, CloudWatch) and changes nothing,
so N of them can honestly share one environment; what is measured — does a waiting gate hold a
worker slot — is the same code path as a canary's gate_<p>pct.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, table

N = int(os.environ.get("BENCH_SLOTS_RUNS", "12"))
WORKER_SLOTS = int(os.environ.get("BENCH_SLOTS_WORKER_CONCURRENCY", "4"))
BAKE = int(os.environ.get("BENCH_SLOTS_BAKE_SECONDS", "30"))
GATES = 2
DAG_ID = "bench_gate_slots"

BENCH_DAG = f'''"""Benchmark only: N of these run at once; each gate is the product's MetricGateSensor."""
from airflow.sdk import DAG, Param, TaskGroup, chain

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.sensors.metric_gate import MetricGateSensor


class GateTarget(LatticeDBOperator):
    """Read-only stand-in for prepare.record_baseline: gates watch the live slot, which has traffic."""

    def execute(self, context):
        from latticedb_deploy.aws.elbv2 import TrafficClient

        live, _, _ = TrafficClient(self.env).live_and_idle()
        return {{"idle_target_group_arn": live.target_group_arn, "target_group_arn": live.target_group_arn}}


with DAG(
    dag_id="{DAG_ID}", schedule=None, start_date=None, catchup=False, max_active_runs=64, max_active_tasks=64,
    tags=["benchmark"],
    params={{"environment": Param("local", type="string"), "image_uri": Param("n/a", type="string"),
            "notify": Param(False, type="boolean"), "bake": Param({BAKE}, type="integer")}},
):
    with TaskGroup("prepare"):
        target = GateTarget(task_id="record_baseline")
    gates = [MetricGateSensor(task_id=f"gate_{{i}}", percent=100, interval_seconds="{{{{ params.bake }}}}")
             for i in range({GATES})]
    chain(target, *gates)
'''


def main() -> None:
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.e2e.api import ApiClient
    from tests.e2e.stack import Stack

    dags = Path(tempfile.mkdtemp(prefix="latticedb-bench-slots-dags-"))
    for f in (ROOT / "dags").glob("*.py"):
        (dags / f.name).symlink_to(f)
    (dags / f"{DAG_ID}.py").write_text(BENCH_DAG)

    class SmallWorkerStack(Stack):
        def airflow_env(self):
            env = super().airflow_env()
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(WORKER_SLOTS)
            return env

        def _spawn(self, name, argv, env=None, **kw):
            if name == "celery-worker" and "--concurrency" in argv:
                i = argv.index("--concurrency")
                argv = [*argv[: i + 1], str(WORKER_SLOTS), *argv[i + 2 :]]
            return super()._spawn(name, argv, env, **kw)

    artifacts = Path(os.environ.get("BENCH_ARTIFACTS") or ROOT / "artifacts" / "bench-slots")
    stack = SmallWorkerStack(artifacts)
    try:
        stack.start()
        api = ApiClient(stack.api_url)
        stack.wait_for_components(api, [DAG_ID])
        api.unpause(DAG_ID)
        t0 = time.monotonic()
        run_ids = []
        for _ in range(N):
            r = api.trigger(DAG_ID, {"bake": BAKE})
            assert r.status_code == 200, r.text
            run_ids.append(r.json()["dag_run_id"])

        def count(state: str) -> int:
            r = api.get(f"/dags/{DAG_ID}/dagRuns/~/taskInstances", params={"state": state, "limit": 1})
            return r.json()["total_entries"]

        samples = []
        deadline = time.monotonic() + 30 * 60
        while time.monotonic() < deadline:
            s = {st: count(st) for st in ("running", "queued", "deferred", "scheduled")}
            s["t"] = time.monotonic() - t0
            samples.append(s)
            states = [api.run(DAG_ID, rid)["state"] for rid in run_ids]
            if all(st in ("success", "failed") for st in states):
                break
            time.sleep(1)
        wall = time.monotonic() - t0
        succeeded = sum(st == "success" for st in states)
        baking = [s for s in samples if s["deferred"] > 0]
        mean = (lambda key: sum(s[key] for s in baking) / len(baking)) if baking else (lambda key: 0.0)
        serial = -(-N // WORKER_SLOTS) * GATES * BAKE  # if every waiting gate held a slot
        rows = [[
            N, WORKER_SLOTS, f"{GATES} x {BAKE}s", f"{succeeded}/{N}", f"{wall:.0f}",
            max(s["running"] for s in samples), f"{mean('running'):.1f}",
            max(s["deferred"] for s in samples), f"{mean('deferred'):.1f}",
            max(s["queued"] for s in samples), f"{serial}",
        ]]
    except BaseException:
        print(stack.log_tails(40))
        raise
    finally:
        stack.stop()
    table(
        "Worker slots while gates bake (running Airflow, CeleryExecutor)",
        ["runs", "worker slots", "gates per run", "finished ok", "wall s", "max running", "mean running while baking",
         "max deferred", "mean deferred while baking", "max queued", "wall s if gates held slots (≥)"],
        rows,
        ["polled /api/v2 task-instance counts every ~1 s; 'while baking' = samples with ≥1 deferred gate",
         "each run: prepare.record_baseline (reads the listener) then gates that are the product's MetricGateSensor; "
         "see benchmarks/worker_slots.py for why not N canaries (one deployment per environment)",
         "last column: ceil(runs / slots) x gates x bake — the floor if a waiting gate occupied a worker slot"],
    )


if __name__ == "__main__":
    sys.exit(main())
