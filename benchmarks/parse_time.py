"""(a) DAG parse time per DAG file vs a baseline file with the same number of plain tasks.

Each figure is the median of REPEATS parses, each in a fresh process set up, untimed, as a
dag-processor is when it forks a parser: `airflow` and the dag-processor's own modules
(airflow.dag_processing.manager) imported, the `airflow.*` modules the DAG file names pre-imported
(`[dag_processor] parsing_pre_import_modules`, on by default: DagFileProcessorProcess.start does it
before the fork), and the garbage collector's objects frozen; then `DagBag(<file>)` timed — what a
dag-processor pays per file. The re-parse figure is that process's next REPARSES `DagBag(<file>)`s
(their median: one takes a few ms, within a timer tick or a scheduling hiccup of its baseline's).
Without the freeze, a full collection over Airflow's ~200k objects (130-160 ms) lands in
whichever file allocates enough first, which the real parser never pays. The
baseline is generated per file: one DAG with as many EmptyOperator tasks (chained) as the file's DAGs
have tasks in total.

Two set-ups: the shipped dag-processor (docker-compose.yaml, the e2e stack) runs through
`latticedb_deploy.dag_processor_preload`, which imports this package's parse-time modules and reads the
config in the parent, as Airflow pre-imports its own modules: "parse ms" (`parse.*.first_ratio`) is a
first parse in such a process. "no preload" is `airflow dag-processor` alone, where every parse
imports this package again (`parse.*.first_ratio_without_preload`).

A second pair of columns parses with bytecode: a copy of dags/, plugins/ and include/ compiled with
`compileall` (and the baseline compiled too), what a parser pays once Python has written
`__pycache__` next to the modules (on first import, unless PYTHONDONTWRITEBYTECODE is set, as it is
on the machine these figures come from) or once an image build has run `compileall`. This checkout
itself stays free of `__pycache__`.
"""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import PY, ROOT, median, merge_results, table

REPEATS = int(os.environ.get("BENCH_PARSE_REPEATS", "7"))
REPARSES = int(os.environ.get("BENCH_PARSE_REPARSES", "5"))  # re-parses per process (their median)
BYTECODE_REPEATS = int(os.environ.get("BENCH_PARSE_BYTECODE_REPEATS", "3"))

_PROBE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import gc
import airflow  # noqa: F401  (not timed)
from airflow.dag_processing.dagbag import DagBag
import airflow.dag_processing.manager  # noqa: F401  (what a dag-processor has imported before it forks a parser)
from airflow.dag_processing.processor import _pre_import_airflow_modules
import structlog
_pre_import_airflow_modules(sys.argv[1], structlog.get_logger())  # as DagFileProcessorProcess.start does, before the fork
if sys.argv[3] == "preload":  # as `python -m latticedb_deploy.dag_processor_preload` does before it runs the dag-processor
    from latticedb_deploy.dag_processor_preload import preload
    preload(sys.argv[4])
gc.freeze()  # as the dag-processor does before it forks a parser (DagFileProcessorManager.before_run)
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
took = time.perf_counter() - t
warms = []
for _ in range(int(sys.argv[2])):  # re-parses: a few per process, their median (one is a few ms: noisy)
    t = time.perf_counter()
    DagBag(dag_folder=sys.argv[1])
    warms.append(time.perf_counter() - t)
warm = sorted(warms)[len(warms) // 2]
print(json.dumps({"seconds": took, "warm": warm, "dags": len(bag.dags), "tasks": sum(len(d.tasks) for d in bag.dags.values()),
                  "errors": list(bag.import_errors)}))
"""

_BASELINE = '''from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, chain

with DAG(dag_id="baseline_{n}", schedule=None, start_date=None, catchup=False, tags=["baseline"]):
    chain(*[EmptyOperator(task_id=f"t{{i}}") for i in range({n})])
'''


def parse(path: Path, env: dict, preload: bool = False) -> dict:
    """One fresh process's first parse of `path` and its re-parses; `preload`: the dag-processor's preload first."""
    mode = ["preload", env["AIRFLOW__CORE__DAGS_FOLDER"]] if preload else ["plain", "-"]
    out = subprocess.run([PY, "-c", _PROBE, str(path), str(REPARSES), *mode], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compiled_copy(home: Path) -> Path:
    """dags/, plugins/ and include/ copied under `home` with every module compiled to bytecode."""
    root = home / "compiled"
    for part in ("dags", "plugins", "include"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([PY, "-m", "compileall", "-q", str(root / "dags"), str(root / "plugins")], check=True)
    return root


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="latticedb-bench-parse-"))
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    compiled = compiled_copy(home)
    env_bytecode = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(compiled / "dags"),
                    "AIRFLOW__CORE__PLUGINS_FOLDER": str(compiled / "plugins"), "PYTHONPATH": str(compiled / "plugins")}
    rows, results = [], {}
    for path in sorted((ROOT / "dags").glob("*.py")):
        runs = [parse(path, env) for _ in range(REPEATS)]
        if runs[0]["errors"]:
            rows.append([path.name, "-", "-", "import error"] + ["-"] * 11)
            continue
        n = runs[0]["tasks"]
        base_file = home / f"baseline_{n}.py"
        base_file.write_text(_BASELINE.format(n=max(n, 1)))
        base = [parse(base_file, env) for _ in range(REPEATS)]
        pre = median([parse(path, env, preload=True)["seconds"] for _ in range(REPEATS)]) * 1000
        bpre = median([parse(base_file, env, preload=True)["seconds"] for _ in range(REPEATS)]) * 1000
        py_compile.compile(str(base_file), doraise=True)  # after the source-only parses above
        bc = median([parse(compiled / "dags" / path.name, env_bytecode)["seconds"] for _ in range(BYTECODE_REPEATS)]) * 1000
        bbc = median([parse(base_file, env_bytecode)["seconds"] for _ in range(BYTECODE_REPEATS)]) * 1000
        ms, bms = median([r["seconds"] for r in runs]) * 1000, median([b["seconds"] for b in base]) * 1000
        warm, bwarm = median([r["warm"] for r in runs]) * 1000, median([b["warm"] for b in base]) * 1000
        rows.append([path.name, runs[0]["dags"], n, f"{pre:.1f}", f"{bpre:.1f}", f"{pre / bpre:.1f}x",
                     f"{ms:.0f}", f"{bms:.0f}", f"{ms / bms:.1f}x",
                     f"{warm:.1f}", f"{bwarm:.1f}", f"{warm / bwarm:.2f}x", f"{bc:.0f}", f"{bbc:.0f}", f"{bc / bbc:.1f}x"])
        results[f"parse.{path.stem}.first_ratio"] = round(pre / bpre, 2)
        results[f"parse.{path.stem}.first_ms"] = round(pre, 1)
        results[f"parse.{path.stem}.first_ratio_without_preload"] = round(ms / bms, 2)
        results[f"parse.{path.stem}.first_ms_without_preload"] = round(ms, 1)
        results[f"parse.{path.stem}.reparse_ratio"] = round(warm / bwarm, 2)
        results[f"parse.{path.stem}.reparse_ms"] = round(warm, 1)
        results[f"parse.{path.stem}.first_ms_bytecode"] = round(bc, 1)
        results[f"parse.{path.stem}.first_ratio_bytecode"] = round(bc / bbc, 2)
    table(
        "DAG parse time per file (median of fresh-process parses)",
        ["DAG file", "DAGs", "tasks", "parse ms", "baseline ms", "ratio", "parse ms, no preload", "baseline ms",
         "ratio, no preload", "re-parse ms", "baseline re-parse ms", "re-parse ratio", "parse ms, bytecode",
         "baseline ms, bytecode", "ratio, bytecode"],
        rows,
        [f"{REPEATS} parses per file and per baseline, each in a new process; `airflow` imported before timing",
         "baseline: a generated file, one DAG with the same number of chained EmptyOperator tasks",
         "parse ms: the first parse in a process set up as the shipped dag-processor is"
         " (`python -m latticedb_deploy.dag_processor_preload`: this package's parse-time modules and the config"
         " read before the parsers fork); the baseline parsed in the same kind of process",
         "no preload: the first parse in a process as `airflow dag-processor` alone sets it up (imports"
         " latticedb_deploy + provider modules, reads the YAML config);"
         f" re-parse ms: the median of {REPARSES} more DagBags of the same file in that process (modules already"
         " imported; BENCH_PARSE_REPARSES), then the median over processes",
         f"bytecode: the first parse, no preload, of a compiled copy of dags/, plugins/ and include/ against a"
         f" compiled baseline ({BYTECODE_REPEATS} parses each, BENCH_PARSE_BYTECODE_REPEATS)"],
    )
    firsts = [v for k, v in results.items() if k.endswith(".first_ratio")]
    compiled_firsts = [v for k, v in results.items() if k.endswith(".first_ratio_bytecode")]
    plain_firsts = [v for k, v in results.items() if k.endswith(".first_ratio_without_preload")]
    reparses = [v for k, v in results.items() if k.endswith(".reparse_ratio")]
    if firsts:
        results["parse.max_first_ratio"], results["parse.max_reparse_ratio"] = max(firsts), max(reparses)
        results["parse.max_first_ratio_bytecode"] = max(compiled_firsts)
        results["parse.max_first_ratio_without_preload"] = max(plain_firsts)
    results["parse.repeats"], results["parse.reparses_per_process"] = REPEATS, REPARSES
    merge_results(results)


if __name__ == "__main__":
    sys.exit(main())
