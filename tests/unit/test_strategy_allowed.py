"""Pre-flight's strategy check: an environment's allowed_strategies, read from the file on disk."""

from __future__ import annotations

from pathlib import Path

import yaml

from latticedb_deploy.checks import check_strategy_allowed
from latticedb_deploy.config import load_config
from latticedb_deploy.preflight import FAIL, PASS

REAL = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def test_production_refuses_rolling_with_the_reason():
    prod = load_config(REAL).environment("production")
    result = check_strategy_allowed(prod, "", {"strategy": "rolling"})
    assert result.status == FAIL
    assert "rolling deployments are not allowed in production" in result.reason
    assert "allowed_strategies: canary, blue_green" in result.reason
    assert check_strategy_allowed(prod, "", {"strategy": "canary"}).status == PASS


def test_the_file_as_it_is_now_counts(tmp_path, monkeypatch):
    raw = yaml.safe_load(REAL.read_text())
    raw["environments"]["dev"]["allowed_strategies"] = ["blue_green"]
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw))
    dev = load_config(REAL).environment("dev")  # as parsed before the edit
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    result = check_strategy_allowed(dev, "", {"strategy": "canary"})
    assert result.status == FAIL and "use latticedb_deploy_blue_green" in result.reason
