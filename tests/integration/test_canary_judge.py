"""Canary versus baseline in real runs (issue 16): latticedb_deploy_canary against the local environment.

The subtle images hide under every fixed threshold (scenarios.yaml): with `judge.mode: both` (local's
default) the relative judge rolls them back at the first gate with its reason; with `absolute` they are
promoted, so the difference is the judge. A healthy release is promoted under `both`, its 100 % step
judged too (against the stable slot's window before the shift), and the blue/green bake judges the new
colour against the old one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_canary"
ENV = load_config().environment(ENV.name)
LB = ENV.load_balancer
# Two gated steps below 100 % at the local default interval (enough per-second samples for the judge).
PLAN = {"traffic_steps": [25, 50, 100], "environment": ENV.name}


def _run(dagbag, tag):
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image(tag), **PLAN})
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def _gate_records(dr, percent):
    return xcom(DAG_ID, dr.run_id, f"deploy.gate_{percent}pct", key="evaluations") or []


@pytest.mark.parametrize(
    "tag, metric, medians",
    [("v2.5.0-subtle-errors", "error rate", r"canary 0\.\d+% vs baseline 0\.\d+% \(median"),
     ("v2.6.0-subtle-latency", "latency", r"canary \d+ ms vs baseline \d+ ms \(median")],
)
def test_subtle_regression_is_rolled_back_at_the_first_gate_under_both(local, dagbag, tag, metric, medians):
    assert ENV.judge_mode == "both"
    before = local.service()
    dr, tasks = _run(dagbag, tag)
    assert dr.state == "failed", tasks
    assert tasks["deploy.gate_25pct"] == "failed"
    assert tasks["deploy.shift_traffic_to_50pct"] == "upstream_failed"
    assert tasks["rollback.restore_previous_revision"] == "success"
    assert local.weights() == {LB.blue_target_group: 100, LB.green_target_group: 0}
    assert local.service()["taskDefinition"] == before["taskDefinition"]
    # The verdict, readable where people look: XCom holds the table and the judge's classification.
    failed = [r for r in _gate_records(dr, 25) if r["verdict"] == "fail"]
    assert failed, _gate_records(dr, 25)
    rel = failed[-1]["relative"]
    assert rel["verdict"] == "fail" and rel["score"] < ENV.judge.marginal_score
    judged = {m["metric"]: m for m in rel["metrics"]}
    key = {"error rate": "error_rate", "latency": "latency"}[metric]
    assert judged[key]["classification"] == "High" and judged[key]["passed"] is False
    assert "baseline median" in failed[-1]["relative_table"]
    # Under the thresholds the window passed: the failure is the judge's alone.
    assert failed[-1]["error_rate"] < ENV.thresholds.max_error_rate
    assert failed[-1]["latency_ms"] < ENV.thresholds.max_p95_ms
    # The rollback message names the metric, both medians and the score.
    rollback = [m for m in local.message_texts() if "Rollback started" in m]
    assert rollback, local.message_texts()
    text = rollback[0]
    assert "25%" in text and "relative judge" in text and f"{metric} high" in text and "score" in text, text
    assert re.search(medians, text), text


def test_subtle_errors_are_promoted_under_absolute(local, dagbag, tmp_path, monkeypatch):
    raw = yaml.safe_load((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    raw["environments"]["local"].setdefault("judge", {})["mode"] = "absolute"
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    assert load_config().environment(ENV.name).judge_mode == "absolute"
    dr, tasks = _run(dagbag, "v2.5.0-subtle-errors")
    assert dr.state == "success", tasks
    assert local.weights() == {LB.green_target_group: 100, LB.blue_target_group: 0}
    records = _gate_records(dr, 25)
    assert records and all("relative" not in r for r in records)  # the judge never looked


def test_healthy_release_is_promoted_under_both(local, dagbag):
    dr, tasks = _run(dagbag, "v2.0.0")
    assert dr.state == "success", tasks
    assert local.weights() == {LB.green_target_group: 100, LB.blue_target_group: 0}
    # At 100 % the baseline serves nothing: it is judged on its last window before the shift.
    for percent in (25, 50, 100):
        judged = [r["relative"] for r in _gate_records(dr, percent) if "relative" in r]
        assert judged and judged[-1]["verdict"] == "pass", (percent, judged)
        assert all(m["classification"] in ("Pass", "Low") for m in judged[-1]["metrics"])


def _old_colour_has_served(local, periods: int) -> None:
    """Wait until the blue slot (live after the fixture's reset) has `periods` periods of traffic: a freshly
    reset environment's tasks take a while to start, and the bake judges the old colour on its history."""
    import time
    from datetime import UTC, datetime

    from latticedb_deploy.aws.cloudwatch import MetricsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient
    from tests.integration.background import wait_until

    traffic, metrics, since = TrafficClient(ENV), MetricsClient(ENV), time.time() - 600

    def served() -> bool:
        blue = traffic.slots()[0]
        got = metrics.target_group_samples(
            target_group_arns={"blue": blue.target_group_arn}, load_balancer_arn=traffic.load_balancer_arn(),
            start=datetime.fromtimestamp(since, UTC), end=datetime.now(UTC),
            statistic=ENV.metrics.latency_statistic, period=ENV.judge_period_seconds)["blue"]
        return len(got["error_rate"]) >= periods

    wait_until(served, 120, f"{periods} periods of traffic on blue", interval=1)


def test_blue_green_bake_judges_the_new_colour_against_the_old_one(local, dagbag):
    """The bake compares the new colour with the old one (kept warm, judged on its window before the
    switch): a subtle regression fails the bake and the listener goes back to the old colour."""
    dag_id = "latticedb_deploy_blue_green"
    _old_colour_has_served(local, ENV.judge.min_samples + 2)  # a judge needs the old colour's history
    dr = run_dag_run(dagbag, dag_id, {"image_uri": image("v2.5.0-subtle-errors"), "environment": ENV.name,
                                      "bake_seconds": 10, "require_approval": False})
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed", tasks
    assert tasks["deploy.switch_traffic"] == "success" and tasks["deploy.bake"] == "failed", tasks
    assert local.weights() == {LB.blue_target_group: 100, LB.green_target_group: 0}
    records = xcom(dag_id, dr.run_id, "deploy.bake", key="evaluations") or []
    failed = [r for r in records if r["verdict"] == "fail"]
    assert failed and failed[-1]["relative"]["verdict"] == "fail", records
    judged = {m["metric"]: m for m in failed[-1]["relative"]["metrics"]}
    assert judged["error_rate"]["classification"] == "High", judged
    assert failed[-1]["error_rate"] < ENV.thresholds.max_error_rate  # under the threshold: the judge's call alone
    rollback = [m for m in local.message_texts() if "Rollback started" in m]
    assert rollback and "relative judge" in rollback[0] and "error rate high" in rollback[0], local.message_texts()
