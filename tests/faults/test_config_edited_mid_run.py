"""The promise holds when someone edits the config file while a deployment is in flight.

A run reads the config as it was when it started (latticedb_deploy.run_config). For each edit a
person could save mid-run (a half-written file, the environment deleted, the cluster renamed) and
each strategy's point where production has changed, the run's own fault makes it fail *after* the
edit, and the rollback must still put 100 % of traffic back on the last good version: the edit is
saved the moment production first changes (the listener leaves 100 % blue, or the live service
gets a new revision), before the failing step. Read from the edited file, every one of these
rollbacks fails (checked by hand with run_config.SNAPSHOT_TASK_ID pointed elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import EditWhenProductionChanges, image, run_dag_run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BLUE_TG, GREEN_TG = ENV.blue_tg, ENV.green_tg


def _half_written(text: str) -> str:
    return text[: len(text) // 2] + "\n  broken: [\n"


def _environment_deleted(text: str) -> str:
    raw = yaml.safe_load(text)
    del raw["local_copies"]["names"][ENV.name]
    return yaml.safe_dump(raw, sort_keys=False)


def _cluster_renamed(text: str) -> str:
    raw = yaml.safe_load(text)
    raw["local_copies"]["names"][ENV.name] = {"cluster": "latticedb-renamed", "service": "latticedb-service-renamed"}
    return yaml.safe_dump(raw, sort_keys=False)


EDITS = {"half-written file": _half_written, "environment deleted": _environment_deleted,
         "cluster renamed": _cluster_renamed}

# (strategy, image, conf, the task that fails after the edit)
CASES = [
    ("canary", "v2.1.0-errors", {"traffic_steps": [50, 100], "interval_seconds": 4}, "deploy.gate_50pct"),
    ("blue_green", "v2.1.0-errors", {"bake_seconds": 4, "require_approval": False}, "deploy.bake"),
    ("rolling", "v2.3.0-crash", {}, "deploy.wait_for_rollout"),
]
MATRIX = [(s, i, c, t, e) for (s, i, c, t) in CASES for e in EDITS if s == "canary" or e == "half-written file"]


@pytest.mark.parametrize(("strategy", "tag", "conf", "failing", "edit"), MATRIX,
                         ids=[f"{m[0]}:{m[4].replace(' ', '-')}" for m in MATRIX])
def test_an_edit_mid_run_does_not_break_the_rollback(local, dagbag, tmp_path, monkeypatch, strategy, tag, conf, failing, edit):
    from latticedb_deploy.config import ConfigError, load_config

    path = tmp_path / "latticedb.yaml"
    path.write_text((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))
    before = local.service(ENV.service)
    editor = EditWhenProductionChanges(local, path, EDITS[edit], before["taskDefinition"])
    editor.start()
    try:
        dr = run_dag_run(dagbag, f"latticedb_deploy_{strategy}", {"image_uri": image(tag), "environment": ENV.name, **conf})
    finally:
        editor.stop()
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}

    # the edit was saved mid-run, and the file as saved is not this environment any more
    assert editor.edited.is_set(), states
    try:
        now = load_config().environment(ENV.name)
        assert (now.cluster, now.service) != (ENV.config.cluster, ENV.config.service)
    except ConfigError:
        pass
    # the run failed where its fault is, and its rollback ran to the end
    assert dr.state == "failed", states
    assert states[failing] == "failed", states
    rollback = {t: s for t, s in states.items() if t.startswith("rollback.")}
    assert rollback and all(s in ("success", "skipped") for s in rollback.values()), rollback
    assert rollback["rollback.notify_rollback"] == "success", rollback
    # 100 % on blue, running the last good revision; green at 0
    blue, green = local.service(ENV.service), local.service(ENV.green_service)
    assert local.weights() == {BLUE_TG: 100, GREEN_TG: 0}
    assert blue["taskDefinition"] == before["taskDefinition"]
    assert blue["runningCount"] == blue["desiredCount"] == before["desiredCount"]
    assert green["desiredCount"] == 0
    texts = local.message_texts()
    assert any("Rollback finished" in t for t in texts), texts
