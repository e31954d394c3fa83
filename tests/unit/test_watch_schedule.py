"""Which follow-up watch a succeeded deployment schedules (latticedb_deploy.watch_schedule): pure logic."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import load_config
from latticedb_deploy.watch_schedule import watch_request, watch_run_id, why_not_watched

REAL = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"
AT = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def test_production_is_watched_at_1h_6h_24h_with_the_deployment_identity():
    env = load_config(REAL).environment("production")
    assert why_not_watched(env) is None
    req = watch_request(
        env, dag_id="latticedb_deploy_canary", run_id="manual__2026-11-26T08:00:00+00:00", deployed_at=AT,
        version="v2.0.0", image="123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb@sha256:abc",
        revision="latticedb-task-production:42", run_link="http://airflow/dags/latticedb_deploy_canary/runs/x",
    )
    assert req.run_id == "watch__latticedb_deploy_canary__manual__2026-11-26T08:00:00+00:00"
    assert req.conf == {
        "environment": "production", "deployment": "latticedb_deploy_canary/manual__2026-11-26T08:00:00+00:00",
        "version": "v2.0.0", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb@sha256:abc",
        "revision": "latticedb-task-production:42", "deployment_url": "http://airflow/dags/latticedb_deploy_canary/runs/x",
        "deployed_at": "2026-11-26T09:00:00+00:00", "offsets_seconds": [3600, 21600, 86400],
    }
    assert req.summary() == "1h at 2026-11-26 10:00:00Z, 6h at 2026-11-26 15:00:00Z, 24h at 2026-11-27 09:00:00Z"


def test_other_environments_say_why_they_are_not_watched(tmp_path):
    cfg = load_config(REAL)
    assert why_not_watched(cfg.environment("staging")) == (
        "no post-deployment watch in staging: post_deployment.watch_offsets_seconds is unset (on by default in production only)")
    with pytest.raises(ValueError, match="no post-deployment watch in local"):
        watch_request(cfg.environment("local"), dag_id="d", run_id="r", deployed_at=AT)
    raw = yaml.safe_load(REAL.read_text())
    raw["environments"]["production"]["post_deployment"]["watch_offsets_seconds"] = []
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert why_not_watched(load_config(path).environment("production")).endswith("watch_offsets_seconds is empty")


def test_the_run_id_is_the_deployment_s_own_and_fits_airflow():
    assert watch_run_id("latticedb_deploy_rolling", "manual__x") == "watch__latticedb_deploy_rolling__manual__x"
    assert len(watch_run_id("d" * 200, "r" * 200)) == 250
