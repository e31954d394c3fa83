"""The history record: DynamoDB item round trip and the deployment-log entry rendered from it."""

from __future__ import annotations

import pytest

from latticedb_deploy.deployment_log import render_entry
from latticedb_deploy.history import DeploymentRecord

RECORD = DeploymentRecord(
    environment="staging", dag_id="latticedb_deploy_canary", run_id="manual__1", strategy="canary",
    started="2026-12-01T10:00:00.000+00:00", finished="2026-12-01T10:05:30.000+00:00", outcome="rolled_back",
    image="r/latticedb:v2.1.0-errors@sha256:ab", digest="sha256:ab", version="v2.1.0-errors", triggered_by="admin",
    failed_step="deploy.gate_25pct", reason="error rate 12.1 % above 5 %", time_to_restore_seconds=2.9,
    details=["rolled back to latticedb-task-staging:1"],
)


def test_item_round_trip():
    item = RECORD.to_item()
    assert item["environment"] == {"S": "staging"}
    assert item["run_key"] == {"S": "2026-12-01T10:00:00.000+00:00#latticedb_deploy_canary/manual__1"}
    assert "approved_by" not in item  # empty values are left out
    assert DeploymentRecord.from_item(item) == RECORD


def test_unknown_outcome_refused():
    with pytest.raises(ValueError, match="unknown outcome"):
        DeploymentRecord(environment="e", dag_id="d", run_id="r", strategy="rolling", started="x", finished="y", outcome="meh")


def test_log_entry_keeps_the_runbook_format_and_names_the_failure():
    text = render_entry(RECORD.to_log_entry())
    assert text.startswith("## Deployment 2026-12-01\n")
    assert "- **Version**: v2.1.0-errors" in text and "- **Strategy**: Canary" in text and "- **Duration**: 5min 30s" in text
    assert "rolled back: failed at deploy.gate\\_25pct" not in text  # underscores are not escaped
    assert "rolled back: failed at deploy.gate_25pct; reason: error rate 12.1 % above 5 %; rolled back to" in text
    assert "- **Outcome**: rolled back" in text and "- **Time To Restore**: 2.9s" in text


def test_success_entry_has_no_outcome_line():
    ok = DeploymentRecord(**{**RECORD.__dict__, "outcome": "succeeded", "failed_step": None, "reason": None,
                             "time_to_restore_seconds": None, "details": [], "approved_by": "bob"})
    text = render_entry(ok.to_log_entry())
    assert "Outcome" not in text and "- **Issues**: None" in text and "- **Approved By**: bob" in text
