"""Issue 15, "rolling is not for production": an environment's allowed_strategies refuse a run at
pre-flight, before anything changes, with the reason (real dag.test() runs against the local environment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, load_config
from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"


@pytest.fixture
def rolling_not_allowed(tmp_path, monkeypatch):
    """A copy of the config in use whose `local` environment allows canary and blue/green only."""
    source = Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
    raw = yaml.safe_load(source.read_text())
    raw["environments"]["local"]["allowed_strategies"] = ["canary", "blue_green"]
    if raw.get("nightly", {}).get("environment") == "local":
        raw["nightly"]["strategy"] = "canary"
    for stage in (raw.get("progressive_delivery") or {}).get("stages", []):
        if stage["environment"] == "local" and stage["strategy"] == "rolling":
            stage["strategy"] = "canary"
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv(CONFIG_ENV_VAR, str(path))
    return load_config().environment(ENV.name)


def _aws_state(local, env):
    """What an operator would compare in the console: revisions, both slots, listener weights."""
    ecs = local.client("ecs")
    revisions = ecs.list_task_definitions(familyPrefix=env.task_family)["taskDefinitionArns"]
    slots = {
        s["serviceName"]: (s["taskDefinition"], s["desiredCount"], len(s["deployments"]))
        for s in ecs.describe_services(cluster=env.cluster, services=list(env.services))["services"]
    }
    return revisions, slots, local.weights()


def test_rolling_run_to_an_environment_that_disallows_it_fails_at_preflight(local, dagbag, rolling_not_allowed):
    env = rolling_not_allowed
    before = _aws_state(local, env)
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": env.name})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert tasks["preflight.check_strategy_allowed"] == "failed"
    assert tasks["preflight.verdict"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    assert tasks["deploy.update_service"] == "upstream_failed"
    assert tasks["rollback.restore_previous_revision"] == "skipped"
    result = xcom(DAG_ID, dr.run_id, "preflight.check_strategy_allowed")
    assert result["status"] == "fail", result
    assert f"rolling deployments are not allowed in {env.name}" in result["reason"]
    assert "allowed_strategies: canary, blue_green" in result["reason"]
    assert _aws_state(local, env) == before
    # The other checks still ran: the verdict lists everything wrong at once.
    assert tasks["preflight.check_image"] == "success"


def test_an_allowed_strategy_passes_the_check(local, dagbag):
    env = load_config().environment(ENV.name)
    assert "rolling" in env.allowed_strategies
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v9.9.9"), "environment": env.name})  # stops at check_image
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert tasks["preflight.check_strategy_allowed"] == "success"
    assert "rolling is allowed" in xcom(DAG_ID, dr.run_id, "preflight.check_strategy_allowed")["reason"]
