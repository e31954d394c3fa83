"""The shared stages against the local environment: pre-flight (each check failing and passing),
smoke-test report, post-deployment checks and the deployment log, through real `dag.test()` runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_rolling"
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "latticedb.yaml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _xcom(run_id, task_id, key="return_value"):
    return xcom(DAG_ID, run_id, task_id, key)


def _run(dagbag, conf):
    dr = run_dag_run(dagbag, DAG_ID, conf)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def _snapshot(local):
    return local.revisions(), local.service()["taskDefinition"], local.service()["desiredCount"], local.weights()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Deployment log (relative `deployment_log` paths) and smoke reports go under tmp_path."""
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LATTICEDB_REPORT_DIR", str(tmp_path / "reports"))
    return tmp_path


@pytest.fixture
def outside_window(tmp_path, monkeypatch):
    """A copy of the config whose `local` environment may deploy any day but today and tomorrow (UTC):
    a run that starts just before midnight is still outside the window when its check runs."""
    raw = yaml.safe_load(CONFIG.read_text())
    weekday = datetime.now(UTC).weekday()
    closed = {DAYS[weekday], DAYS[(weekday + 1) % 7]}
    raw["environments"]["local"]["deployment_windows"] = {
        "timezone": "UTC",
        "allowed": [{"days": [d for d in DAYS if d not in closed], "start": "00:00", "end": "24:00"}],
    }
    raw["environments"]["local"]["deployment_log"] = str(tmp_path / "docs" / "DEPLOYMENT_LOG.md")
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    monkeypatch.setenv("LATTICEDB_REPORT_DIR", str(tmp_path / "reports"))
    return tmp_path / "docs" / "DEPLOYMENT_LOG.md"


def test_vulnerable_image_is_stopped_at_preflight_with_nothing_changed(local, dagbag):
    before = _snapshot(local)
    dr, tasks = _run(dagbag, {"image_uri": image("v2.4.0-vuln"), "environment": ENV.name})
    assert dr.state == "failed"
    assert tasks["preflight.check_image"] == "failed"
    assert tasks["preflight.verdict"] == "failed"
    assert tasks["prepare.record_baseline"] == "upstream_failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    assert tasks["rollback.restore_previous_revision"] == "skipped"
    result = _xcom(dr.run_id, "preflight.check_image")
    assert result["status"] == "fail" and "1 CRITICAL" in result["reason"], result
    assert _snapshot(local) == before
    for other in ("check_aws_credentials", "check_current_deployment", "check_capacity", "check_no_active_incidents"):
        assert tasks[f"preflight.{other}"] == "success", (other, tasks)


def test_alarm_in_alarm_stops_the_run(local, dagbag):
    local.client("cloudwatch").set_alarm_state(
        AlarmName=f"{ENV.alarm_prefix}high-error-rate", StateValue="ALARM", StateReason="test: incident in progress"
    )
    before = _snapshot(local)
    dr, tasks = _run(dagbag, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert dr.state == "failed"
    assert tasks["preflight.check_no_active_incidents"] == "failed"
    assert tasks["preflight.verdict"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    result = _xcom(dr.run_id, "preflight.check_no_active_incidents")
    assert result["data"]["alarms"] == [f"{ENV.alarm_prefix}high-error-rate"], result
    assert _snapshot(local) == before


def test_split_traffic_fails_current_deployment_healthy(local, dagbag):
    elb = local.client("elbv2")
    lb = elb.describe_load_balancers(Names=[ENV.alb])["LoadBalancers"][0]
    listener = next(
        lis for lis in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if lis["Port"] == 80
    )
    tgs = {t["TargetGroupName"]: t["TargetGroupArn"] for t in elb.describe_target_groups()["TargetGroups"]}
    elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [
            {"TargetGroupArn": tgs[ENV.blue_tg], "Weight": 90},
            {"TargetGroupArn": tgs[ENV.green_tg], "Weight": 10},
        ]}}])
    before = _snapshot(local)
    dr, tasks = _run(dagbag, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert dr.state == "failed"
    assert tasks["preflight.check_current_deployment"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    reason = _xcom(dr.run_id, "preflight.check_current_deployment")["reason"]
    assert "split" in reason and "blue 90%" in reason and "green 10%" in reason, reason
    assert _snapshot(local) == before


def test_outside_the_window_a_strict_run_fails(local, dagbag, outside_window):
    before = _snapshot(local)
    dr, tasks = _run(dagbag, {"image_uri": image("v2.0.0"), "environment": ENV.name, "strict": True})
    assert dr.state == "failed"
    assert tasks["preflight.check_deployment_window"] == "failed"
    assert tasks["preflight.verdict"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    result = _xcom(dr.run_id, "preflight.check_deployment_window")
    assert result["status"] == "fail" and "outside the deployment windows" in result["reason"], result
    assert "strict" in result["reason"]
    assert _snapshot(local) == before
    # Every outcome is logged (issue 18), this one as a run that changed nothing, naming the check.
    entry = outside_window.read_text()
    assert "failed before change: failed at preflight.check_deployment_window" in entry, entry
    assert entry.count("## ") == 1, entry


def test_outside_the_window_a_non_strict_run_warns_and_deploys(local, dagbag, outside_window):
    """Non-strict: ⚠ at pre-flight, then the whole pipeline; checks the smoke report and the log entry."""
    dr, tasks = _run(dagbag, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert dr.state == "success", tasks
    for task in ("verify.smoke_tests", "verify.post_deployment_checks", "cleanup.delete_old_images", "record_deployment"):
        assert tasks[task] == "success", (task, tasks)
    window = _xcom(dr.run_id, "preflight.check_deployment_window")
    assert window["status"] == "warn" and "outside the deployment windows" in window["reason"], window
    verdict = _xcom(dr.run_id, "preflight.verdict")
    assert [r["check"] for r in verdict][:4] == [
        "Strategy allowed in environment", "Required tools available", "AWS credentials valid", "Image exists and scanned"]
    assert {r["status"] for r in verdict} <= {"pass", "warn"}

    # The smoke-test report: returned via XCom and saved as JSON with every request's latency.
    returned = _xcom(dr.run_id, "verify.smoke_tests")
    report = json.loads(Path(returned["report_path"]).read_text())
    assert report["passed"] is True and report["expected_version"] == "v2.0.0"
    assert report["context"]["environment"] == ENV.name and report["context"]["image"].endswith(local.digest("v2.0.0"))
    checks = {c["check"]: c for c in report["checks"]}
    assert {"health endpoint reachable", "status ok", "version matches", "connection pool healthy", "response time"} <= set(checks)
    assert all(c["passed"] for c in checks.values())
    assert "v2.0.0" in checks["version matches"]["detail"]
    assert "connections in use" in checks["connection pool healthy"]["detail"]
    assert report["requests"] and all(r["latency_ms"] >= 0 and r["status"] == 200 for r in report["requests"])
    assert report["summary"]["failed"] == 0 and report["summary"]["latency_ms"]["max"] >= report["summary"]["latency_ms"]["min"]
    assert json.loads((Path(returned["report_path"]).parent / "smoke-test-report.json").read_text()) == report

    # Post-deployment checks.
    post = _xcom(dr.run_id, "verify.post_deployment_checks")
    assert post["passed"] and {c["check"] for c in post["checks"]} == {
        "service steady", "targets healthy", "metrics within thresholds", "no new alarms"
    }, post

    # The deployment log entry, in the runbook's format, with the window warning as an issue.
    text = outside_window.read_text()
    assert text.startswith("# LatticeDB Deployment Log\n")
    assert f"## Deployment {datetime.now(UTC):%Y-%m-%d}" in text
    assert "- **Version**: v2.0.0\n" in text
    assert "- **Strategy**: Rolling\n" in text
    assert "- **Deployed By**: dag_test\n" in text
    assert f"- **Environment**: {ENV.name}\n" in text
    issues = next(line for line in text.splitlines() if line.startswith("- **Issues**: "))
    assert "Deployment window appropriate" in issues and "outside the deployment windows" in issues, issues
    duration = next(line for line in text.splitlines() if line.startswith("- **Duration**: "))
    assert duration.endswith(("s", "min")), duration


def test_override_reason_lets_a_strict_run_proceed_and_is_recorded(local, dagbag, outside_window):
    reason = "hotfix for INC-42, approved by on-call"
    dr, tasks = _run(
        dagbag, {"image_uri": image("v2.0.1"), "environment": ENV.name, "strict": True, "override_reason": reason}
    )
    assert dr.state == "success", tasks
    window = _xcom(dr.run_id, "preflight.check_deployment_window")
    assert window["status"] == "pass" and "OVERRIDDEN by dag_test" in window["reason"], window
    assert window["data"]["override_reason"] == reason
    text = outside_window.read_text()
    assert f"- **Issues**: deployment window overridden by dag_test: {reason}" in text
    assert "- **Version**: v2.0.1\n" in text


def test_clean_run_logs_no_issues_under_the_data_dir(local, dagbag, data_dir):
    dr, tasks = _run(dagbag, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert dr.state == "success", tasks
    entry = _xcom(dr.run_id, "record_deployment")
    assert Path(entry["path"]) == data_dir / ".local" / "DEPLOYMENT_LOG.md"
    assert "- **Issues**: None\n" in entry["entry"]
    assert entry["entry"] in Path(entry["path"]).read_text()
    incidents = _xcom(dr.run_id, "preflight.check_no_active_incidents")
    assert incidents["status"] == "pass" and incidents["data"]["alarms"] == []
    capacity = _xcom(dr.run_id, "preflight.check_capacity")
    assert capacity["status"] == "pass" and capacity["data"] == {
        "strategy": "rolling", "running": 2, "extra": 2, "peak": 4, "limit_tasks": 20
    }, capacity


def test_post_deployment_checks_catch_errors_the_rollout_missed_and_roll_back(local, dagbag, tmp_path, monkeypatch):
    """v2.1.0-errors starts fine and answers /health, so only the metrics show the 12 % of 5xx."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["environments"]["local"]["post_deployment"] = {"timeout_seconds": 20, "window_seconds": 10}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))
    before = local.service()
    dr, tasks = _run(dagbag, {"image_uri": image("v2.1.0-errors"), "environment": ENV.name})
    assert dr.state == "failed", _xcom(dr.run_id, "verify.post_deployment_checks")
    assert tasks["verify.smoke_tests"] == "success"
    assert tasks["verify.post_deployment_checks"] == "failed"
    assert tasks["rollback.restore_previous_revision"] == "success"
    assert tasks["record_deployment"] == "upstream_failed"
    post = _xcom(dr.run_id, "verify.post_deployment_checks")
    failed = {c["check"]: c for c in post["checks"] if not c["passed"]}
    assert "metrics within thresholds" in failed and "error rate" in failed["metrics within thresholds"]["detail"], post
    assert post["elapsed_seconds"] <= 20 + 5
    assert local.service()["taskDefinition"] == before["taskDefinition"]
    log = (tmp_path / ".local" / "DEPLOYMENT_LOG.md").read_text()  # every outcome is logged, this one as rolled back
    assert "rolled back: failed at verify.post_deployment_checks" in log, log
