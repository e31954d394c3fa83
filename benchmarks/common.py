"""Shared plumbing for the benchmarks: the machine, tables, the results file, a throwaway Airflow + local environment.

Benchmarks measure; they never assert. Each script prints one table and merges its figures into
artifacts/bench/results.json (`merge_results`).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CTL = ROOT / "include" / "local" / "ctl.py"
RESULTS = ROOT / "artifacts" / "bench" / "results.json"
# The tasks of a deployment that wait by design (task-id prefixes): rollout waits, gates, the bake,
# the post-deployment window. Their durations are a run's told waits; while one runs it holds a worker slot.
TOLD_WAITS = ("deploy.wait_for_", "deploy.gate_", "deploy.bake", "verify.post_deployment_checks")


def is_told_wait(task_id: str) -> bool:
    return task_id.startswith(TOLD_WAITS)


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}"


def median(values) -> float:
    return statistics.median(values)


def table(title: str, headers: list[str], rows: list[list], notes: list[str] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [f"### {title}", f"machine: {machine()}", "", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    out += [f"- {n}" for n in notes]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def results_path() -> Path:
    """The results file: BENCH_RESULTS, else artifacts/bench/results.json."""
    return Path(os.environ.get("BENCH_RESULTS") or RESULTS)


def merge_results(values: dict[str, float], path: Path | None = None) -> Path:
    """Merge one benchmark's figures into the results file (default artifacts/bench/results.json).

    The file is one flat JSON object, `<benchmark>.<figure>` -> number, shared by every benchmark:
    read, update with `values`, write back (under a lock, replaced atomically), so a benchmark run
    alone keeps the other benchmarks' figures from earlier runs. Values must be finite numbers.
    """
    path = Path(path or results_path())
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"results.json holds numbers only: {key} = {value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            current = {}
        if not isinstance(current, dict):
            current = {}
        current.update(values)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    print(f"\nwrote {len(values)} figure(s) to {shown}: {', '.join(sorted(values))}", flush=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_home(extra_dag_files: dict[str, str] | None = None) -> Path:
    """A temp AIRFLOW_HOME with a migrated sqlite DB; the dags folder holds this repo's DAGs (+ extras).

    Sets the process environment (before Airflow is imported), like tests/conftest.py does.
    """
    home = Path(tempfile.mkdtemp(prefix="latticedb-bench-"))
    dags = home / "dags"
    dags.mkdir()
    for f in (ROOT / "dags").glob("*.py"):
        (dags / f.name).symlink_to(f)
    for name, text in (extra_dag_files or {}).items():
        (dags / name).write_text(text)
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "LATTICEDB_REPORT_DIR": str(home / "reports"),
    })
    sys.path.insert(0, str(ROOT / "plugins"))
    sys.path.insert(0, str(ROOT))
    subprocess.run([PY, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    return home


class LocalEnvironment:
    """include/local on free ports, with the two Airflow connections pointing at it."""

    def __enter__(self):
        from harness import airflow_connections
        from harness.local_env import LocalEnv
        from harness.names import EnvNames

        ports = {name: free_port() for name in ("MOTO", "SERVICE", "SLACK", "TEST")}
        for name, port in ports.items():
            os.environ[f"LATTICEDB_LOCAL_{name}_PORT"] = str(port)
        os.environ["LATTICEDB_LOCAL_STATE_DIR"] = tempfile.mkdtemp(prefix="latticedb-bench-local-")
        moto = f"http://127.0.0.1:{ports['MOTO']}"
        os.environ.update(airflow_connections(EnvNames("local").config, moto,
                                              f"http://127.0.0.1:{ports['SLACK']}", label="BENCH"))
        up = subprocess.run([PY, str(CTL), "up"], capture_output=True, text=True, env=os.environ)
        if up.returncode != 0:
            raise RuntimeError(f"local environment did not start:\n{up.stdout}\n{up.stderr}")
        # `local`'s names (not the test worker's environment, local-2, that LocalEnv defaults to).
        self.env = LocalEnv(moto, f"http://127.0.0.1:{ports['SERVICE']}", f"http://127.0.0.1:{ports['SLACK']}",
                            names=EnvNames("local"))
        return self.env

    def __exit__(self, *exc):
        subprocess.run([PY, str(CTL), "down"], capture_output=True, env=os.environ)


def quiet_airflow_logs() -> None:
    import logging

    for name in ("airflow", "airflow.task", "airflow.models.dagrun", "airflow.sdk", "latticedb_deploy", ""):
        logging.getLogger(name).setLevel(logging.ERROR)


_WAIT_CLASS = """from datetime import timedelta

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator


class Wait(BaseOperator):
    \"\"\"Defers for `seconds`, then resumes on a worker to finish, as the product's waits do.\"\"\"

    def __init__(self, *, seconds, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=self.seconds)), method_name="done")

    def done(self, context, event=None):
        return None
"""


def noop_shape_file(dag, dag_id: str, *, tags: list[str], dropped: frozenset[str] = frozenset(),
                    wait_seconds=None) -> str:
    """A DAG file with `dag`'s shape (task ids, edges, trigger rules) whose tasks do nothing: the baseline a
    benchmark compares the product's DAG with. `dropped`: tasks left out, their edges bridged (upstream of a
    dropped task becomes upstream of its downstream). `wait_seconds(task_id)`: seconds for a task that waits
    (a `Wait` that defers and resumes on a worker), None for a do-nothing task; no waits by default."""
    waits = {t.task_id: wait_seconds(t.task_id) for t in dag.tasks} if wait_seconds else {}
    kept = [t for t in dag.tasks if t.task_id not in dropped]

    def upstream(task_id: str) -> set[str]:
        found = set()
        for up in dag.get_task(task_id).upstream_task_ids:
            found |= upstream(up) if up in dropped else {up}
        return found

    lines = [
        "# Benchmark only (an Airflow DAG file): a do-nothing DAG of a product DAG's shape (benchmarks/common.py).",
        "from airflow.providers.standard.operators.python import PythonOperator",
        "from airflow.sdk import DAG",
        "",
        *([_WAIT_CLASS] if any(v is not None for v in waits.values()) else []),
        "",
        "def _nothing():",
        "    return None",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, start_date=None, catchup=False, tags={tags!r}) as dag:",
        "    t = {}",
    ]
    for task in kept:
        rule = getattr(task.trigger_rule, "value", task.trigger_rule)
        seconds = waits.get(task.task_id)
        made = (f"Wait(task_id={task.task_id!r}, seconds={seconds!r}" if seconds is not None
                else f"PythonOperator(task_id={task.task_id!r}, python_callable=_nothing")
        lines.append(f"    t[{task.task_id!r}] = {made}, trigger_rule={rule!r})")
    for task in kept:
        for up in sorted(upstream(task.task_id)):
            lines.append(f"    t[{up!r}] >> t[{task.task_id!r}]")
    return "\n".join(lines) + "\n"
