"""The mini-scheduler: drive an existing DAG run to a final state in this process.

`dag.test()` executes the run it creates and nothing else. Tests and tools sometimes need a
scheduler's part for a run that already exists: a run a TriggerDagRunOperator queued (tests/
integration/triggered_runs.py serves those from a child process), or a run whose worker died or
whose tasks a user cleared (tests/faults/). `drive_run` is `dag.test()`'s own loop applied to such
a run: schedule what is ready, run it in-process with the runner `dag.test()` uses, triggers
inline, without `dag.test()`'s clearing of the whole run.
"""

from __future__ import annotations

import sys
import time


def drive_run(dag, run_id: str, *, timeout: float | None = None, mark_started: bool = False, poll: float = 0.5):
    """Drive the existing run `run_id` of `dag` until it is no longer running; return the DagRun.

    mark_started: the run is being started now (a queued run): its start_date becomes now, as the
    scheduler records it. Otherwise a running run keeps its start_date (a finished one is set
    running again). timeout: raise TimeoutError if it is still running after that many seconds.
    A task that fails is recorded in its state, as in dag.test(); its error is printed to stderr.
    """
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.settings import Session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    session = Session()
    try:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
        dr.dag = scheduler_dag
        if mark_started:
            dr.state, dr.start_date = DagRunState.RUNNING, timezone.utcnow()
            session.commit()
        elif dr.state != DagRunState.RUNNING:
            dr.state = DagRunState.RUNNING
            session.commit()
        deadline = None if timeout is None else time.monotonic() + timeout
        while dr.state == DagRunState.RUNNING:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{run_id} still running after {timeout}s")
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
                time.sleep(poll)
            for ti in scheduled:
                try:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
                except Exception as exc:  # noqa: BLE001 - the run's state says what happened
                    print(f"task {ti.task_id} failed: {exc}", file=sys.stderr)
        return dr
    finally:
        session.close()
