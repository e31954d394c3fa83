"""(c) Detection-to-rollback latency of the canary.

Deploys v2.1.0-errors (~12 % 5xx) as a canary. A thread polls the production listener (elbv2) every
50 ms. t0 = the moment the listener first sends traffic to the canary, i.e. the moment the simulator
starts publishing its failures; t1 = the moment the listener is back at 100 % on the stable slot.
Also reported: when the gate decided (its task's end) and the gate's evaluations. The gate polls
CloudWatch every metrics.poll_seconds (2 s for `local`).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from benchmarks.common import LocalEnvironment, airflow_home, median, merge_results, quiet_airflow_logs, table

REPEATS = int(os.environ.get("BENCH_ROLLBACK_REPEATS", "3"))
POLL = 2.0  # include/config/latticedb.yaml: environments.local.metrics.poll_seconds
STEPS = {"traffic_steps": [25, 50, 100], "interval_seconds": 10}


def main() -> None:
    airflow_home()
    quiet_airflow_logs()
    from airflow.dag_processing.dagbag import DagBag

    from harness.dag_runs import run_dag_run, xcom

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    rows, total = [], []
    with LocalEnvironment() as local:
        for i in range(REPEATS):
            local.reset()
            seen: list[tuple[float, int]] = []
            stop = threading.Event()

            def watch(seen=seen, stop=stop):
                while not stop.is_set():
                    try:
                        green = local.weights()["latticedb-local-green"]
                        if not seen or seen[-1][1] != green:
                            seen.append((time.time(), green))
                    except Exception:  # noqa: BLE001, S110 - keep polling
                        pass
                    stop.wait(0.05)

            th = threading.Thread(target=watch, daemon=True)
            th.start()
            dr = run_dag_run(bag, "latticedb_deploy_canary",
                             {"image_uri": local.image("v2.1.0-errors"), "environment": "local", **STEPS})
            stop.set()
            th.join()
            t0 = next(t for t, g in seen if g > 0)
            t1 = next(t for t, g in seen if t > t0 and g == 0)
            tis = {ti.task_id: ti for ti in dr.get_task_instances()}
            gate = tis["deploy.gate_25pct"]
            decided = gate.end_date.timestamp()
            evals = xcom("latticedb_deploy_canary", dr.run_id, "deploy.gate_25pct", key="evaluations") or []
            verdicts = "/".join(e.get("verdict", "?") for e in evals)
            lat = t1 - t0
            total.append(lat)
            rows.append([i + 1, dr.state, tis["rollback.restore_previous_revision"].state, f"{decided - t0:.1f}",
                         f"{t1 - decided:.1f}", f"{lat:.1f}", f"{lat / POLL:.1f}", len(evals), verdicts])
    med = sorted(total)[len(total) // 2]
    table(
        "Detection-to-rollback latency (canary of v2.1.0-errors, 25 % first step)",
        ["run", "run state", "rollback", "t0→gate failed s", "gate failed→100% stable s", "t0→100% stable s",
         "in poll intervals", "evaluations", "verdicts"],
        rows,
        [f"median t0→100 % stable: {med:.1f} s = {med / POLL:.1f} poll intervals (metrics.poll_seconds = {POLL:g} s)",
         "t0: listener first sends traffic to the canary (polled every 50 ms); the simulator publishes that "
         "slot's 5xx from its next 1 s tick",
         "gate failed→100 % stable includes Airflow scheduling the rollback task under dag.test() and its "
         "Slack 'Rollback started' post"],
    )
    merge_results({"rollback.median_seconds": round(median(total), 2),
                   "rollback.median_poll_intervals": round(median(total) / POLL, 2), "rollback.runs": len(total)})


if __name__ == "__main__":
    sys.exit(main())
