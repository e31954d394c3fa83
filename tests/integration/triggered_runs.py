"""Run the DAG runs a TriggerDagRunOperator created, while `dag.test()` waits for them in another process.

`dag.test()` executes one run and never picks up the runs its tasks trigger: a scheduler would.
This module plays that part for tests, and only that: in a separate process (its own Airflow
globals, same metadata DB) it takes each QUEUED run of the given DAGs and executes its tasks
with the same in-process runner `dag.test()` uses, triggers inline. The parent's deferrable
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

ROOT = Path(__file__).resolve().parents[2]


def run_existing(dag, run_id: str) -> str:
    """Execute an existing (queued) run of `dag` to completion, like `dag.test()` does its own run."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils import timezone
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    session = settings.Session()
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
    dr.dag = scheduler_dag
    dr.state = DagRunState.RUNNING
    dr.start_date = timezone.utcnow()
    session.commit()
    while dr.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
            ti.scheduled_dttm = timezone.utcnow()
        session.commit()
        scheduled = [ti for ti in dr.get_task_instances(session=session) if ti.state == TaskInstanceState.SCHEDULED]
        if not scheduled:
            time.sleep(0.5)
        for ti in scheduled:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception as exc:  # noqa: BLE001 - the run's state says what happened
                print(f"task {ti.task_id} failed: {exc}", file=sys.stderr)
    state = str(dr.state)
    session.close()
    return state


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
    serve(sys.argv[3:], int(sys.argv[1]), float(sys.argv[2]))
