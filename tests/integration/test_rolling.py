"""latticedb_deploy_rolling against the local environment (moto server over HTTP)."""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.integration.helpers import image, run_dag

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"


def test_v2_rolls_out_on_a_new_revision_pinned_by_digest(local, dagbag):
    before = local.service()
    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    after = local.service()
    assert after["taskDefinition"] != before["taskDefinition"]
    assert local.task_definition_image(after["taskDefinition"]).endswith(f"{ENV.repository}@" + local.digest("v2.0.0"))
    assert after["runningCount"] == after["desiredCount"] == before["desiredCount"]
    texts = local.message_texts()
    assert any("rolling deployment started" in t for t in texts), texts
    assert any("rolling deployment succeeded" in t for t in texts), texts
    assert tasks["rollback.restore_previous_revision"] == "skipped"


def test_crashing_image_fails_and_rolls_back(local, dagbag):
    before = local.service()
    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.3.0-crash"), "environment": ENV.name})
    assert state == "failed"
    assert tasks["deploy.wait_for_rollout"] == "failed"
    assert tasks["rollback.restore_previous_revision"] == "success"
    assert tasks["rollback.wait_for_previous_revision"] == "success"
    after = local.service()
    assert after["taskDefinition"] == before["taskDefinition"]
    assert local.task_definition_image(after["taskDefinition"]).endswith(f"{ENV.repository}@" + local.digest("v1.0.0"))
    assert after["runningCount"] == after["desiredCount"]
    assert local.weights()[ENV.blue_tg] == 100
    texts = local.message_texts()
    assert any("Deployment failed at deploy.wait_for_rollout" in t for t in texts), texts
    assert any("Rollback started" in t for t in texts), texts
    assert any("Rollback finished" in t for t in texts), texts


@pytest.mark.parametrize(
    ("conf", "error"),
    [
        ({"image_uri": "latticedb:v2.0.0", "environment": ENV.name}, "image_uri"),
        ({"image_uri": image("v2.0.0"), "environment": "prod"}, "environment"),
    ],
)
def test_bad_input_is_refused_before_any_change(local, dagbag, conf, error):
    from airflow.sdk.exceptions import ParamValidationError

    revisions, service = local.revisions(), local.service()
    with pytest.raises(ParamValidationError, match=error):
        run_dag(dagbag, DAG_ID, conf)
    assert local.revisions() == revisions
    assert local.service()["taskDefinition"] == service["taskDefinition"]


def test_tag_missing_from_ecr_stops_at_preflight(local, dagbag):
    revisions, service = local.revisions(), local.service()
    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v9.9.9"), "environment": ENV.name})
    assert state == "failed"
    assert tasks["preflight.check_image"] == "failed"
    assert tasks["preflight.verdict"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    assert tasks["rollback.restore_previous_revision"] == "skipped"
    assert local.revisions() == revisions
    assert local.service()["taskDefinition"] == service["taskDefinition"]


def test_the_runs_tasks_on_one_host_read_its_config_snapshot_from_xcom_once(local, dagbag, tmp_path, monkeypatch):
    """Each task needs the run's config snapshot; on a host where a task of the run already read it, the
    others read this host's copy (latticedb_deploy.snapshot_cache), not XCom: one request, not one per task."""
    from harness.task_requests import TaskRequestCounter
    from latticedb_deploy import run_config, snapshot_cache

    copies = tmp_path / "run-config"
    monkeypatch.setenv(snapshot_cache.CACHE_ENV_VAR, str(copies))
    before = local.service()
    with TaskRequestCounter() as requests:
        state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success", tasks
    assert local.service()["taskDefinition"] != before["taskDefinition"]
    assert requests.xcom_reads[(run_config.SNAPSHOT_TASK_ID, run_config.SNAPSHOT_KEY)] == 1
    assert len(list(copies.iterdir())) == 1
    assert sum(state in ("success", "failed") for state in tasks.values()) > 20  # that many tasks used the config
