"""Deployment windows and change freezes: is this instant a good time to deploy?

Pure functions over the environment's `deployment_windows` config and an instant, so the
pre-flight check and the tests reach the same answer (no clock, no Airflow, no AWS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from latticedb_deploy.config import DeploymentWindows, Freeze, Window

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WindowStatus:
    """allowed: may deploy now; reason: a sentence for the ✓/⚠/✗ line; next_open: ISO instant or None."""

    allowed: bool
    reason: str
    freeze: bool = False
    next_open: str | None = None


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _instant(value: str, tz: ZoneInfo) -> datetime:
    """An ISO-8601 instant from the config; without an offset it is read in the windows' timezone."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _in_window(window: Window, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    return DAYS[local.weekday()] in window.days and _minutes(window.start) <= minute < _minutes(window.end)


def describe_window(window: Window) -> str:
    return f"{'/'.join(window.days)} {window.start}-{window.end}"


def active_freeze(freezes: tuple[Freeze, ...], now: datetime, tz: ZoneInfo) -> Freeze | None:
    for freeze in freezes:
        if _instant(freeze.start, tz) <= now < _instant(freeze.end, tz):
            return freeze
    return None


def next_opening(windows: DeploymentWindows, now: datetime) -> datetime | None:
    """The first window start after `now` within a week, not inside a freeze (None if there is none)."""
    tz = ZoneInfo(windows.timezone)
    local = now.astimezone(tz)
    candidates = []
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        for window in windows.allowed:
            if DAYS[day.weekday()] not in window.days:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=_minutes(window.start))
            if start > local and active_freeze(windows.freezes, start, tz) is None:
                candidates.append(start)
    return min(candidates) if candidates else None


def window_status(windows: DeploymentWindows, now: datetime) -> WindowStatus:
    """Freezes always apply; no `allowed` windows means any time outside a freeze."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    tz = ZoneInfo(windows.timezone)
    local = now.astimezone(tz)
    stamp = f"{local:%a %Y-%m-%d %H:%M} {windows.timezone}"
    freeze = active_freeze(windows.freezes, now, tz)
    if freeze is not None:
        why = f" ({freeze.reason})" if freeze.reason else ""
        return WindowStatus(False, f"{stamp} is inside the change freeze {freeze.start} - {freeze.end}{why}", freeze=True)
    if not windows.allowed:
        return WindowStatus(True, f"{stamp}: no deployment windows configured, no freeze in effect")
    for window in windows.allowed:
        if _in_window(window, local):
            return WindowStatus(True, f"{stamp} is inside the window {describe_window(window)}")
    allowed = "; ".join(describe_window(w) for w in windows.allowed)
    opening = next_opening(windows, now)
    reason = f"{stamp} is outside the deployment windows ({allowed})"
    if opening is not None:
        reason += f"; next window opens {opening:%a %Y-%m-%d %H:%M}"
    return WindowStatus(False, reason, next_open=opening.isoformat() if opening else None)
