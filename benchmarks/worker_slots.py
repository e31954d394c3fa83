"""(d) Worker slots during bakes: N concurrent canaries on a running, distributed Airflow.

harness/airflow_stack.py's Stack (Postgres, Redis, api-server, scheduler, dag-processor, triggerer, Celery
worker), with the worker's concurrency cut to WORKER_SLOTS, and one local stack hosting N
environments (`local`, `local-2`, ... `local-<N>`: copies of `local`, include/config/latticedb.yaml
local_copies), each with its own cluster, services, listener, target groups, ECR repository and lease.

What runs: N real canaries at once, one per environment (one deployment per environment is
enforced by a DynamoDB lease, so N canaries need N environments), each shifting traffic in GATES
steps with a gate baking BAKE seconds at each. Each canary is its own copy of the product's canary DAG
(written when a deployment DAG ran one run at a time; kept so figures compare across sessions):
`bench_canary_<i>`, built by the same factory call as dags/latticedb_deploy_canary.py with only the
dag_id changed. While the gates wait, the REST API is
polled every second for how many task instances are running, queued and deferred: a waiting gate
must hold no worker slot (it defers to the triggerer).

`BENCH_SLOTS_TWIN=1`: the same, with each canary replaced by its twin (`twin_file`): the tasks the
canary runs on a worker for that plan, with the same ids, edges and trigger rules, each doing nothing,
and its told waits deferring for as long as the real ones took in the last real run (read from the
results file; defaults otherwise), then resuming on a worker to finish as ours do. What the twin
measures is Airflow's own cost of that shape on this machine: the floor under the real figure
(`slots.twin.*`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, TOLD_WAITS, free_port, is_told_wait, median, merge_results, noop_shape_file, table

N = int(os.environ.get("BENCH_SLOTS_RUNS", "10"))  # environments: local + local-2 ... local-10 at most
WORKER_SLOTS = int(os.environ.get("BENCH_SLOTS_WORKER_CONCURRENCY", "4"))
BAKE = int(os.environ.get("BENCH_SLOTS_BAKE_SECONDS", "30"))
GATES = 2
DAG_PREFIX = "bench_canary_"
BENCH_DAG = """# Benchmark only (an Airflow DAG file): the product's canary DAG under another dag_id (one per environment).
from latticedb_deploy.factory import build_deployment_dag, canary_params
from latticedb_deploy.strategies import CANARY

dag = build_deployment_dag(CANARY, dag_id="{dag_id}", extra_params=canary_params(), tags=["benchmark"])
"""
KINDS = ("moto", "service", "slack", "test")
PLAN = [50, 100]
TWIN = os.environ.get("BENCH_SLOTS_TWIN") == "1"
# A told wait's kind (a task id prefix) -> seconds it waits in the twin when no real run has been measured.
TWIN_WAIT_DEFAULTS = {"deploy.gate_": float(BAKE), "deploy.wait_for_": 8.0, "deploy.bake": float(BAKE),
                      "verify.post_deployment_checks": 10.0}
def wait_kind(task_id: str) -> str | None:
    return next((k for k in TWIN_WAIT_DEFAULTS if task_id.startswith(k)), None)


def twin_file(dag, dag_id: str, plan: list[int], wait_seconds: dict[str, float]) -> str:
    """A DAG file with the tasks `dag` runs on a worker for `plan`: its traffic slots outside the plan
    (which deploy.plan_traffic_steps skips without running) removed and their edges bridged; every
    other task kept with its trigger rule (the rollback's are skipped without running, as in a
    successful canary), doing nothing, or, for a told wait, deferring `wait_seconds[kind]`."""
    from latticedb_deploy.plans import SLOT_PERCENTS

    dropped = {f"deploy.{step}_{p}pct" for p in SLOT_PERCENTS if p not in plan for step in ("shift_traffic_to", "gate")}
    return noop_shape_file(dag, dag_id, tags=["benchmark"], dropped=frozenset(dropped),
                           wait_seconds=lambda task_id: wait_seconds[k] if (k := wait_kind(task_id)) else None)


def twin_wait_seconds() -> dict[str, float]:
    """Each told wait kind's median duration in the last real run (results file), else the defaults."""
    import json

    from benchmarks.common import results_path

    try:
        found = json.loads(results_path().read_text())
    except (OSError, ValueError):
        found = {}
    return {k: float(found.get(f"slots.wait_seconds.{k.strip('._')}", v)) for k, v in TWIN_WAIT_DEFAULTS.items()}


def environments() -> list[str]:
    names = ["local"] + [f"local-{k}" for k in range(2, 11)]
    if not 1 <= N <= len(names):
        raise SystemExit(f"BENCH_SLOTS_RUNS must be 1..{len(names)} (one environment per canary)")
    return names[:N]


def port_variable(name: str, kind: str) -> str:
    return f"LATTICEDB_{name.upper().replace('-', '_')}_{kind.upper()}_PORT"


def main() -> None:
    import subprocess
    import tempfile

    from harness import airflow_connections
    from harness.airflow_stack import CTL, PY, Stack
    from harness.api import ApiClient
    from harness.names import EnvNames
    from latticedb_deploy.config import load_config

    names = environments()
    ports = {name: {k: free_port() for k in KINDS} for name in names}
    config = load_config()
    dag_ids = [f"{DAG_PREFIX}{i}" for i in range(len(names))]
    dags = Path(tempfile.mkdtemp(prefix="latticedb-bench-slots-dags-"))
    for f in (ROOT / "dags").glob("*.py"):
        (dags / f.name).symlink_to(f)
    if TWIN:
        from airflow.dag_processing.dagbag import DagBag

        canary = DagBag(dag_folder=str(ROOT / "dags" / "latticedb_deploy_canary.py")).dags["latticedb_deploy_canary"]
        waits = twin_wait_seconds()
        print("twin waits (s):", waits)
    for dag_id in dag_ids:
        text = twin_file(canary, dag_id, PLAN, waits) if TWIN else BENCH_DAG.format(dag_id=dag_id)
        (dags / f"{dag_id}.py").write_text(text)

    class CanaryStack(Stack):
        """The e2e stack, its local stack hosting one environment per canary, a small Celery worker."""

        def start_local(self) -> None:
            self.ports.update(ports["local"])
            env = dict(os.environ, LATTICEDB_LOCAL_STATE_DIR=str(self.artifacts / "local"),
                       LATTICEDB_LOCAL_ENVIRONMENTS=" ".join(names))
            env.update({port_variable(n, k): str(p) for n, kp in ports.items() for k, p in kp.items()})
            self._local_env = env
            up = subprocess.run([PY, str(CTL), "up"], capture_output=True, text=True, env=env, cwd=str(ROOT))
            (self.logs / "local-ctl.log").write_text(up.stdout + up.stderr)
            if up.returncode != 0:
                raise RuntimeError(f"local stack did not start:\n{up.stdout}\n{up.stderr}")

        def airflow_env(self):
            env = super().airflow_env()
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(WORKER_SLOTS)
            for n in names:
                env.update({port_variable(n, k): str(p) for k, p in ports[n].items()})
                env.update(airflow_connections(
                    config.environment(n), f"http://127.0.0.1:{ports[n]['moto']}", f"http://127.0.0.1:{ports[n]['slack']}",
                    redis_url=f"redis://127.0.0.1:{self.ports['redis']}/1", label="BENCH"))
            return env

        def _spawn(self, name, argv, env=None, **kw):
            if name == "celery-worker" and "--concurrency" in argv:
                i = argv.index("--concurrency")
                argv = [*argv[: i + 1], str(WORKER_SLOTS), *argv[i + 2 :]]
            return super()._spawn(name, argv, env, **kw)

    artifacts = Path(os.environ.get("BENCH_ARTIFACTS") or ROOT / "artifacts" / "bench-slots")
    stack = CanaryStack(artifacts)
    try:
        stack.start()
        api = ApiClient(stack.api_url)
        stack.wait_for_components(api, dag_ids)
        for dag_id in dag_ids:
            api.unpause(dag_id)
        t0 = time.monotonic()
        runs = []
        for dag_id, n in zip(dag_ids, names, strict=True):
            conf = {"image_uri": EnvNames(n).image("v2.0.0"), "environment": n,
                    "traffic_steps": PLAN, "interval_seconds": BAKE}
            r = api.trigger(dag_id, conf)
            assert r.status_code == 200, r.text
            runs.append((dag_id, r.json()["dag_run_id"]))

        tis_path, watched = "/dags/~/dagRuns/~/taskInstances", ("queued", "deferred", "scheduled", "running")

        def count(state: str) -> int:
            r = api.get(tis_path, params={"state": state, "limit": 1, "dag_id_pattern": DAG_PREFIX})
            return r.json()["total_entries"]

        def sample() -> dict:
            """Task instances per state, and which running ones are waits: one request while they fit in a page
            (the API's default maximum_page_limit, 100), one per state when they do not. Few requests per
            sample, since the api-server answering them shares the 2 cores with what is measured."""
            r = api.get(tis_path, params={"state": list(watched), "limit": 100, "dag_id_pattern": DAG_PREFIX})
            body = r.json()
            tis = body["task_instances"]
            s = {st: sum(ti["state"] == st for ti in tis) for st in watched}
            if body["total_entries"] > len(tis):  # more than one page: count each state, list the running
                s = {st: count(st) for st in watched}
                tis = api.get(tis_path, params={"state": "running", "limit": 100,
                                                "dag_id_pattern": DAG_PREFIX}).json()["task_instances"]
            s["waits"] = [f"{ti['dag_id']}:{ti['task_id']}" for ti in tis
                          if ti["state"] == "running" and is_told_wait(ti["task_id"])]
            return s

        def run_states() -> list[str]:
            """Every benchmark run's state, in one request."""
            r = api.get("/dags/~/dagRuns", params={"dag_id_pattern": DAG_PREFIX, "limit": 100})
            by_id = {(d["dag_id"], d["dag_run_id"]): d["state"] for d in r.json()["dag_runs"]}
            return [by_id.get(run, "queued") for run in runs]

        samples = []
        deadline = time.monotonic() + 30 * 60
        while time.monotonic() < deadline:
            s = sample()
            s["waits_running"] = len(s["waits"])
            s["t"] = time.monotonic() - t0
            samples.append(s)
            states = run_states()
            if all(st in ("success", "failed") for st in states):
                break
            time.sleep(1)
        wall = time.monotonic() - t0
        succeeded = sum(st == "success" for st in states)
        baking = [s for s in samples if s["deferred"] > 0]
        mean = (lambda key: sum(s[key] for s in baking) / len(baking)) if baking else (lambda key: 0.0)
        serial = -(-N // WORKER_SLOTS) * GATES * BAKE  # if every waiting gate held a slot
        # The longest a wait was seen running in consecutive samples: a few seconds is its start-up
        # or its resume; a wait that held its slot while waiting would show its whole bake.
        streak, longest = {}, {}
        for smp in samples:
            now = set(smp["waits"])
            streak = {w: streak.get(w, 0) + 1 for w in now}
            for w, k in streak.items():
                longest[w] = max(longest.get(w, 0), k)
        longest_wait = max(longest.values(), default=0)
        print("longest consecutive samples running, per wait:",
              ", ".join(f"{w} {k}" for w, k in sorted(longest.items(), key=lambda x: -x[1])[:10]))
        rows = [[
            N, WORKER_SLOTS, f"{GATES} x {BAKE}s", f"{succeeded}/{N}", f"{wall:.0f}",
            max(s["running"] for s in samples), f"{mean('running'):.2f}", f"{mean('waits_running'):.2f}",
            max(s["deferred"] for s in samples), f"{mean('deferred'):.1f}",
            max(s["queued"] for s in samples), f"{serial}",
        ]]
        durations: dict[str, list[float]] = {}
        for dag_id, run_id in runs:
            r = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
            for ti in r.json()["task_instances"]:
                kind = wait_kind(ti["task_id"])
                if kind and ti["state"] == "success" and ti.get("duration") is not None:
                    durations.setdefault(kind, []).append(float(ti["duration"]))
        waited = {k: round(median(v), 1) for k, v in durations.items()}
        print("told waits, median seconds per kind:", waited, "(the twins': not recorded)" if TWIN else "")
        results = {
            "slots.mean_running_while_waiting": round(mean("running"), 2),
            "slots.mean_deferred_while_waiting": round(mean("deferred"), 2),
            "slots.mean_held_by_waits_while_waiting": round(mean("waits_running"), 3),
            "slots.longest_wait_running_samples": longest_wait,
            "slots.max_running": max(s["running"] for s in samples), "slots.worker_slots": WORKER_SLOTS,
            "slots.runs": N, "slots.runs_succeeded": succeeded, "slots.wall_seconds": round(wall, 1),
            **{f"slots.wait_seconds.{k.strip('._')}": v for k, v in waited.items()},
        }
        if TWIN:  # the floor: the same figures under slots.twin.*, the real ones left as they are
            results = {k.replace("slots.", "slots.twin.", 1): v for k, v in results.items()
                       if not k.startswith("slots.wait_seconds.")}
    except BaseException:
        print(stack.log_tails(40))
        raise
    finally:
        stack.stop()
    table(
        ("The canaries' twins (no-op tasks, the same waits): Airflow's own floor. " if TWIN else "")
        + "Worker slots while N canaries bake, one per local environment (running Airflow, CeleryExecutor)",
        ["canaries (environments)", "worker slots", "gates per run", "finished ok", "wall s", "max running", "mean running while baking",
         "mean of those that are waits",
         "max deferred", "mean deferred while baking", "max queued", "wall s if gates held slots (≥)"],
        rows,
        ["polled /api/v2 task-instance states every ~1 s (two requests a sample); 'while baking' = samples with ≥1 deferred gate",
         "'mean running': every running task instance of every run (other runs' steps included); 'of those that "
         "are waits': running instances of " + ", ".join(TOLD_WAITS) + " (a wait holding a slot: starting, or resuming "
         "after its trigger fired)",
         ("each run: a canary's twin (twin_file: the tasks the canary runs on a worker for [50, 100], doing nothing; "
          "its waits deferring for the told waits' medians above and resuming on a worker): Airflow's own cost" if TWIN else
          "each run: a real canary (the product's canary DAG as bench_canary_<i>: pre-flight, lease, idle colour, "
          "50 % and 100 % with a gate each, promotion, cleanup) in its own environment of one local stack"),
         "last column: ceil(canaries / slots) x gates x bake — the floor if a waiting gate occupied a worker slot"],
    )
    merge_results(results)


if __name__ == "__main__":
    sys.exit(main())
