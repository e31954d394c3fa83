"""(b) Control-plane overhead: what the deployment DAGs add on top of the waits they are told to do.

Against the local environment with `dag.test()` (tasks in-process, triggers inline):
- a canary with five steps [20, 40, 60, 80, 100] and interval_seconds 0, and a rolling deploy of v2.0.0;
- for each, a generated DAG of exactly the same shape (same task ids, dependencies, trigger rules)
  whose tasks are plain Python tasks that do nothing, run the same way.
Time per task = wall / task instances that ran. "Waits" = time spent in the deferred sensors
(metric gates polling CloudWatch every metrics.poll_seconds, ECS rollout waits), which is the wait
the run was told to do, not overhead. AWS calls per run are counted in this process (botocore's
`_make_api_call`; the runs' tasks and triggers run here): `overhead.<run>.aws_calls`; so are the
requests tasks make to their supervisor (XCom reads and writes, state changes; each one a request to
the API server in a deployed Airflow): `overhead.<run>.task_requests`, of which `.xcom_reads`.

One untimed rolling deploy runs first: the first task of a process imports what the operators use at
run time (boto3 clients, the Slack and Redis hooks; 2.4 s), which a long-running worker has imported
once (worker preload), and which would otherwise land in whichever run came first.
"""

from __future__ import annotations

import os
import sys
import time

from benchmarks.common import (
    LocalEnvironment,
    airflow_home,
    median,
    merge_results,
    noop_shape_file,
    quiet_airflow_logs,
    table,
)
from harness.aws_calls import AwsCallCounter
from harness.task_requests import TaskRequestCounter

REPEATS = int(os.environ.get("BENCH_OVERHEAD_REPEATS", "2"))
CANARY_STEPS = [20, 40, 60, 80, 100]


def run(dagbag, dag_id: str, conf: dict):
    from harness.dag_runs import run_dag_run

    t = time.perf_counter()
    dr = run_dag_run(dagbag, dag_id, conf)
    wall = time.perf_counter() - t
    tis = dr.get_task_instances()
    ran = [ti for ti in tis if ti.state in ("success", "failed") or (ti.state == "skipped" and ti.start_date)]
    waits = sum(
        (ti.end_date - ti.start_date).total_seconds()
        for ti in tis
        if ti.state == "success" and ti.start_date and ti.end_date
        and (".gate_" in ti.task_id or ".wait_for_" in ti.task_id or ti.task_id == "verify.post_deployment_checks")
    )
    return dr, wall, len(ran), waits


def main() -> None:
    import importlib.util

    # Shapes come from the real DAGs, parsed here.
    home = airflow_home()
    quiet_airflow_logs()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    extra = {
        f"bench_shape_{name}.py": noop_shape_file(bag.dags[f"latticedb_deploy_{name}"], f"bench_shape_{name}", tags=["baseline"])
        for name in ("canary", "rolling")
    }
    for fname, text in extra.items():
        (home / "dags" / fname).write_text(text)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    assert importlib.util.find_spec("latticedb_deploy")

    from harness.dag_runs import xcom

    rows, notes, results = [], [], {}
    with LocalEnvironment() as local:
        local.reset()
        warm, _, _, _ = run(bag, "latticedb_deploy_rolling", {"image_uri": local.image("v2.0.0"), "environment": "local"})
        notes.append(f"warm-up: one untimed rolling deploy first (ended {warm.state})")
        cases = [
            ("canary, 5 steps, interval 0", "latticedb_deploy_canary", "bench_shape_canary",
             {"image_uri": local.image("v2.0.0"), "environment": "local", "traffic_steps": CANARY_STEPS, "interval_seconds": 0}),
            ("rolling", "latticedb_deploy_rolling", "bench_shape_rolling",
             {"image_uri": local.image("v2.0.0"), "environment": "local"}),
        ]
        for label, dag_id, shape_id, conf in cases:
            key = "overhead." + dag_id.removeprefix("latticedb_deploy_")
            real, base, aws, reqs = [], [], [], []
            for _ in range(REPEATS):
                local.reset()
                with AwsCallCounter() as calls, TaskRequestCounter() as requests:
                    dr, wall, n, waits = run(bag, dag_id, conf)
                aws.append(calls)
                reqs.append(requests)
                if dr.state != "success":
                    notes.append(f"{label}: run ended {dr.state}")
                real.append((wall, n, waits))
                if dag_id.endswith("canary") and len(real) == 1:
                    evals = [len(xcom(dag_id, dr.run_id, f"deploy.gate_{p}pct", key="evaluations") or [])
                             for p in CANARY_STEPS]
                    notes.append(f"{label}: evaluations per gate {evals} (1 = decided at its first evaluation)")
                _, bwall, bn, _ = run(bag, shape_id, {})
                base.append((bwall, bn))
            wall, waits = median([r[0] for r in real]), median([r[2] for r in real])
            excl = median([r[0] - r[2] for r in real])  # per run, then the median: wall and waits of one run
            n = real[0][1]
            bwall = median([b[0] for b in base])
            bn = base[0][1]
            rows.append([
                label, n, f"{wall:.1f}", f"{wall / n:.2f}", f"{waits:.1f}", f"{excl / n:.2f}",
                bn, f"{bwall:.1f}", f"{bwall / bn:.2f}", f"{wall / bwall:.2f}x", f"{excl / bwall:.2f}x",
            ])
            results.update({
                f"{key}.ratio_excl_waits": round(excl / bwall, 2), f"{key}.ratio": round(wall / bwall, 2),
                f"{key}.wall_seconds": round(wall, 2), f"{key}.waits_seconds": round(waits, 2),
                f"{key}.noop_wall_seconds": round(bwall, 2), f"{key}.tasks_run": n,
                f"{key}.aws_calls": median([c.total for c in aws]),
                f"{key}.task_requests": median([r.total for r in reqs]),
                f"{key}.xcom_reads": median([sum(v for t, v in r.messages.items() if t.startswith("GetXCom")) for r in reqs]),
            })
            per_service = ", ".join(f"{s} {k}" for s, k in aws[0].by_service().items())
            notes.append(f"{label}: AWS calls per run {[c.total for c in aws]} (first run: {per_service})")
            top = ", ".join(f"{t} {k}" for t, k in list(reqs[0].by_type().items())[:6])
            notes.append(f"{label}: task-to-supervisor requests per run {[r.total for r in reqs]} (first run: {top})")
    table(
        "Control-plane overhead vs a do-nothing DAG of the same shape (dag.test, local environment)",
        ["run", "tasks run", "wall s", "s/task", "in waits s", "s/task excl. waits", "baseline tasks",
         "baseline wall s", "baseline s/task", "ratio", "ratio excl. waits"],
        rows,
        [f"median of {REPEATS} runs each (excl. waits: wall minus waits per run, then the median); tasks run = "
         "task instances that ended success or failed, or skipped with a start time (the canary's slots outside "
         "its plan are skipped by deploy.plan_traffic_steps without running)",
         "waits = time inside gate_* / wait_for_* sensors (CloudWatch polls every 2 s, ECS rollouts ~2 s in local) "
         "and verify.post_deployment_checks (watches metrics for post_deployment.window_seconds = 10 s in local); "
         "a gate decides once the relative judge has judge.min_samples 1 s samples a side (10 s in local)",
         *notes],
    )
    merge_results(results)


if __name__ == "__main__":
    sys.exit(main())
