"""The runbook's deployment log (`docs/DEPLOYMENT_LOG.md`): one markdown entry per deployment.

    ## Deployment YYYY-MM-DD

    - **Version**: v2.0.0
    - **Strategy**: Canary
    - **Duration**: 2h 15min
    - **Issues**: None
    - **Deployed By**: engineer@latticedb.com

Pure rendering plus an append; the path comes from the environment's `deployment_log`
(relative paths resolve against LATTICEDB_DATA_DIR when set, else the repository root).
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import field
from datetime import datetime
from pathlib import Path

from latticedb_deploy.models import frozen_model

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "LATTICEDB_DATA_DIR"
HEADER = "# LatticeDB Deployment Log\n"
STRATEGY_NAMES = {"rolling": "Rolling", "blue_green": "Blue/Green", "canary": "Canary"}


@frozen_model
class DeploymentEntry:
    date: datetime
    version: str
    strategy: str
    duration_seconds: float
    deployed_by: str
    issues: tuple[str, ...] = ()
    environment: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # more bullet points after the runbook's five


def format_duration(seconds: float) -> str:
    """The runbook's style: `2h 15min`, `12min 5s`, `40s`."""
    total = max(int(round(seconds)), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}min"
    if minutes:
        return f"{minutes}min {secs}s" if secs else f"{minutes}min"
    return f"{secs}s"


def strategy_title(strategy: str) -> str:
    return STRATEGY_NAMES.get(strategy, strategy.replace("_", " ").title())


# Markdown that could imitate structure inside a value: emphasis (a fake `**Deployed By**`), code,
# links, raw HTML (`<br>`) and entities. Backslash-escaped, they render as themselves.
_MARKDOWN = re.compile(r"([\\`*\[\]<>&])")
# Every character Python (and so a markdown renderer) may treat as a line break.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def inline(value: object) -> str:
    """One line of literal text: line breaks become spaces and markdown is escaped.

    Free text (an override reason, a detail from the service, who triggered the run) can then
    neither start a new `## Deployment` entry or `- **...**` bullet, nor look like one.
    """
    return _MARKDOWN.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(value)).strip())


def render_entry(entry: DeploymentEntry) -> str:
    issues = "; ".join(inline(i) for i in entry.issues) if entry.issues else "None"
    lines = [
        f"## Deployment {entry.date:%Y-%m-%d}",
        "",
        f"- **Version**: {inline(entry.version)}",
        f"- **Strategy**: {inline(strategy_title(entry.strategy))}",
        f"- **Duration**: {format_duration(entry.duration_seconds)}",
        f"- **Issues**: {issues}",
        f"- **Deployed By**: {inline(entry.deployed_by)}",
    ]
    if entry.environment:
        lines.append(f"- **Environment**: {inline(entry.environment)}")
    lines.extend(f"- **{inline(key)}**: {inline(value)}" for key, value in entry.extra.items())
    return "\n".join(lines) + "\n"


def render_control_entry(date: datetime, fields: dict[str, object]) -> str:
    """A person's action on a deployment in flight (latticedb_control), between the deployment entries:

        ## Control 2026-12-01 19:30:05 UTC

        - **Action**: promote
        - **Deployment**: latticedb_deploy_canary/manual__...
        ...

    Its header is not `## Deployment`, so readers of the last deployment skip it."""
    lines = [f"## Control {date:%Y-%m-%d %H:%M:%S} UTC", ""]
    lines.extend(f"- **{inline(key)}**: {inline(value)}" for key, value in fields.items() if value not in (None, ""))
    return "\n".join(lines) + "\n"


def append_text(path: str | Path, text: str) -> str:
    """Append a rendered entry (creating the file with a title if needed), under the same lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0, os.SEEK_END)
            fh.write((HEADER if fh.tell() == 0 else "") + "\n" + text)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return text


def resolve_log_path(configured: str) -> Path:
    path = Path(configured).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get(DATA_DIR_ENV) or REPO_ROOT) / path


def append_entry(path: str | Path, entry: DeploymentEntry) -> str:
    """Append the entry (creating the file with a title if needed); returns the text written.

    An exclusive lock keeps two runs finishing at once from interleaving their entries.
    """
    return append_text(path, render_entry(entry))
