"""(g) A canary in a running Airflow: wall time against the waits it was told to do.

Starts the distributed stack of `make e2e` (harness/airflow_stack.py: PostgreSQL, Redis, the local
environment, api-server, scheduler, dag-processor, triggerer, a Celery worker), triggers
`latticedb_deploy_canary` with traffic steps [10, 50, 100] at 20 s through the REST API, as a user
would, and reads the run's task instances back.

Told waits: the summed durations of the tasks that wait by design (`deploy.wait_for_*`,
`deploy.gate_*`, `deploy.bake`, `verify.post_deployment_checks`). Wall: the run's start to its end.
Everything else is the control plane's: scheduling, worker round trips, pre-flight, AWS calls.
BENCH_CANARY_WALL_RUNS (default 1) runs; the median is reported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from benchmarks.common import ROOT, TOLD_WAITS, is_told_wait, median, merge_results, table

DAG_ID = "latticedb_deploy_canary"
STEPS = [10, 50, 100]
INTERVAL = 20
RUNS = int(os.environ.get("BENCH_CANARY_WALL_RUNS", "1"))


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def one_run(api, local, image: str) -> dict:
    local.reset()
    r = api.trigger(DAG_ID, {"environment": "local", "traffic_steps": STEPS, "interval_seconds": INTERVAL,
                             "image_uri": image})
    r.raise_for_status()
    run_id = r.json()["dag_run_id"]
    run = api.wait(DAG_ID, run_id, timeout=900, interval=1.0)
    tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 500}).json()["task_instances"]
    wall = _ts(run["end_date"]) - _ts(run["start_date"])
    told = sum(ti.get("duration") or 0.0 for ti in tis if is_told_wait(ti["task_id"]) and ti["state"] == "success")
    ran = [ti for ti in tis if ti["state"] in ("success", "failed")]
    preflight = [ti for ti in ran if ti["task_id"].startswith("preflight.")]
    span = (max(_ts(t["end_date"]) for t in preflight) - min(_ts(t["start_date"]) for t in preflight)) if preflight else 0.0
    skipped = sum(1 for ti in tis if ti["state"] == "skipped")
    return {"state": run["state"], "wall": wall, "told": told, "ran": len(ran), "skipped": skipped, "preflight": span,
            **timeline(run, tis)}


def timeline(run: dict, tis: list[dict]) -> dict:
    """Split the control plane: idle (no task of the run running), queued->start, and task run time.

    idle: seconds of the run's wall during which none of its task instances was running (between
    one task's end and the next one's start: the scheduler, the executor and the Celery round trip).
    queue: summed queued->start of the tasks that ran and are not told waits (Celery delivery, the
    worker's fork).
    work: summed durations of the tasks that ran and are not told waits (their own imports, DAG
    parse, AWS calls).
    """
    ran = sorted((ti for ti in tis if ti["state"] in ("success", "failed") and ti.get("start_date")),
                 key=lambda ti: ti["start_date"])
    busy, cur_start, cur_end = 0.0, None, None
    for ti in ran:
        s, e = _ts(ti["start_date"]), _ts(ti["end_date"])
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                busy += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        busy += cur_end - cur_start
    wall = _ts(run["end_date"]) - _ts(run["start_date"])
    # A deferred task is queued again when it resumes, after its start_date: count first starts only.
    queue = sum(_ts(ti["start_date"]) - _ts(ti["queued_when"]) for ti in ran
                if ti.get("queued_when") and not is_told_wait(ti["task_id"]))
    work = sum(ti.get("duration") or 0.0 for ti in ran if not is_told_wait(ti["task_id"]))
    return {"idle": wall - busy, "queue": queue, "work": work,
            "tasks": [{k: ti.get(k) for k in ("task_id", "state", "scheduled_when", "queued_when", "start_date",
                                                "end_date", "duration", "try_number")} for ti in ran]}


IDLE_WINDOW = float(os.environ.get("BENCH_CANARY_WALL_IDLE_SECONDS", "30"))


def cpu_seconds(proc) -> float:
    """User + system CPU of a component's process tree (a scheduler forks helpers)."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def main() -> None:
    from harness.airflow_stack import Stack
    from harness.api import ApiClient
    from harness.local_env import LocalEnv
    from harness.names import ECR_HOST

    artifacts = Path(os.environ.get("BENCH_ARTIFACTS", ROOT / "artifacts" / "bench" / "canary_wall"))
    stack = Stack(artifacts)
    started = time.monotonic()
    try:
        stack.start()
        api = ApiClient(stack.api_url)
        stack.wait_for_components(api, [DAG_ID])
        up = time.monotonic() - started
        local = LocalEnv(stack.moto_url, stack.service_url, stack.slack_url)
        api.unpause(DAG_ID)
        sched = stack.procs["scheduler"]
        c0 = cpu_seconds(sched)
        time.sleep(IDLE_WINDOW)  # the scheduler's CPU with nothing to do: the price of its loop's idle sleep
        idle_cpu = (cpu_seconds(sched) - c0) / IDLE_WINDOW * 60
        runs = [one_run(api, local, f"{ECR_HOST}/latticedb:v2.0.0") for _ in range(RUNS)]
    finally:
        stack.stop()
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "timeline.json").write_text(json.dumps([r.pop("tasks") for r in runs], indent=1))
    rows = [[i + 1, r["state"], f"{r['wall']:.1f}", f"{r['told']:.1f}", f"{r['wall'] / r['told']:.2f}x",
             f"{r['wall'] - r['told']:.1f}", f"{r['idle']:.1f}", f"{r['queue']:.1f}", f"{r['work']:.1f}",
             f"{r['preflight']:.1f}", r["ran"], r["skipped"]] for i, r in enumerate(runs)]
    ratio = median([r["wall"] / r["told"] for r in runs])
    table(
        f"A canary {STEPS} at {INTERVAL} s in a running Airflow (scheduler, triggerer, Celery worker)",
        ["run", "state", "wall s", "told waits s", "wall / told", "control plane s", "idle s",
         "queued->start s", "task work s", "pre-flight s", "tasks run",
         "tasks skipped"],
        rows,
        [f"stack up in {up:.0f} s (not counted); told waits: {', '.join(TOLD_WAITS)}",
         "control plane s = wall - told waits: scheduling, worker round trips, pre-flight, AWS calls",
         "idle s = wall with no task of the run running; queued->start and task work are summed over tasks "
         "(tasks overlap, so they need not add up); per-task times in timeline.json",
         f"scheduler CPU while idle: {idle_cpu:.1f} s per minute (measured over {IDLE_WINDOW:.0f} s before the runs)",
         "target (issue 14): wall at most 1.3x the told waits"],
    )
    merge_results({
        "canary_wall.ratio_to_told_waits": round(ratio, 2),
        "canary_wall.wall_seconds": round(median([r["wall"] for r in runs]), 1),
        "canary_wall.told_wait_seconds": round(median([r["told"] for r in runs]), 1),
        "canary_wall.preflight_seconds": round(median([r["preflight"] for r in runs]), 1),
        "canary_wall.idle_seconds": round(median([r["idle"] for r in runs]), 1),
        "canary_wall.queued_to_start_seconds": round(median([r["queue"] for r in runs]), 1),
        "canary_wall.task_work_seconds": round(median([r["work"] for r in runs]), 1),
        "canary_wall.scheduler_idle_cpu_seconds_per_minute": round(idle_cpu, 2),
        "canary_wall.runs": RUNS,
    })


if __name__ == "__main__":
    sys.exit(main())
