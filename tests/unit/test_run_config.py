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
