"""Run the DAG runs a TriggerDagRunOperator created, while `dag.test()` waits for them in another process.

`dag.test()` executes one run and never picks up the runs its tasks trigger: a scheduler would.
This module plays that part for tests, and only that: in a separate process (its own Airflow
globals, same metadata DB) it takes each QUEUED run of the given DAGs and executes its tasks
with the same in-process runner `dag.test()` uses, triggers inline (harness/scheduler.py). The parent's deferrable
TriggerDagRunOperator then sees the run finish through its DagStateTrigger, as it would in
production.

    python -m tests.integration.triggered_runs <max_runs> <timeout_seconds> <dag_id> [<dag_id> ...]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.scheduler import drive_run

ROOT = Path(__file__).resolve().parents[2]


def run_existing(dag, run_id: str) -> str:
    """Execute an existing (queued) run of `dag` to completion, like `dag.test()` does its own run."""
    return str(drive_run(dag, run_id, mark_started=True).state)


def serve(dag_ids: list[str], max_runs: int, timeout: float) -> list[tuple[str, str, str]]:
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    done: list[tuple[str, str, str]] = []
    deadline = time.time() + timeout
    while len(done) < max_runs and time.time() < deadline:
        with settings.Session() as session:
            queued = session.scalars(
                select(DagRun).where(DagRun.dag_id.in_(dag_ids), DagRun.state == DagRunState.QUEUED).order_by(DagRun.id)
            ).first()
            picked = (queued.dag_id, queued.run_id) if queued else None
        if picked is None:
            time.sleep(0.5)
            continue
        state = run_existing(bag.dags[picked[0]], picked[1])
        done.append((*picked, state))
        print(f"TRIGGERED RUN {picked[0]} {picked[1]} {state}", flush=True)
    return done


@contextlib.contextmanager
def executing_triggered_runs(dag_ids: list[str], max_runs: int = 1, timeout: float = 600, finish_timeout: float = 30):
    """Context manager for tests: a child process serving triggered runs; yields a dict filled on exit.

    On exit the child gets `finish_timeout` seconds to finish the runs it serves, or to stop waiting for
    runs that will never be triggered; a run nobody waited for (the post-deployment watch) may still be
    mid-way on a loaded machine, so its test gives it longer."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT), env.get("PYTHONPATH", "")])
    log = tempfile.NamedTemporaryFile("w+", prefix="triggered-runs-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.triggered_runs", str(max_runs), str(timeout), *dag_ids],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    result: dict = {"runs": [], "log": log.name}
    try:
        yield result
    finally:
        try:
            proc.wait(timeout=finish_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.seek(0)
        out = log.read()
        log.close()
        result["runs"] = [tuple(line.split()[2:5]) for line in out.splitlines() if line.startswith("TRIGGERED RUN ")]
        result["output"] = out[-5000:]


if __name__ == "__main__":
    from harness.dag_runs import fewer_gc_passes, quick_param_schema_checks

    quick_param_schema_checks()  # as in the test workers: serializing each run's DAG re-checked every Param schema
    fewer_gc_passes()
    serve(sys.argv[3:], int(sys.argv[1]), float(sys.argv[2]))
