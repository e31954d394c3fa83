"""Helpers for fault tests: fault toggles, watching the listener, and driving an existing DagRun.

`continue_run` is the mini-scheduler (harness/scheduler.py: `dag.test()`'s own loop applied to a
run that already exists) — what a scheduler does after a worker died or a user cleared tasks —
without `dag.test()`'s clearing of the whole run.
"""

from __future__ import annotations

import threading
import time

import requests

from harness.scheduler import drive_run
from tests.envs import ENV

GREEN, BLUE = ENV.green_tg, ENV.blue_tg


def _loopback() -> requests.Session:
    """A session for the local stack's loopback endpoints that never reads proxy settings: requests
    iterates os.environ for them, and dag.test() adds and removes a variable
    (__AIRFLOW_SUPERVISOR_FD) from another thread, so a helper thread's call could die on a KeyError
    (seen: the failure matrix's fault-clearing thread, which left 50 % errors on during a rollback)."""
    session = requests.Session()
    session.trust_env = False
    return session


def faults(local, **toggles) -> dict:
    with _loopback() as session:
        r = session.post(f"{local.service_url}/_local/faults", json=toggles, timeout=5)
    r.raise_for_status()
    return r.json()


def aws_stats(local) -> dict:
    with _loopback() as session:
        return session.get(f"{local.service_url}/_local/faults", timeout=5).json()["aws_stats"]


class WeightWatcher:
    """Polls the production listener's weights in a thread; keeps every distinct state seen."""

    def __init__(self, local, interval: float = 0.1):
        self.local, self.interval = local, interval
        self.seen: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                w = self.local.weights()
                if not self.seen or self.seen[-1][1] != w:
                    self.seen.append((time.time(), w))
            except Exception:  # noqa: BLE001 - the endpoint may be down on purpose
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def listener_is_whole(local) -> bool:
    """Exactly the two slots, weights summing to 100 (nothing half-shifted or duplicated)."""
    w = local.weights()
    return set(w) == {GREEN, BLUE} and sum(w.values()) == 100


def clear_with_downstream(dag, run_id: str, task_id: str) -> list[str]:
    """Clear `task_id` of run `run_id` with its downstream tasks (what the UI's Clear does); returns the
    cleared task ids. continue_run drives the run on."""
    from airflow.models.taskinstance import clear_task_instances
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.settings import Session
    from airflow.utils.state import DagRunState

    sdag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    subset = sdag.partial_subset(task_ids=[task_id], include_downstream=True, include_upstream=False)
    with Session() as session:
        tis = sdag.clear(dry_run=True, task_ids=list(subset.task_dict), run_id=run_id, session=session)
        clear_task_instances(list(tis), session, DagRunState.QUEUED)
        session.commit()
        return sorted(ti.task_id for ti in tis)


def continue_run(dag, run_id: str, timeout: float = 240):
    """Drive an existing DagRun to a final state the way dag.test() does; return the DagRun."""
    return drive_run(dag, run_id, timeout=timeout)


def task_states(dr) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def tries(dr) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dr.get_task_instances()}
