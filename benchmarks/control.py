"""Action-to-effect latency of latticedb_control (issue 17): promote and abort a canary mid-step.

A canary of v2.0.0 ([25, 50, 100], 60 s intervals) runs in its own process (`airflow dags test`, as on
a second scheduler). Once its 25 % gate is waiting, a latticedb_control run (dag.test(), in this
process) promotes or aborts it. A thread polls the production listener every 50 ms.

- t0: dag.test() is called; t_run: the control run starts (its DagRun.start_date) -- the issue's measure;
- t_signal: the control task wrote the signal on the lease item (its XCom `at`);
- t1: the listener is at 100 % on the new slot (promote) or on the stable slot (abort).

Reported in seconds and in gate poll intervals (metrics.poll_seconds, 2 s for `local`); target:
at most 1 poll interval + 5 s. t0 -> t_run is dag.test() writing the DAG to the metadata DB (a real
Airflow does that when it parses the file); both are reported.
Results are merged into artifacts/bench/results.json (keys `control.*`). Measured, never asserted.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time

# The environment the canary and the control runs use: `local` (also what LocalEnv defaults to).
os.environ.setdefault("LATTICEDB_TEST_ENVIRONMENT", "local")

from benchmarks.common import LocalEnvironment, airflow_home, median, merge_results, quiet_airflow_logs, table

REPEATS = int(os.environ.get("BENCH_CONTROL_REPEATS", "1"))
CANARY = {"traffic_steps": [25, 50, 100], "interval_seconds": 60}
GREEN, BLUE = "latticedb-local-green", "latticedb-local-blue"


class Watch:
    """The listener's green weight, each change with its time (polled every 50 ms)."""

    def __init__(self, local):
        self.local, self.seen, self._stop = local, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                green = self.local.weights()[GREEN]
                if not self.seen or self.seen[-1][1] != green:
                    self.seen.append((time.time(), green))
            except Exception:  # noqa: BLE001, S110 - keep polling
                pass
            self._stop.wait(0.05)

    def first(self, since: float, green: int, timeout: float = 180) -> float | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hit = next((t for t, g in self.seen if t >= since and g == green), None)
            if hit is not None:
                return hit
            time.sleep(0.05)
        return None

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def _control(bag, action: str, reason: str):
    from harness.dag_runs import run_dag_run

    conf = {"environment": "local", "action": action, "reason": reason}
    dag = bag.dags["latticedb_control"]
    original = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            dag.params[key] = value
        return run_dag_run(bag, "latticedb_control", conf)
    finally:
        dag.params = original


def one(bag, local, action: str, poll: float) -> list:
    from harness.background import BackgroundRun, wait_until
    from harness.dag_runs import xcom

    local.reset()
    watch = Watch(local)
    canary = BackgroundRun("latticedb_deploy_canary", {
        "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0", "environment": "local", **CANARY,
    }).start()
    try:
        try:
            wait_until(lambda: local.weights().get(GREEN) == 25
                       and canary.task_states().get("deploy.gate_25pct") in ("queued", "running", "deferred"),
                       300, "the canary's 25% gate")
        except AssertionError:
            canary.stop()
            print(canary.output[-5000:], file=sys.stderr)
            raise
        time.sleep(poll)  # the gate is polling
        t0 = time.time()
        dr = _control(bag, action, f"bench: {action}")
        signal = xcom("latticedb_control", dr.run_id, "apply") or {}
        t1 = watch.first(t0, 100 if action == "promote" else 0)
        canary.wait(300)
    finally:
        canary.stop()
        watch.stop()
    t_signal = signal.get("at")
    # The run's start as Airflow records it (DagRun.start_date): under dag.test() that is after the DAG
    # was serialized and written to the DB, which a real Airflow does at parse time, not per trigger.
    t_run = dr.start_date.timestamp() if dr.start_date else t0
    total = (t1 - t_run) if t1 else None
    called = (t1 - t0) if t1 else None
    after = (t1 - t_signal) if t1 and t_signal else None
    return [action, dr.state, f"{called:.1f}" if called else "-", f"{total:.1f}" if total else "-",
            f"{total / poll:.1f}" if total else "-", f"{t_signal - t_run:.1f}" if t_signal else "-",
            f"{after:.1f}" if after else "-", f"{after / poll:.1f}" if after else "-"], total, after, called


def main() -> None:
    airflow_home()
    quiet_airflow_logs()
    from airflow.dag_processing.dagbag import DagBag

    from latticedb_deploy.config import load_config

    poll = float(load_config().environment("local").metrics.poll_seconds)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    rows, results = [], {}
    with LocalEnvironment() as local:
        # The first dag.test() of a DAG in a process also writes it to the metadata DB (seconds): warm up with a
        # control run that finds nothing in flight (it fails, changing nothing), so each measure is one run's.
        local.reset()
        _control(bag, "abort", "bench: warm-up, nothing in flight")
        for action in ("promote", "abort"):
            totals, afters, calls = [], [], []
            for _ in range(REPEATS):
                row, total, after, called = one(bag, local, action, poll)
                rows.append(row)
                totals += [total] if total else []
                afters += [after] if after else []
                calls += [called] if called else []
            if totals:
                results[f"control.{action}_seconds"] = round(median(totals), 2)
                results[f"control.{action}_poll_intervals"] = round(median(totals) / poll, 2)
            if calls:
                results[f"control.{action}_from_dag_test_call_seconds"] = round(median(calls), 2)
            if afters:
                results[f"control.{action}_from_signal_seconds"] = round(median(afters), 2)
    results["control.poll_seconds"] = poll
    table(
        "latticedb_control: action-to-effect latency (canary mid-step at 25 %)",
        ["action", "control run", "dag.test() call→effect s", "run start→effect s", "in polls", "run start→signal s",
         "signal→effect s", "in polls"],
        rows,
        [f"effect: the listener at 100 % on the new slot (promote) or the stable slot (abort), polled every 50 ms; "
         f"metrics.poll_seconds = {poll:g} s; target <= 1 poll + 5 s",
         "run start: the control run's DagRun.start_date (the issue's measure); dag.test() call: adds writing the "
         "DAG to the metadata DB, which a real Airflow does when it parses the file, not per run",
         "run start→signal: the control task starting and writing the signal on the lease item",
         f"{REPEATS} run(s) per action (BENCH_CONTROL_REPEATS)"],
    )
    merge_results(results)


if __name__ == "__main__":
    sys.exit(main())
