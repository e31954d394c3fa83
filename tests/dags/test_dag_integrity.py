"""DAG integrity: every DAG imports cleanly, is tagged, retries, and documents its params."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def bag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(bag):
    assert bag.import_errors == {}
    assert len(bag.dags) >= len(DAG_FILES)


def test_every_dag_is_tagged_and_owned(bag):
    for dag_id, dag in bag.dags.items():
        assert "latticedb" in dag.tags, dag_id
        assert dag.description, dag_id


def test_every_task_retries(bag):
    for dag_id, dag in bag.dags.items():
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_params_have_titles_and_descriptions(bag):
    for dag_id, dag in bag.dags.items():
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.schema.get("title") and param.description, f"{dag_id} param {name!r}"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy(dag_file):
    """Parsing a DAG file must not import boto3/botocore or talk to the network."""
    code = (
        "import sys, runpy; sys.path.insert(0, {!r}); runpy.run_path({!r}); "
        "heavy = [m for m in ('boto3', 'botocore', 'requests', 'slack_sdk') if m in sys.modules]; "
        "print(','.join(heavy))"
    ).format(str(ROOT / "plugins"), str(dag_file))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{dag_file.name} imports {out.stdout.strip()} at parse time"


def test_rolling_dag_shape(bag):
    dag = bag.dags["latticedb_deploy_rolling"]
    ids = set(dag.task_ids)
    assert {"preflight.verdict", "deploy.update_service", "deploy.wait_for_rollout", "rollback.restore_previous_revision"} <= ids
    assert dag.get_task("rollback.restore_previous_revision").trigger_rule == "one_failed"
    assert dag.params.get_param("environment").schema["enum"] == [
        "local", "dev", "staging", "production", "local-staging", "local-prod", "local-2", "local-3", "local-4", "local-5", "local-6", "local-7", "local-8", "local-9", "local-10",  # + local_copies
    ]


DEPLOYMENT_DAGS = ("latticedb_deploy_rolling", "latticedb_deploy_canary", "latticedb_deploy_blue_green")


@pytest.mark.parametrize("dag_id", DEPLOYMENT_DAGS)
def test_every_step_reads_its_inputs_from_an_upstream_task(bag, dag_id):
    """Data flows through arguments: each step's inputs are XComArgs of a task it depends on directly,
    so renaming or removing that task breaks the DAG when it is parsed, not a run."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    from latticedb_deploy.operators.base import DeploymentStepOperator
    from latticedb_deploy.sensors.ecs_rollout import EcsRolloutSensor

    dag = bag.dags[dag_id]
    expected = {"baseline": "prepare.record_baseline", "new_revision": "prepare.register_task_definition"}
    steps = [t for t in dag.tasks if isinstance(t, DeploymentStepOperator)]
    assert len(steps) >= 7, [t.task_id for t in steps]  # register, deploy steps, smoke, cleanup x2, watch, rollback
    for task in steps:
        given = {f: getattr(task, f) for f in expected if getattr(task, f) is not None}
        assert given, f"{task.task_id} is given neither input"
        for field, arg in given.items():
            assert isinstance(arg, XComArg) and arg.operator.task_id == expected[field], (task.task_id, field, arg)
            assert expected[field] in task.upstream_task_ids, (task.task_id, field)
    waits = [t for t in dag.tasks if isinstance(t, EcsRolloutSensor)]
    assert waits
    for wait in waits:  # each rollout wait watches what the task right before it started
        assert isinstance(wait.rollout, XComArg) and wait.rollout.operator.task_id in wait.upstream_task_ids, wait.task_id
    restore = dag.task_dict["rollback.restore_previous_revision"]
    assert dag.task_dict["rollback.shift_traffic_back"].restore.operator is restore
    assert dag.task_dict["rollback.notify_rollback"].restore.operator is restore


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_task_has_its_own_copy_of_the_dag_params(bag, dag_file):
    """Every DAG's tasks are built with the params attached afterwards (factory.params_copied_once): each
    task still ends with the DAG's params, as "dag" params, in objects of its own (a run's values are
    resolved into a task's Param objects), and an approval's form keeps none of them."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    [dag] = [d for d in bag.dags.values() if Path(d.fileloc).name == dag_file.name]
    seen: dict[int, str] = {id(dag.params.get_param(name)): "the DAG" for name in dag.params}
    for task in dag.tasks:
        if isinstance(task, HITLOperator):
            assert not set(task.params) & set(dag.params), task.task_id
            continue
        assert task.params.dump() == dag.params.dump(), task.task_id
        for name in dag.params:
            param = task.params.get_param(name)
            assert param.source == "dag" and param.schema == dag.params.get_param(name).schema, (task.task_id, name)
            assert id(param) not in seen, f"{task.task_id} shares its {name!r} Param with {seen[id(param)]}"
            seen[id(param)] = task.task_id


def test_a_value_resolved_into_one_tasks_params_stays_there():
    """What a run's conf does to a task's params (resolved into its Param objects, or a default list
    changed in place by user code) reaches no other task and not the DAG."""
    from airflow.dag_processing.dagbag import DagBag

    [dag] = DagBag(dag_folder=str(ROOT / "dags" / "latticedb_post_deployment_watch.py")).dags.values()
    first, second = dag.task_dict["watch_1h"], dag.task_dict["watch_6h"]
    default = list(dag.params["offsets_seconds"])
    first.params["environment"] = "staging"
    first.params["offsets_seconds"][0] = 60  # the default list (a Param value), changed in place
    assert first.params["offsets_seconds"] == [60, *default[1:]]
    assert second.params["environment"] == dag.params["environment"] == "local"
    assert second.params["offsets_seconds"] == dag.params["offsets_seconds"] == default


def test_params_copied_once_serializes_every_dag_as_airflows_own_merge(monkeypatch):
    """Each DAG file built with factory.params_copied_once serializes byte for byte as it does when
    Airflow merges the params into every operator itself (the helper replaced by a no-op)."""
    import contextlib
    import json

    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    from latticedb_deploy import factory

    def serialized() -> dict:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert not bag.import_errors and len(bag.dags) == len(DAG_FILES)
        return {dag_id: json.dumps(DagSerialization.to_dict(dag), sort_keys=True, default=str)
                for dag_id, dag in bag.dags.items()}

    ours = serialized()
    monkeypatch.setattr(factory, "params_copied_once", lambda dag: contextlib.nullcontext())
    airflows = serialized()
    assert ours.keys() == airflows.keys()
    for dag_id in ours:
        assert ours[dag_id] == airflows[dag_id], dag_id


def test_deployments_rollbacks_and_service_runs_go_in_several_environments_at_once(bag):
    """One environment's long run (a production canary of an hour, an emergency rollback's 30 min rollout) never
    queues another environment's run of the same DAG; within one environment the lease refuses a second run
    (tests/unit/test_locks.py, tests/integration/test_one_deployment_per_environment.py; in a running Airflow,
    tests/e2e/test_1_rest_api.py)."""
    from latticedb_deploy.config import load_config

    deployments = [d for d in bag.dags if d.startswith("latticedb_deploy_")]
    assert len(deployments) == 3, deployments  # rolling, blue/green, canary (progressive delivery spans environments)
    for dag_id in ("latticedb_rollback", "latticedb_service", *deployments):
        assert bag.dags[dag_id].max_active_runs >= len(load_config().environments), dag_id
