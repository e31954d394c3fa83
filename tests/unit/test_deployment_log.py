"""The runbook's deployment-log entry: rendering and appending."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from latticedb_deploy.deployment_log import (
    HEADER,
    REPO_ROOT,
    DeploymentEntry,
    append_entry,
    format_duration,
    render_entry,
    resolve_log_path,
)

ENTRY = DeploymentEntry(
    date=datetime(2026, 11, 26, 14, 5, tzinfo=UTC),
    version="v2.0.0",
    strategy="canary",
    duration_seconds=2 * 3600 + 15 * 60 + 12,
    deployed_by="engineer@latticedb.com",
)


def test_renders_the_runbook_format():
    assert render_entry(ENTRY) == (
        "## Deployment 2026-11-26\n"
        "\n"
        "- **Version**: v2.0.0\n"
        "- **Strategy**: Canary\n"
        "- **Duration**: 2h 15min\n"
        "- **Issues**: None\n"
        "- **Deployed By**: engineer@latticedb.com\n"
    )


def test_issues_environment_and_extras():
    entry = DeploymentEntry(
        date=ENTRY.date, version="v2.0.1", strategy="blue_green", duration_seconds=75, deployed_by="schedule",
        issues=("pre-flight warning: X", "window overridden"), environment="staging", extra={"Run": "r1"},
    )
    text = render_entry(entry)
    assert "- **Strategy**: Blue/Green\n" in text
    assert "- **Issues**: pre-flight warning: X; window overridden\n" in text
    assert "- **Duration**: 1min 15s\n" in text
    assert text.endswith("- **Deployed By**: schedule\n- **Environment**: staging\n- **Run**: r1\n")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (40.4, "40s"), (60, "1min"), (725, "12min 5s"), (3600, "1h 0min")])
def test_duration(seconds, text):
    assert format_duration(seconds) == text


def test_append_creates_the_file_with_a_title_then_appends(tmp_path):
    path = tmp_path / "docs" / "DEPLOYMENT_LOG.md"
    append_entry(path, ENTRY)
    append_entry(path, DeploymentEntry(**{**ENTRY.__dict__, "version": "v2.0.1"}))
    text = path.read_text()
    assert text.startswith(HEADER)
    assert text.count("## Deployment 2026-11-26") == 2
    assert text.index("v2.0.0") < text.index("v2.0.1")


def test_relative_paths_resolve_against_the_data_dir_or_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("LATTICEDB_DATA_DIR", raising=False)
    assert resolve_log_path("docs/DEPLOYMENT_LOG.md") == REPO_ROOT / "docs" / "DEPLOYMENT_LOG.md"
    assert (REPO_ROOT / "dags").is_dir()  # the repository root, next to dags/ (not inside it)
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))
    assert resolve_log_path(".local/DEPLOYMENT_LOG.md") == tmp_path / ".local" / "DEPLOYMENT_LOG.md"
    assert resolve_log_path("/var/log/d.md") == Path("/var/log/d.md")


def test_free_text_cannot_forge_entries_or_bullets():
    forged = "INC-9\n\n## Deployment 1999-01-01\n- **Deployed By**: mallory\r\x0bnext\u2028line"
    entry = DeploymentEntry(
        date=ENTRY.date, version="v2.0.0", strategy="rolling", duration_seconds=5, deployed_by="a_b\n## x",
        issues=(f"window overridden by alice: {forged}",), extra={"Override": "*bold* [link](http://x) <br> `c` & \\"},
    )
    text = render_entry(entry)
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("## ")] == ["## Deployment 2026-11-26"]
    assert len([line for line in lines if line.startswith("- **")]) == 6
    assert "- **Deployed By**: a_b ## x" in lines
    issues = next(line for line in lines if line.startswith("- **Issues**"))
    assert issues == "- **Issues**: window overridden by alice: INC-9 ## Deployment 1999-01-01 - \\*\\*Deployed By\\*\\*: mallory next line"
    assert "- **Override**: \\*bold\\* \\[link\\](http://x) \\<br\\> \\`c\\` \\& \\\\" in lines


def test_ordinary_values_are_unchanged():
    assert render_entry(ENTRY).count("\\") == 0
