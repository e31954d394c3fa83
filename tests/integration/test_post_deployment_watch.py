"""Issue 15, the post-deployment watch (runbook: "monitor for 24 hours"), with compressed offsets:
each check defers until its moment, judges the live slot against the SLO and posts a verdict; a
breach posts an alert naming the deployment and offering latticedb_rollback. Real dag.test() runs
against the local environment; names from the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom
from tests.integration.triggered_runs import executing_triggered_runs

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_post_deployment_watch"
CHECKS = ("watch_1h", "watch_6h", "watch_24h")
CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def _conf(env, deployed_at: datetime, offsets: list[int]) -> dict:
    return {
        "environment": env.name, "deployment": "latticedb_deploy_canary/manual__test", "version": "v1.0.0",
        "deployed_at": deployed_at.isoformat(), "offsets_seconds": offsets, "window_seconds": 20,
    }


def test_watch_posts_a_verdict_at_each_offset(local, dagbag):
    env = load_config().environment(ENV.name)
    deployed_at = datetime.now(UTC)
    offsets = [25, 27, 29]  # metrics of a whole window exist by then
    dr = run_dag_run(dagbag, DAG_ID, _conf(env, deployed_at, offsets))
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    for task_id, offset in zip(CHECKS, offsets, strict=True):
        result = xcom(DAG_ID, dr.run_id, task_id)
        assert result["verdict"] == "pass" and result["live_service"] == env.service, result
        # judged no earlier than its moment (it waited, deferred, for it)
        assert tis[task_id].end_date >= deployed_at + timedelta(seconds=offset)
    texts = local.message_texts()
    for label in ("1h", "6h", "24h"):
        assert any(f"Post-deployment watch {label}: OK" in t for t in texts), texts


def test_a_breach_alerts_naming_the_deployment_and_offering_the_rollback(local, dagbag):
    env = load_config().environment(ENV.name)
    local.faults(slot_errors={env.load_balancer.blue_target_group: 0.5})
    try:
        dr = run_dag_run(dagbag, DAG_ID, _conf(env, datetime.now(UTC), [25, 25, 25]))
    finally:
        local.faults(slot_errors=None)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert all(states[t] == "failed" for t in CHECKS), states
    assert xcom(DAG_ID, dr.run_id, "watch_1h")["verdict"] == "fail"
    alerts = [t for t in local.message_texts() if "SLO breach 1h after deployment" in t]
    assert alerts, local.message_texts()
    assert "latticedb_deploy_canary/manual__test" in alerts[0] and "latticedb_rollback" in alerts[0], alerts[0]


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """A config copy in which `local` (so this worker's copy of it too) has the watch, compressed to 2, 4, 6 s."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["environments"]["local"]["post_deployment"]["watch_offsets_seconds"] = [2, 4, 6]
    raw["environments"]["local"]["deployment_log"] = str(tmp_path / "DEPLOYMENT_LOG.md")
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    return [2, 4, 6]


def _sync_and_unpause(dag_id: str) -> None:
    """Write the DAGs to the metadata DB as dag.test() does, and unpause `dag_id` as its user would
    (new DAGs start paused: a paused watch's run would wait for it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.settings import Session
    from sqlalchemy import update

    manager = DagBundlesManager()
    with Session() as session:
        manager.sync_bundles_to_db(session=session)
        session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)
    with Session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))
        session.commit()


def test_a_successful_deployment_schedules_the_watch_and_it_posts_its_verdicts(local, dagbag, watched):
    """schedule_post_deployment_watch triggers the watch with the deployment's identity and does not
    wait for it; the watch run (executed as a scheduler would, tests/integration/triggered_runs.py)
    checks at its compressed offsets and posts a verdict for each."""
    from airflow.models.dagrun import DagRun
    from airflow.settings import Session
    from sqlalchemy import select

    deploy_dag = "latticedb_deploy_rolling"
    _sync_and_unpause(DAG_ID)
    with executing_triggered_runs([DAG_ID], max_runs=1, timeout=300, finish_timeout=300) as child:
        dr = run_dag_run(dagbag, deploy_dag, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    tasks = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "success", {t: ti.state for t, ti in tasks.items()}
    assert tasks["schedule_post_deployment_watch"].state == "success"
    scheduled = xcom(deploy_dag, dr.run_id, "schedule_post_deployment_watch", key="watch")
    watch_run_id = f"watch__{deploy_dag}__{dr.run_id}"
    assert scheduled["run_id"] == watch_run_id and scheduled["paused"] is False, scheduled
    link = xcom(deploy_dag, dr.run_id, "schedule_post_deployment_watch", key="_link_WatchRunLink")
    assert link.endswith(f"/dags/{DAG_ID}/runs/{watch_run_id}"), link  # the "Triggered DAG" link (WatchRunLink)
    # Not waited for: the deployment finished before its watch did.
    assert child["runs"] == [(DAG_ID, watch_run_id, "success")], child.get("output")

    with Session() as session:
        watch = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == watch_run_id))
        conf, watch_ended = dict(watch.conf), watch.end_date
        ended = {ti.task_id: ti.end_date for ti in watch.get_task_instances(session=session)}
    assert watch_ended > tasks["schedule_post_deployment_watch"].end_date
    new = xcom(deploy_dag, dr.run_id, "prepare.register_task_definition")
    deployed_at = datetime.fromisoformat(conf["deployed_at"])
    assert conf["environment"] == ENV.name and conf["deployment"] == f"{deploy_dag}/{dr.run_id}"
    assert conf["version"] == "v2.0.0" and conf["image"] == new["image"] and local.digest("v2.0.0") in conf["image"]
    assert conf["revision"] == new["task_definition"].split("/")[-1] and conf["offsets_seconds"] == watched
    assert conf["deployment_url"].endswith(f"/dags/{deploy_dag}/runs/{quote(dr.run_id, safe='')}"), conf
    for task_id, offset in zip(CHECKS, watched, strict=True):
        result = xcom(DAG_ID, watch_run_id, task_id)
        assert result["verdict"] == "pass" and result["live_service"] == ENV.service, result
        assert result["deployment"] == f"{deploy_dag}/{dr.run_id}" and result["version"] == "v2.0.0"
        assert ended[task_id] >= deployed_at + timedelta(seconds=offset)  # judged no earlier than its moment
    texts = local.message_texts()
    for label in ("1h", "6h", "24h"):
        verdict = [t for t in texts if f"Post-deployment watch {label}: OK" in t]
        assert verdict and f"{deploy_dag}/{dr.run_id} (v2.0.0)" in verdict[0] and conf["revision"] in verdict[0], texts
    success = next(t for t in texts if "rolling deployment succeeded" in t)
    assert "warning" not in success and f"Post-deployment watch: 1h at {deployed_at + timedelta(seconds=2):%Y-%m-%d %H:%M:%S}Z" in success, success
