"""latticedb_progressive_delivery with both stages on `local` (a temp config): rolling, approval, canary.

The approval is marked successful by `dag.test(mark_success_pattern=...)` (under dag.test an
ApprovalOperator waits forever for an answer from the UI/REST API). Triggered strategy runs are
executed by tests/integration/triggered_runs.py, standing in for the scheduler.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import image, quick_dag_test_polls
from tests.integration.triggered_runs import executing_triggered_runs

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_progressive_delivery"
ROOT = Path(__file__).resolve().parents[2]
STRATEGY_DAGS = ["latticedb_deploy_rolling", "latticedb_deploy_canary"]


@pytest.fixture
def progressive_dag(tmp_path, monkeypatch, airflow_db):
    raw = yaml.safe_load((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    raw["progressive_delivery"] = {"stages": [
        {"environment": ENV.name, "strategy": "rolling"},
        {"environment": ENV.name, "strategy": "canary", "require_approval": True},
    ]}
    raw["environments"]["local"]["canary"] = {"traffic_steps": [50, 100], "interval_seconds": 6}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID]


def _run(dag, conf):
    # Under dag.test() (Airflow 3.3) the DAG-level failure callback's context validates the DAG's
    # params without the run's conf, so a required param without a default raises there (the
    # rollback and nightly tests do not hit it: the former's params were filled by earlier runs, the
    # latter has none). Give the test's DAG object the run's values as defaults.
    for key, value in conf.items():
        dag.params[key] = value
    quick_dag_test_polls()
    dr = dag.test(run_conf=conf, mark_success_pattern=r".*\.approval")
    return dr.state, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_graph_follows_the_configured_stages(progressive_dag):
    assert set(progressive_dag.task_ids) == {
        f"stage1_{ENV.name}_rolling.notify_start", f"stage1_{ENV.name}_rolling.deploy", f"stage1_{ENV.name}_rolling.notify_done",
        f"stage2_{ENV.name}_canary.notify_start", f"stage2_{ENV.name}_canary.notify_approval", f"stage2_{ENV.name}_canary.approval",
        f"stage2_{ENV.name}_canary.deploy", f"stage2_{ENV.name}_canary.notify_done",
    }
    assert progressive_dag.get_task(f"stage2_{ENV.name}_canary.deploy").trigger_dag_id == "latticedb_deploy_canary"
    assert progressive_dag.get_task(f"stage2_{ENV.name}_canary.notify_start").upstream_task_ids == {f"stage1_{ENV.name}_rolling.notify_done"}


def test_both_stages_deploy_with_a_notification_per_stage(local, progressive_dag):
    with executing_triggered_runs(STRATEGY_DAGS, max_runs=2, timeout=400) as child:
        state, tasks = _run(progressive_dag, {"image_uri": image("v2.0.0")})
    assert state == "success", (tasks, child.get("output"))
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_rolling", "success"), ("latticedb_deploy_canary", "success")]
    assert all(s == "success" for s in tasks.values()), tasks
    # rolling put v2.0.0 on blue; the canary then moved it to green and promoted it to 100 %.
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    texts = local.message_texts()
    for expected in (f"Stage 1/2: {ENV.name} (rolling) started", f"Stage 1/2: {ENV.name} (rolling) succeeded",
                     f"Stage 2/2: {ENV.name} (canary): approval needed", f"Stage 2/2: {ENV.name} (canary) succeeded"):
        assert any(expected in t for t in texts), (expected, texts)


def test_a_failed_stage_stops_promotion(local, progressive_dag):
    before = local.service()["taskDefinition"]
    with executing_triggered_runs(STRATEGY_DAGS, max_runs=1, timeout=300) as child:
        state, tasks = _run(progressive_dag, {"image_uri": image("v2.3.0-crash")})
    assert state == "failed"
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_rolling", "failed")]
    assert tasks[f"stage1_{ENV.name}_rolling.deploy"] == "failed"
    assert tasks[f"stage2_{ENV.name}_canary.approval"] == "upstream_failed"
    assert tasks[f"stage2_{ENV.name}_canary.deploy"] == "upstream_failed"
    assert local.service()["taskDefinition"] == before  # the rolling DAG's own rollback restored it


@pytest.fixture
def blue_green_first_dag(tmp_path, monkeypatch, airflow_db):
    """Stage 1: local with blue/green (its switch needs approval); stage 2: local with rolling."""
    raw = yaml.safe_load((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    raw["progressive_delivery"] = {"stages": [
        {"environment": ENV.name, "strategy": "blue_green"},
        {"environment": ENV.name, "strategy": "rolling"},
    ]}
    raw["environments"]["local"]["blue_green"] = {**raw["environments"]["local"]["blue_green"], "require_approval": True}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID]


def test_a_rejected_blue_green_approval_stops_promotion(local, blue_green_first_dag):
    """The blue/green run of stage 1 is rejected in the Airflow UI: that run ends "not deployed",
    stage 1 fails saying so, and stage 2 never starts (no rolling run is even triggered)."""
    import threading

    from tests.integration.helpers import xcom
    from tests.integration.test_blue_green import _answer_when_asked

    before = local.service()["taskDefinition"]
    stop = threading.Event()
    person = threading.Thread(target=_answer_when_asked, args=("latticedb_deploy_blue_green", "Reject", stop), daemon=True)
    person.start()
    try:
        # max_runs=2: were stage 2 triggered by mistake, it would run (and the assertions say so) rather than hang.
        with executing_triggered_runs(["latticedb_deploy_blue_green", "latticedb_deploy_rolling"], max_runs=2, timeout=240) as child:
            for key, value in {"image_uri": image("v2.0.0")}.items():
                blue_green_first_dag.params[key] = value
            dr = blue_green_first_dag.test(run_conf={"image_uri": image("v2.0.0")})
    finally:
        stop.set()
        person.join(5)
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert [(r[0], r[2]) for r in child["runs"]] == [("latticedb_deploy_blue_green", "failed")], child.get("output")
    assert dr.state == "failed", tasks
    assert tasks[f"stage1_{ENV.name}_blue_green.deploy"] == "failed"
    assert tasks[f"stage1_{ENV.name}_blue_green.notify_done"] == "upstream_failed"
    assert tasks[f"stage2_{ENV.name}_rolling.notify_start"] == "upstream_failed"
    assert tasks[f"stage2_{ENV.name}_rolling.deploy"] == "upstream_failed"
    outcome = xcom(DAG_ID, dr.run_id, f"stage1_{ENV.name}_blue_green.deploy", key="outcome")
    assert outcome == {"deployed": False, "outcome": "rejected", "reason": "rejected by On-call engineer"}
    # Production untouched: blue still serves everything on the old revision; green scaled back down.
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == before
    assert local.service(ENV.green_service)["desiredCount"] == 0
    texts = local.message_texts()
    assert any("Deployment rejected: not deployed" in t for t in texts), texts
    assert any(f"stage1_{ENV.name}_blue_green.deploy" in t and "NOT deployed (rejected: rejected by On-call engineer)" in t
               for t in texts), texts
    assert not any("Stage 2/2" in t for t in texts), texts


def test_the_local_route_is_local_staging_then_local_prod_with_approval(monkeypatch, airflow_db):
    monkeypatch.setenv("LATTICEDB_PROGRESSIVE_ROUTE", "local")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "latticedb_progressive_delivery.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    assert {"stage1_local-staging_rolling.deploy", "stage2_local-prod_canary.approval", "stage2_local-prod_canary.deploy"} <= set(dag.task_ids)
    assert "stage1_local-staging_rolling.approval" not in dag.task_ids
    assert dag.get_task("stage2_local-prod_canary.notify_start").upstream_task_ids == {"stage1_local-staging_rolling.notify_done"}
