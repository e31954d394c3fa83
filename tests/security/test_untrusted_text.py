"""Untrusted text stays text: in Slack (through the local Slack sink) and in the deployment log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.helpers import image, run_dag, xcom

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<!channel> see <http://evil.example/|click here> & <@U024BE7LH> -- \n*bold* `code`"
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _all_text(message: dict) -> list[str]:
    """Every string anywhere in a Slack payload (text, blocks, fields, context)."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message.get("body", message))
    return found


def _assert_shown_not_acted_on(messages: list[dict]) -> None:
    texts = [t for m in messages for t in _all_text(m)]
    assert any("&lt;!channel&gt;" in t for t in texts), texts
    assert any("&lt;http://evil.example/|click here&gt;" in t for t in texts), texts
    for t in texts:
        assert "<!channel>" not in t and "<http://evil" not in t and "<@U024" not in t, t
        assert "& <" not in t  # a bare & would start an entity


def test_a_reason_with_slack_control_sequences_is_shown_not_acted_on(local, redis_db, dagbag):
    conf = {"environment": ENV.name, "action": "enable", "flag": "vector_search_v2", "reason": HOSTILE, "notify": True}
    state, tasks = run_dag(dagbag, "latticedb_feature_flags", conf)
    assert state == "success", tasks
    messages = local.messages()
    assert messages, "the change was not announced"
    _assert_shown_not_acted_on(messages)


@pytest.fixture
def outside_window(tmp_path, monkeypatch):
    """A copy of the config whose `local` environment may deploy any day but today (UTC)."""
    raw = yaml.safe_load((ROOT / "include" / "config" / "latticedb.yaml").read_text())
    today = DAYS[datetime.now(UTC).weekday()]
    raw["environments"]["local"]["deployment_windows"] = {
        "timezone": "UTC", "allowed": [{"days": [d for d in DAYS if d != today], "start": "00:00", "end": "24:00"}],
    }
    log = tmp_path / "DEPLOYMENT_LOG.md"
    raw["environments"]["local"]["deployment_log"] = str(log)
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    monkeypatch.setenv("LATTICEDB_REPORT_DIR", str(tmp_path / "reports"))
    return log


def test_an_override_reason_cannot_forge_deployment_log_entries(local, dagbag, outside_window):
    forged = "hotfix INC-9\n\n## Deployment 1999-01-01\n\n- **Version**: v0.0.1-forged\n- **Deployed By**: mallory\r\n<br>*ok*"
    dr_state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {
        "image_uri": image("v2.0.1"), "environment": ENV.name, "strict": True, "override_reason": forged,
    })
    assert dr_state == "success", tasks
    text = outside_window.read_text()
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("## ")] == [f"## Deployment {datetime.now(UTC):%Y-%m-%d}"]
    assert [line for line in lines if line.startswith("- **Deployed By**")] == ["- **Deployed By**: dag_test"]
    assert [line for line in lines if line.startswith("- **Version**")] == ["- **Version**: v2.0.1"]
    issues = next(line for line in lines if line.startswith("- **Issues**: "))
    assert "hotfix INC-9 ## Deployment 1999-01-01 - \\*\\*Version\\*\\*: v0.0.1-forged" in issues, issues
    assert "\\<br\\>\\*ok\\*" in issues
    # The same reason, in the Slack messages of that run, is escaped too.
    texts = [t for m in local.messages() for t in _all_text(m)]
    assert not any("<br>" in t for t in texts)
    window = xcom("latticedb_deploy_rolling", _last_run_id(dagbag), "preflight.check_deployment_window")
    assert window["data"]["override_reason"] == forged.strip()  # XCom keeps the reason as given


def _last_run_id(dagbag) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.settings import Session

    with Session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "latticedb_deploy_rolling").order_by(DagRun.id.desc()).limit(1).all()
        return runs[0].run_id
