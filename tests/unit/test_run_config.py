"""A run reads its config as it was when it started: the snapshot, not the file (latticedb_deploy.run_config)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from latticedb_deploy import run_config
from latticedb_deploy.config import ConfigError
from latticedb_deploy.triggers.metric_gate import MetricGateTrigger
from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger

REAL = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "latticedb.yaml"
    path.write_text(REAL.read_text())
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    return path


def test_a_snapshot_outlives_any_edit_of_the_file(config_file):
    snapshot = run_config.take()
    assert snapshot["path"] == str(config_file) and snapshot["text"] == REAL.read_text()
    cluster = run_config.environment("local", snapshot).cluster
    raw = yaml.safe_load(config_file.read_text())
    raw["environments"]["local"]["cluster"] = "renamed"
    config_file.write_text(yaml.safe_dump(raw))
    assert run_config.environment("local", None).cluster == "renamed"  # no snapshot: the file now
    assert run_config.environment("local", snapshot).cluster == cluster
    config_file.write_text("environments: [\n")
    with pytest.raises(ConfigError):
        run_config.environment("local", None)
    assert run_config.environment("local", snapshot).cluster == cluster
    config_file.unlink()
    assert run_config.config(snapshot).environment("production").name == "production"


def test_a_broken_file_cannot_be_snapshotted(config_file):
    config_file.write_text("environments: {local: {cluster: [}}\n")
    with pytest.raises(ConfigError, match=str(config_file)):
        run_config.take()
    config_file.unlink()
    with pytest.raises(ConfigError, match="not found"):
        run_config.take()


class _Ti:
    def __init__(self, store: dict):
        self.store = store

    def xcom_push(self, key, value):
        self.store[("notify_start", key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.store.get((task_ids, key))


class _Dag:
    def __init__(self, *task_ids: str):
        self.task_ids = task_ids

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_ids


class _Task:
    def __init__(self, task_id: str, dag):
        self.task_id, self.dag = task_id, dag


def test_the_first_task_takes_it_and_the_others_read_it(config_file):
    dag, store = _Dag("notify_start", "rollback.shift_traffic_back"), {}
    taken = run_config.for_task(_Task("notify_start", dag), {"ti": _Ti(store)})
    assert store[("notify_start", run_config.SNAPSHOT_KEY)] == taken
    config_file.write_text("broken: [\n")
    assert run_config.for_task(_Task("rollback.shift_traffic_back", dag), {"ti": _Ti(store)}) == taken
    # a DAG without the snapshot task (the operations DAGs) reads the file
    assert run_config.for_task(_Task("take_environment", _Dag("take_environment")), {"ti": _Ti(store)}) is None


def test_triggers_carry_the_snapshot_and_read_it(config_file):
    snapshot = run_config.take()
    config_file.write_text("broken: [\n")
    gate = MetricGateTrigger(environment="local", step=25, target_group_arn="arn:green", load_balancer_arn="arn:lb",
                             started_at=1000.0, interval_seconds=10, deadline=1040.0, config=snapshot)
    post = PostDeploymentChecksTrigger(environment="local", since=1.0, baseline_alarms=[], timeout_seconds=5,
                                       poll_seconds=1, config=snapshot)
    for trigger in (gate, post):
        classpath, kwargs = trigger.serialize()
        module, name = classpath.rsplit(".", 1)
        clone = getattr(importlib.import_module(module), name)(**kwargs)
        assert clone.serialize() == (classpath, kwargs) and kwargs["config"] == snapshot
        assert clone._env().name == "local"


class _CountingTi(_Ti):
    """A ti whose XCom reads are counted, as each is one request to the API server."""

    def __init__(self, store: dict):
        super().__init__(store)
        self.reads: list[tuple[str, str]] = []

    def xcom_pull(self, task_ids, key="return_value"):
        self.reads.append((task_ids, key))
        return super().xcom_pull(task_ids, key)


def _deployment_dag():
    from airflow.sdk import DAG

    from latticedb_deploy.operators.deploy import NotifyOperator

    with DAG(dag_id="snapshot_reads", schedule=None):
        start = NotifyOperator(task_id="notify_start", event="started", title="started", environment="local")
        step = NotifyOperator(task_id="deploy.some_step", event="x", title="x", environment="local")
        start >> step
    return start, step


def test_a_task_reads_the_snapshot_once_and_only_when_it_needs_the_config(config_file):
    start, step = _deployment_dag()
    store = {}
    start.pre_execute({"ti": _CountingTi(store)})  # the snapshot task takes it at once, whatever it reads later
    assert store[("notify_start", run_config.SNAPSHOT_KEY)]["text"] == config_file.read_text()
    config_file.write_text("broken: [\n")

    ti = _CountingTi(store)
    step.pre_execute({"ti": ti})
    assert ti.reads == []  # a resume that only reports its trigger's event stops here: no request
    assert step.env.name == "local" and step.config.environment("production").name == "production"
    assert ti.reads == [("notify_start", run_config.SNAPSHOT_KEY)]  # one read, for all of the try

    ti = _CountingTi(store)
    step.pre_execute({"ti": ti})  # the next try (or resume) reads it again, once
    assert step.env.name == "local" and ti.reads == [("notify_start", run_config.SNAPSHOT_KEY)]


def test_only_upstream_tasks_xcoms_are_read():
    from latticedb_deploy.operators.base import ran_before
    from latticedb_deploy.operators.best_effort import best_effort_warnings
    from latticedb_deploy.operators.deploy import revision_fields

    start, step = _deployment_dag()

    class _RunTi(_CountingTi):
        def __init__(self, task):
            super().__init__({})
            self.task = task

    assert ran_before(_RunTi(step), ("notify_start", "deploy.some_step", "elsewhere")) == ["notify_start"]
    ti = _RunTi(start)
    assert revision_fields(ti) == {} and best_effort_warnings(ti) == [] and ti.reads == []
    # outside a DAG (a hand-built ti) every one is read
    bare = _CountingTi({("prepare.register_task_definition", "return_value"): {"task_definition": "td/x:2", "digest": "d"}})
    assert revision_fields(bare) == {"New revision": "x:2", "Digest": "d"}
    assert [t for t, _ in bare.reads] == ["prepare.register_task_definition", "prepare.record_baseline"]
    warned = {"warning": True, "task": "record_deployment", "reason": "r"}
    assert best_effort_warnings(_CountingTi({}), known={"record_deployment": warned}) == [warned]


# This host's copy of the snapshot (latticedb_deploy.snapshot_cache): a run's later tasks on a host read it
# from disk instead of XCom, and only ever the snapshot of their own run incarnation.


@pytest.fixture
def host_copy(tmp_path, monkeypatch):
    from latticedb_deploy import snapshot_cache

    folder = tmp_path / "run-config"
    monkeypatch.setenv(snapshot_cache.CACHE_ENV_VAR, str(folder))
    return folder


def _run(clears: int = 0, started: str = "2026-12-07T10:00:00+00:00", run_id: str = "manual__1"):
    from datetime import datetime
    from types import SimpleNamespace

    return SimpleNamespace(dag_id="snapshot_reads", run_id=run_id, start_date=datetime.fromisoformat(started),
                           clear_number=clears)


def _read(task, store: dict, dag_run) -> tuple[dict | None, list]:
    ti = _CountingTi(store)
    return run_config.for_task(task, {"ti": ti, "dag_run": dag_run}), ti.reads


def test_a_runs_later_tasks_on_this_host_read_the_snapshot_from_disk(config_file, host_copy):
    start, step = _deployment_dag()
    store = {}
    taken = run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})
    assert not host_copy.exists()  # the snapshot task never keeps it: its retry takes a new one
    read, reads = _read(step, store, _run())
    assert read == taken and reads == [("notify_start", run_config.SNAPSHOT_KEY)]
    for _ in range(3):
        read, reads = _read(step, store, _run())
        assert read == taken and reads == []
    assert [p.stat().st_mode & 0o777 for p in host_copy.iterdir()] == [0o600]
    assert host_copy.stat().st_mode & 0o777 == 0o700
    # once the file is edited, the copy is not used: the run's snapshot comes from XCom, as without a copy
    config_file.write_text("broken: [\n")
    read, reads = _read(step, store, _run())
    assert read == taken and reads == [("notify_start", run_config.SNAPSHOT_KEY)]


@pytest.mark.parametrize("edit", [
    lambda text: text + "\n# edited\n",
    lambda text: text.replace("interval_seconds", "interval_seconds ", 1),
], ids=["comment", "whitespace"])
def test_a_snapshot_task_re_run_in_the_same_incarnation_is_what_later_tasks_read(config_file, host_copy, edit):
    """A clear with reset_dag_runs false, or dag.test() re-creating a run under the same logical date,
    re-runs notify_start without a new incarnation: after an edit, the old copy must not be read."""
    start, step = _deployment_dag()
    store = {}
    first = run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})
    assert _read(step, store, _run())[0] == first
    config_file.write_text(edit(config_file.read_text()))
    retaken = run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})
    assert retaken["sha256"] != first["sha256"]
    for _ in range(2):
        assert _read(step, store, _run())[0] == retaken
    assert _read(step, store, _run())[1] == []  # and the new one is kept


@pytest.mark.parametrize("other", [
    _run(clears=1),  # a clear re-runs whatever it cleared, the snapshot task included
    _run(started="2026-12-07T11:00:00+00:00"),  # a finished run cleared (Airflow restarts it) or re-created
    _run(run_id="manual__2"),
], ids=["cleared", "restarted", "another-run"])
def test_another_run_incarnation_reads_its_own_snapshot(config_file, host_copy, other):
    start, step = _deployment_dag()
    store = {}
    original = config_file.read_text()
    run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})
    first, _ = _read(step, store, _run())
    config_file.write_text(original + "\n# edited\n")
    retaken = run_config.for_task(start, {"ti": _Ti(store), "dag_run": other})
    assert retaken != first
    config_file.write_text(original)  # edited back: the first copy matches the file again
    read, reads = _read(step, store, other)
    assert read == retaken and reads == [("notify_start", run_config.SNAPSHOT_KEY)]  # told apart by the run
    assert _read(step, {}, _run()) == (first, [])  # the first incarnation's copy is its own


def _kept_file(folder):
    (path,) = list(folder.iterdir())
    return path


def _tamper_text(path):
    import json

    kept = json.loads(path.read_text())
    kept["snapshot"]["text"] += "\n# changed\n"
    path.write_text(json.dumps(kept))


def _name_another_run(path):
    import json

    kept = json.loads(path.read_text())
    kept["run"]["clear_number"] = 7
    path.write_text(json.dumps(kept))


@pytest.mark.parametrize("spoil", [
    _tamper_text,  # the text no longer matches its sha256
    _name_another_run,  # a copy of another incarnation's file
    lambda path: path.write_text("{not json"),
    lambda path: path.write_text("[]"),
    lambda path: path.parent.chmod(0o777),  # a directory others can write to: nothing in it is trusted
    lambda path: path.parent.chmod(0o750),
], ids=["text-changed", "other-run", "not-json", "not-a-mapping", "dir-world-writable", "dir-group-readable"])
def test_a_copy_that_cannot_be_trusted_is_a_miss_never_an_error(config_file, host_copy, spoil):
    start, step = _deployment_dag()
    store = {}
    taken = run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})
    _read(step, store, _run())
    spoil(_kept_file(host_copy))
    read, reads = _read(step, store, _run())
    assert read == taken and reads == [("notify_start", run_config.SNAPSHOT_KEY)]


def test_a_host_where_no_copy_can_be_kept_reads_xcom(config_file, host_copy, monkeypatch):
    import os
    import tempfile

    start, step = _deployment_dag()
    store = {}
    taken = run_config.for_task(start, {"ti": _Ti(store), "dag_run": _run()})

    def full(*args):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full)
        for _ in range(2):
            assert _read(step, store, _run()) == (taken, [("notify_start", run_config.SNAPSHOT_KEY)])
    assert list(host_copy.iterdir()) == []  # nothing half written left behind
    monkeypatch.delenv("LATTICEDB_RUN_CONFIG_CACHE")

    def nowhere():
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", nowhere)
    for _ in range(2):
        assert _read(step, store, _run()) == (taken, [("notify_start", run_config.SNAPSHOT_KEY)])


def test_no_copy_without_a_run_to_name_or_when_turned_off(config_file, host_copy, monkeypatch):
    start, step = _deployment_dag()
    store = {}
    run_config.for_task(start, {"ti": _Ti(store)})
    for dag_run in (None, _run(clears=None)):
        for _ in range(2):
            assert _read(step, store, dag_run)[1] == [("notify_start", run_config.SNAPSHOT_KEY)]
    assert not host_copy.exists()
    monkeypatch.setenv("LATTICEDB_RUN_CONFIG_CACHE", "off")
    for _ in range(2):
        assert _read(step, store, _run())[1] == [("notify_start", run_config.SNAPSHOT_KEY)]
    assert not host_copy.exists()


def test_a_missing_snapshot_is_not_kept_and_old_copies_are_removed(config_file, host_copy):
    import os
    import time

    from latticedb_deploy import snapshot_cache

    _, step = _deployment_dag()
    assert _read(step, {}, _run()) == (None, [("notify_start", run_config.SNAPSHOT_KEY)])
    assert not host_copy.exists()  # no snapshot task ran: nothing to keep
    store = {("notify_start", run_config.SNAPSHOT_KEY): run_config.take()}
    _read(step, store, _run())
    old = _kept_file(host_copy)
    stale = time.time() - snapshot_cache.KEEP_SECONDS - 60
    os.utime(old, (stale, stale))
    _read(step, store, _run(run_id="manual__2"))
    assert len(list(host_copy.iterdir())) == 1 and not old.exists()
