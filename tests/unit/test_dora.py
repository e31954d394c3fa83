"""DORA's four keys from known histories, checked against hand computations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from latticedb_deploy import dora
from latticedb_deploy.history import DeploymentRecord, iso

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENV = "staging"


def rec(n: int, outcome: str, *, days_ago: float, pushed_hours_before: float | None = None, restore: float | None = None,
        dag_id: str = "latticedb_deploy_canary", env: str = ENV, rolls_back: str | None = None) -> DeploymentRecord:
    finished = NOW - timedelta(days=days_ago)
    return DeploymentRecord(
        environment=env, dag_id=dag_id, run_id=f"run-{n}", strategy="canary",
        started=iso(finished - timedelta(minutes=10)), finished=iso(finished), outcome=outcome,
        image_pushed_at=iso(finished - timedelta(hours=pushed_hours_before)) if pushed_hours_before is not None else None,
        time_to_restore_seconds=restore, rolls_back=rolls_back,
    )


def test_percentile_interpolates_between_ranks():
    assert dora.percentile([], 50) is None
    assert dora.percentile([7], 90) == 7
    assert dora.percentile([1, 2, 3, 4], 50) == 2.5
    assert dora.percentile([4, 1, 3, 2], 90) == pytest.approx(3.7)


def test_empty_history():
    m = dora.compute([], ENV, 30, now=NOW)
    assert (m.deployments, m.successful, m.changed_production, m.failed_changes) == (0, 0, 0, 0)
    assert m.deployment_frequency_per_day == 0 and m.deployment_frequency_per_week == 0
    assert m.lead_time_seconds == {"median": None, "p90": None, "count": 0}
    assert m.change_failure_rate is None
    assert m.time_to_restore_seconds == {"median": None, "p90": None, "count": 0}
    assert m.bands == {"deployment_frequency": "low", "lead_time": None, "change_failure_rate": None, "time_to_restore": None}


def test_one_successful_deployment():
    m = dora.compute([rec(1, "succeeded", days_ago=1, pushed_hours_before=2)], ENV, 7, now=NOW)
    assert m.successful == 1
    assert m.deployment_frequency_per_day == round(1 / 7, 3)
    assert m.deployment_frequency_per_week == 1.0
    assert m.lead_time_seconds == {"median": 7200.0, "p90": 7200.0, "count": 1}
    assert m.change_failure_rate == 0.0
    assert m.bands == {"deployment_frequency": "high", "lead_time": "elite", "change_failure_rate": "elite", "time_to_restore": None}


def test_one_rolled_back_deployment():
    m = dora.compute([rec(1, "rolled_back", days_ago=1, restore=3.0)], ENV, 7, now=NOW)
    assert (m.successful, m.changed_production, m.failed_changes) == (0, 1, 1)
    assert m.change_failure_rate == 1.0
    assert m.time_to_restore_seconds == {"median": 3.0, "p90": 3.0, "count": 1}
    assert m.bands["change_failure_rate"] == "low" and m.bands["time_to_restore"] == "elite"


def history() -> list[DeploymentRecord]:
    """Ten runs over 40 days, plus noise from another environment."""
    return [
        rec(1, "succeeded", days_ago=0.5, pushed_hours_before=1),
        rec(2, "succeeded", days_ago=1, pushed_hours_before=3),
        rec(3, "rolled_back", days_ago=2, restore=2.0),
        rec(4, "rejected", days_ago=3),
        rec(5, "failed_before_change", days_ago=4),
        rec(6, "succeeded", days_ago=5, pushed_hours_before=30),
        rec(7, "aborted", days_ago=6),
        # an emergency rollback started 10 minutes after run 8 finished: reverts it (the newest change before it)
        rec(8, "succeeded", days_ago=10, pushed_hours_before=5),
        rec(9, "succeeded", days_ago=10 - 20 / 1440, dag_id="latticedb_rollback", restore=40.0),
        rec(10, "succeeded", days_ago=40, pushed_hours_before=100),
        rec(11, "rolled_back", days_ago=1, restore=999.0, env="production"),
    ]


def test_seven_days_by_hand():
    m = dora.compute(history(), ENV, 7, now=NOW)
    # runs 1-7 finished in the last 7 days; succeeded: 1, 2, 6
    assert (m.deployments, m.successful) == (7, 3)
    assert m.deployment_frequency_per_day == round(3 / 7, 3)
    assert m.deployment_frequency_per_week == 3.0
    # lead times 1 h, 3 h, 30 h -> median 3 h; P90 = 3 + 0.8 * (30 - 3) h = 24.6 h
    assert m.lead_time_seconds == {"median": 3 * 3600.0, "p90": 24.6 * 3600, "count": 3}
    # changed production: 1, 2, 3, 6, 7 (4 rejected, 5 failed before change); failed: 3, 7
    assert (m.changed_production, m.failed_changes) == (5, 2)
    assert m.change_failure_rate == 0.4
    assert m.time_to_restore_seconds == {"median": 2.0, "p90": 2.0, "count": 1}
    assert m.bands == {"deployment_frequency": "high", "lead_time": "elite", "change_failure_rate": "low", "time_to_restore": "elite"}


def test_thirty_days_counts_the_emergency_rollback_as_a_failure_of_the_deployment_it_reverted():
    m = dora.compute(history(), ENV, 30, now=NOW)
    # deployments 1-8 (the emergency rollback, run 9, is not a deployment); succeeded 1, 2, 6, 8
    assert (m.deployments, m.successful) == (8, 4)
    assert m.deployment_frequency_per_day == round(4 / 30, 3)
    # changed: 1, 2, 3, 6, 7, 8; failed: 3, 7 and 8 (reverted by run 9)
    assert (m.changed_production, m.failed_changes) == (6, 3)
    assert m.change_failure_rate == 0.5
    # restores: run 3 (2 s), run 9 (40 s) -> median 21, P90 2 + 0.9 * 38 = 36.2
    assert m.time_to_restore_seconds == {"median": 21.0, "p90": 36.2, "count": 2}
    # lead times 1, 3, 5, 30 h -> median 4 h
    assert m.lead_time_seconds["median"] == 4 * 3600.0
    assert m.bands["deployment_frequency"] == "medium"  # 4 in 30 days: below 1 a week (0.133 < 0.143 a day), above 1 a month


def test_ninety_days_and_an_explicit_rolls_back():
    records = [*history(), rec(12, "succeeded", days_ago=2.5, dag_id="latticedb_rollback", restore=5.0,
                                rolls_back="latticedb_deploy_canary/run-10")]
    m = dora.compute(records, ENV, 90, now=NOW)
    assert m.successful == 5  # 1, 2, 6, 8, 10
    assert (m.changed_production, m.failed_changes) == (7, 4)  # 8 and 10 reverted
    assert m.time_to_restore_seconds["count"] == 3


def test_bands_at_their_boundaries():
    assert dora.band_deployment_frequency(1) == "elite"
    assert dora.band_deployment_frequency(1 / 7) == "high"
    assert dora.band_deployment_frequency(1 / 30) == "medium"
    assert dora.band_deployment_frequency(0) == "low"
    assert dora.band_lead_time(dora.DAY - 1) == "elite" and dora.band_lead_time(dora.DAY) == "high"
    assert dora.band_lead_time(dora.MONTH) == "low"
    assert dora.band_change_failure_rate(0.05) == "elite" and dora.band_change_failure_rate(0.151) == "low"
    assert dora.band_time_to_restore(3599) == "elite" and dora.band_time_to_restore(dora.WEEK) == "low"


def test_windows_and_daily_counts():
    windows = dora.compute_windows(history(), ENV, now=NOW)
    assert sorted(windows) == [7, 30, 90]
    days = dora.daily_counts(history(), ENV, 7, now=NOW)
    assert len(days) == 7 and days[-1]["date"] == "2026-12-01"
    assert sum(d["deployments"] for d in days) == 5 and sum(d["failures"] for d in days) == 2


def test_unknown_days_refused():
    with pytest.raises(ValueError):
        dora.compute([], ENV, 0)
