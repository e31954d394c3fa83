"""A DAG run in its own process and Airflow home (`airflow dags test`), as a second scheduler would run
it, next to the in-process runs of a test or benchmark; and waiting for what a user would see."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MIGRATED_DB_TEMPLATE_VAR = "LATTICEDB_TEST_MIGRATED_DB"


def new_airflow_home(prefix: str) -> dict:
    """The environment of a DAG run in its own process and Airflow home (a second scheduler's view):
    a copy of the test session's migrated, empty metadata DB (what `airflow db migrate` would write, without
    its 6-7 s of CPU per home), or a fresh migration when no template exists yet."""
    import shutil

    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    template = os.environ.get(MIGRATED_DB_TEMPLATE_VAR)
    if template and Path(template).exists():
        shutil.copyfile(template, home / "airflow.db")
    else:
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return env


class BackgroundRun:
    def __init__(self, dag_id: str, conf: dict, **env: str):
        self.dag_id, self.conf = dag_id, conf
        self.env = {**new_airflow_home("latticedb-airflow-bg-"), **env}
        self.home = Path(self.env["AIRFLOW_HOME"])
        self.proc: subprocess.Popen | None = None
        self.output = ""
        self._reader: threading.Thread | None = None

    def start(self) -> BackgroundRun:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", self.dag_id, "-c", json.dumps(self.conf)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)  # never let a full pipe block the run
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output += line

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float = 300) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.stop()
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def task_states(self) -> dict[str, str]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (self.dag_id,)).fetchall()
        return dict(rows)

    def run_id(self) -> str | None:
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (self.dag_id,)).fetchone()
        return row[0] if row else None


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - the thing we wait for may not exist yet
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
