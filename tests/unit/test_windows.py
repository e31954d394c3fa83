"""Deployment windows and freezes (pure), and the pre-flight check built on them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from latticedb_deploy.checks import check_deployment_window
from latticedb_deploy.config import DeploymentWindows, Freeze, Window, load_config
from latticedb_deploy.windows import window_status

PRODUCTION = DeploymentWindows(
    timezone="UTC",
    allowed=(Window(("mon", "tue", "wed", "thu"), "09:00", "17:00"), Window(("fri",), "09:00", "12:00")),
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "allowed"),
    [
        ("2026-11-23 09:00", True),   # Monday, the window opens
        ("2026-11-23 16:59", True),
        ("2026-11-23 17:00", False),  # end is exclusive
        ("2026-11-23 08:59", False),
        ("2026-11-27 11:59", True),   # Friday morning
        ("2026-11-27 12:00", False),  # no Fridays after noon
        ("2026-11-28 10:00", False),  # Saturday
    ],
)
def test_production_windows(instant, allowed):
    assert window_status(PRODUCTION, at(instant)).allowed is allowed


def test_outside_names_the_windows_and_the_next_opening():
    status = window_status(PRODUCTION, at("2026-11-27 14:30"))  # Friday afternoon
    assert not status.allowed and not status.freeze
    assert "outside the deployment windows" in status.reason and "fri 09:00-12:00" in status.reason
    assert status.next_open == "2026-11-30T09:00:00+00:00"  # Monday


def test_freeze_wins_over_a_window_and_the_next_opening_skips_it():
    windows = DeploymentWindows(
        timezone="UTC",
        allowed=PRODUCTION.allowed,
        freezes=(Freeze("2026-12-21T00:00:00Z", "2027-01-04T00:00:00Z", "holidays"),),
    )
    status = window_status(windows, at("2026-12-22 10:00"))
    assert not status.allowed and status.freeze and "holidays" in status.reason
    assert window_status(windows, at("2026-12-17 10:00")).allowed
    outside = window_status(windows, at("2026-12-18 13:00"))  # Friday afternoon before the freeze
    assert outside.next_open is None  # the next week's windows are all frozen


def test_no_windows_means_any_time_but_a_freeze_still_applies():
    assert window_status(DeploymentWindows(), at("2026-11-28 03:00")).allowed
    frozen = DeploymentWindows(freezes=(Freeze("2026-11-28T00:00:00", "2026-11-29T00:00:00"),))
    assert not window_status(frozen, at("2026-11-28 03:00")).allowed


def test_timezone_is_applied():
    windows = DeploymentWindows(timezone="America/New_York", allowed=(Window(("mon",), "09:00", "17:00"),))
    assert window_status(windows, at("2026-11-23 14:30")).allowed       # 09:30 in New York
    assert not window_status(windows, at("2026-11-23 13:30")).allowed   # 08:30 in New York


def test_check_warns_outside_and_an_override_passes_and_is_recorded():
    env = load_config().environment("production")
    friday_afternoon = at("2026-11-27 14:30")
    warned = check_deployment_window(env, "", {}, now=friday_afternoon)
    assert warned.status == "warn" and "override_reason" in warned.reason
    overridden = check_deployment_window(
        env, "", {"override_reason": "hotfix INC-7", "triggered_by": "alice"}, now=friday_afternoon
    )
    assert overridden.status == "pass" and "OVERRIDDEN by alice: hotfix INC-7" in overridden.reason
    assert overridden.data["override_reason"] == "hotfix INC-7" and overridden.data["override_by"] == "alice"
    assert check_deployment_window(env, "", {}, now=at("2026-11-24 10:00")).status == "pass"


def test_strict_turns_the_warning_into_a_failure():
    from latticedb_deploy.params import flag
    from latticedb_deploy.preflight import strictly

    env = load_config().environment("production")
    warned = check_deployment_window(env, "", {}, now=at("2026-11-28 10:00"))
    assert strictly(warned, True).status == "fail" and strictly(warned, False).status == "warn"
    # strict: given, else the run's param, else the environment's default (latticedb_deploy.params)
    assert flag(None, {}, "strict", True) is True and flag("None", {}, "strict", False) is False
    assert flag("False", {}, "strict", True) is False and flag(True, {}, "strict", False) is True
