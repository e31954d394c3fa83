"""Running a DAG to completion in this process with `dag.test()`, as tests and benchmarks do, and reading
what it left (XCom). The quick_* helpers only shorten what is Airflow's own overhead under dag.test()
(its 1 s idle poll, its re-parse and re-sync of every DAG per call, its re-check of every Param schema
against the metaschema); what runs, in which order, and every product wait stay as they are."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


DAG_TEST_POLL_SECONDS = 0.1
_DAG_TEST_FILE = ("airflow", "sdk", "definitions", "dag.py")


def quick_dag_test_polls() -> None:
    """dag.test()'s own loop (airflow/sdk/definitions/dag.py, DAG.test) sleeps 1 s whenever no task is
    ready: while upstream_failed spreads down a failed run one task per pass (a canary has ~60 tasks),
    while a task waits out its retry delay, while it waits for human input. Shorten only that sleep,
    recognised by its caller; what runs, in which order and when a task is ready stay dag.test()'s
    own, and every other sleep (the product's retries, smoke-test delays, the emulator) is untouched."""
    import sys
    import time

    if getattr(time.sleep, "_latticedb_quick", False):
        return
    real = time.sleep

    def sleep(seconds: float) -> None:
        caller = sys._getframe(1).f_code
        if caller.co_name == "test" and caller.co_filename.endswith("/".join(_DAG_TEST_FILE)):
            seconds = min(seconds, DAG_TEST_POLL_SECONDS)
        real(seconds)

    sleep._latticedb_quick = True
    time.sleep = sleep


GC_THRESHOLDS = (7000, 20, 100)  # CPython's defaults: (700, 10, 10)


def fewer_gc_passes() -> None:
    """A test process holds a large, long-lived heap (eleven parsed DAGs, SQLAlchemy state, boto3 models),
    and CPython's default thresholds ran a full collection over it every few seconds of dag.test(): in
    one process running tests/integration/test_canary.py, 18 full collections took 5.6 s and all of the
    collector 6.6 s of its 41 s of CPU. Collecting less often (GC_THRESHOLDS): 2.2 s and 34 s, for
    some more memory between passes. Cycles are still collected; no test's behaviour depends on when."""
    import gc

    if gc.get_threshold() != GC_THRESHOLDS:
        gc.set_threshold(*GC_THRESHOLDS)


def quick_param_schema_checks() -> None:
    """Airflow validates every Param with `jsonschema.validate`, which first checks the *schema* against
    the JSON Schema metaschema, on every call. Serializing a DAG compares each task's params with the
    DAG's (ParamsDict.__eq__ and __repr__ resolve every param), so dag.test() serializing a canary
    (68 tasks x 10 params) spent 1.4 s of CPU re-checking the same ten schemas; it does that once per
    run and once per task it starts. Here a schema that passed its metaschema check once is not checked
    again in this process: every *value* is still validated against it exactly as before, and an
    invalid schema still raises every time (only passing checks are remembered)."""
    import json

    import jsonschema

    if getattr(jsonschema.validate, "_latticedb_quick", False):
        return
    checked: set = set()

    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is None:
            cls = jsonschema.validators.validator_for(schema)
        try:
            key = (cls, json.dumps(schema, sort_keys=True))
        except (TypeError, ValueError):
            key = None
        if key is None or key not in checked:
            cls.check_schema(schema)
            if key is not None:
                checked.add(key)
        error = jsonschema.exceptions.best_match(cls(schema, *args, **kwargs).iter_errors(instance))
        if error is not None:
            raise error

    validate._latticedb_quick = True
    jsonschema.validate = validate


def _dag_sources_fingerprint() -> tuple:
    """What parsing the DAG folder reads: the DAG files, the plugins, the config (LATTICEDB_CONFIG or
    the default) and the LATTICEDB_* environment; by path, size and mtime."""
    import os

    root = ROOT
    config = os.environ.get("LATTICEDB_CONFIG") or str(root / "include" / "config" / "latticedb.yaml")
    stats = []
    for top in (root / "dags", root / "plugins"):
        for dirpath, _, files in os.walk(top):
            stats += [(f"{dirpath}/{f}", os.stat(f"{dirpath}/{f}").st_size, os.stat(f"{dirpath}/{f}").st_mtime_ns)
                      for f in files if f.endswith(".py")]
    try:
        st = os.stat(config)
        stats.append((config, st.st_size, st.st_mtime_ns))
    except OSError:
        stats.append((config, None, None))
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("LATTICEDB_")))
    return tuple(sorted(stats)), env


def quick_dag_test_syncs() -> None:
    """dag.test() parses the whole DAG folder and writes every DAG to the metadata DB on every call
    (apache/airflow#64884, so a TriggerDagRunOperator's target exists): about 1.3 s of CPU per run,
    a quarter of the suite's. In a test process the sources rarely change between runs, so the folder
    is parsed and synced again only when they did (`_dag_sources_fingerprint`: DAG files, plugins,
    config, LATTICEDB_* variables); otherwise the same bag, already in this process's DB, is reused.
    What dag.test() runs, and the DAG it runs (the test's own DAG object), are unchanged."""
    import airflow.dag_processing.dagbag as dagbag_module

    if getattr(dagbag_module.sync_bag_to_db, "_latticedb_quick", False):
        return
    real_bag, real_sync = dagbag_module.BundleDagBag, dagbag_module.sync_bag_to_db
    bags: dict = {}
    synced: set = set()

    def bundle_dag_bag(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())), _dag_sources_fingerprint())
        if key not in bags:
            bags.clear()
            bags[key] = real_bag(*args, **kwargs)
        return bags[key]

    def sync_bag_to_db(dagbag, bundle_name, bundle_version, *args, **kwargs):
        key = (id(dagbag), bundle_name, bundle_version)
        if key in synced and any(b is dagbag for b in bags.values()):
            return None
        result = real_sync(dagbag, bundle_name, bundle_version, *args, **kwargs)
        synced.add(key)
        return result

    sync_bag_to_db._latticedb_quick = True
    dagbag_module.BundleDagBag, dagbag_module.sync_bag_to_db = bundle_dag_bag, sync_bag_to_db


def _params_of(dag) -> list:
    params = [dag.params.get_param(k) for k in dag.params]
    params += [t.params.get_param(k) for t in dag.tasks for k in (t.params or {})]
    return list({id(p): p for p in params}.values())


def _print_timings(dr, cpu_seconds: float) -> None:
    """LATTICEDB_TEST_TIMINGS=1 (with pytest -s): each task's start offset and duration, and the run's
    CPU in this process, to see where a test's time goes. LATTICEDB_TEST_TIMINGS=<file.jsonl> appends
    the same as JSON lines instead (works under xdist): benchmarks/suite_waits.py sums them by task."""
    target = os.environ.get("LATTICEDB_TEST_TIMINGS", "")
    if target not in ("", "1"):
        _append_timings(Path(target), dr, cpu_seconds)
        return
    for ti in sorted(dr.get_task_instances(), key=lambda t: t.start_date or dr.end_date):
        took = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
        offset = (ti.start_date - dr.start_date).total_seconds() if ti.start_date else None
        print(f"TIMING {ti.task_id:50s} {ti.state or '-':16s} start+{offset} took {took} tries {ti.try_number}")
    print(f"TIMING run {(dr.end_date - dr.start_date).total_seconds():.1f}s wall, {cpu_seconds:.1f}s CPU in this process")


def _append_timings(path: Path, dr, cpu_seconds: float) -> None:
    import json

    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    rows = [{"test": test, "dag_id": dr.dag_id, "task_id": ti.task_id, "state": ti.state,
             "seconds": (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else 0.0}
            for ti in dr.get_task_instances()]
    rows.append({"test": test, "dag_id": dr.dag_id, "task_id": None, "state": dr.state,
                 "seconds": (dr.end_date - dr.start_date).total_seconds(), "cpu_seconds": cpu_seconds})
    with path.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def run_dag_run(dagbag, dag_id: str, conf: dict):
    """Run a DAG to completion with `dag.test()` and return the DagRun.

    dag.test() leaves a run's conf in the DAG's shared Param objects; put the defaults back
    so one test's conf (say strict=true) never leaks into the next.
    """
    quick_dag_test_polls()
    quick_dag_test_syncs()
    quick_param_schema_checks()
    fewer_gc_passes()
    dag = dagbag.dags[dag_id]
    saved = [(p, p.value) for p in _params_of(dag)]
    try:
        started = time.process_time()
        dr = dag.test(run_conf=conf)
        if os.environ.get("LATTICEDB_TEST_TIMINGS"):
            _print_timings(dr, time.process_time() - started)
        return dr
    finally:
        for param, value in saved:
            param.value = value


def run_dag(dagbag, dag_id: str, conf: dict):
    """Run a DAG to completion; return (run state, {task_id: state})."""
    dr = run_dag_run(dagbag, dag_id, conf)
    return dr.state, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
    """A task's XCom value as the UI shows it."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=task_id, key=key)).first()
        return XComModel.deserialize_value(row) if row is not None else None
