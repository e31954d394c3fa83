"""The operations commands of `manage-service.sh` (status, scale, restart) as plain Python.

Pure: request validation, the capacity check of a scale or restart, the status summary and the
deployment log's last entry. The Airflow side is latticedb_deploy.operators.service.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from latticedb_deploy.models import frozen_model

ACTIONS = ("status", "scale", "restart")
MAX_DESIRED = 100
# A forced new deployment starts a full new set of tasks before the old ones stop
# (maximumPercent 200): at its peak the slot runs twice its desired count.
RESTART_PEAK_FACTOR = 2.0


class RequestError(ValueError):
    """A request refused before anything changed, with the reason."""


@frozen_model
class Request:
    action: str
    desired_count: int | None
    reason: str

    @property
    def changes(self) -> bool:
        return self.action != "status"


def parse_request(action: object, desired_count: object, reason: object) -> Request:
    """Validate the trigger form's fields (the Params validate too; a REST caller may not)."""
    act = str(action or "").strip().lower()
    if act not in ACTIONS:
        raise RequestError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    text = "" if reason in (None, "None") else str(reason).strip()
    count: int | None = None
    if act == "scale":
        if desired_count in (None, "", "None"):
            raise RequestError("scale needs desired_count (the number of tasks the live slot should run)")
        try:
            count = int(str(desired_count))
        except ValueError:
            raise RequestError(f"desired_count must be a whole number, not {desired_count!r}") from None
        if not 1 <= count <= MAX_DESIRED:
            raise RequestError(
                f"desired_count {count} out of range 1..{MAX_DESIRED} (scaling the live slot to 0 is an outage: "
                "use the deployment DAGs or the emergency rollback to move traffic first)"
            )
    if act != "status" and len(text) < 3:
        raise RequestError(f"{act} needs a reason (at least 3 characters): it goes into the notifications")
    return Request(act, count, text)


def capacity_problem(
    *, action: str, live_desired: int, new_desired: int | None, other_tasks: int, max_tasks: int | None
) -> tuple[str | None, dict]:
    """(why a scale/restart does not fit the environment's task limit, or None; the numbers).

    Peak tasks: the other slot's tasks plus the live slot's at the peak of the change (a scale-out
    ends at `new_desired`; a restart runs twice its desired count for a moment).
    """
    if action == "scale":
        peak_live = int(new_desired or 0)
    else:
        peak_live = math.ceil(RESTART_PEAK_FACTOR * live_desired)
    peak = other_tasks + peak_live
    data = {"peak_tasks": peak, "live_at_peak": peak_live, "other_slot_tasks": other_tasks, "limit_tasks": max_tasks}
    if max_tasks is None:
        return None, data
    if peak > max_tasks:
        what = f"scaling the live slot to {new_desired}" if action == "scale" else f"restarting {live_desired} tasks"
        return (
            f"{what} needs {peak} tasks at peak ({other_tasks} on the other slot + {peak_live}); "
            f"capacity.max_tasks is {max_tasks}. Nothing was changed."
        ), data
    return None, data


_ENTRY = re.compile(r"^## Deployment (\S+)\s*$", re.M)
_ANY_ENTRY = re.compile(r"^## ", re.M)  # other entries (## Control ...) end a deployment's too
_BULLET = re.compile(r"^- \*\*(.+?)\*\*: (.*)$", re.M)


def last_deployment(log_text: str, environment: str) -> dict | None:
    """The deployment log's last entry for `environment` (entries without one count for any), or None."""
    starts = list(_ENTRY.finditer(log_text))
    for i in range(len(starts) - 1, -1, -1):
        following = _ANY_ENTRY.search(log_text, starts[i].end())
        end = following.start() if following else len(log_text)
        body = log_text[starts[i].end():end]
        fields = {k: v.strip() for k, v in _BULLET.findall(body)}
        if fields.get("Environment", environment) != environment:
            continue
        return {"date": starts[i].group(1), **fields}
    return None


def read_last_deployment(path: Path, environment: str) -> dict | None:
    try:
        return last_deployment(path.read_text(encoding="utf-8"), environment)
    except FileNotFoundError:
        return None


def short(arn: str | None) -> str:
    return (arn or "").rsplit("/", 1)[-1]


def summary_lines(status: dict) -> list[str]:
    """The status as an operator reads it, one line per slot plus traffic and the last deployment."""
    lines = []
    for s in status["slots"]:
        lines.append(
            f"{s['colour']} {s['service']}: {short(s['task_definition'])}, {s['running']}/{s['desired']} running, "
            f"{s['deployments']} deployment(s) ({s['rollout_state']}), weight {s['weight']}%, "
            f"{s['healthy_targets']} healthy target(s)"
        )
    last = status.get("last_deployment")
    if last:
        lines.append(
            f"last deployment {last.get('date')}: {last.get('Version', '?')} ({last.get('Strategy', '?')}), "
            f"issues: {last.get('Issues', '?')}"
        )
    else:
        lines.append("last deployment: none recorded")
    return lines
