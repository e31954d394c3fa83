"""DORA's four keys from the deployment history, per environment and window. Pure.

What is counted (records are `latticedb_deploy.history.DeploymentRecord`, one per run):

- **Deployment frequency**: runs of a deployment DAG that `succeeded` and finished in the window,
  per day (count / days) and per week (count / days x 7). A succeeded run that an emergency
  rollback later reverted still deployed, so it still counts here (and fails below).
- **Lead time for changes**: for each of those, image pushed (ECR's `imagePushedAt`, or an OCI
  `created` label when the record carries one) to the run's end, when 100 % of traffic is on it.
  Median and P90.
- **Change failure rate**: of the deployments that changed production (`succeeded`,
  `rolled_back`, `aborted`, `rollback_failed`; `failed_before_change` and `rejected` changed
  nothing), the share that failed: rolled back, aborted, rollback failed, or reverted by an
  emergency rollback (`latticedb_rollback`: the run it names in `rolls_back`, else the newest
  production-changing deployment of that environment that finished before the rollback began).
- **Time to restore**: failure detected to 100 % of traffic on a good version, for every
  rollback that restored service (automatic ones: `time_to_restore_seconds` of a `rolled_back`
  run; emergency ones: of a succeeded `latticedb_rollback`). Median and P90.

Percentiles interpolate linearly between the closest ranks (numpy's default), so the median
of [1, 2, 3, 4] is 2.5 and its P90 is 3.7. No data means None, and no band.

Performance bands: the 2023 Accelerate State of DevOps Report (DORA, Google Cloud), "Software
delivery performance" clusters, made contiguous at their boundaries:

| metric | elite | high | medium | low |
|---|---|---|---|---|
| deployment frequency | on demand (>= 1 per day) | >= 1 per week | >= 1 per month | less often |
| lead time for changes | < 1 day | < 1 week | < 1 month | >= 1 month |
| change failure rate | <= 5 % | <= 10 % | <= 15 % | above (the report's low: 64 %) |
| failed deployment recovery time | < 1 hour | < 1 day | < 1 week | >= 1 week |

The report's medium and low overlap for frequency and lead time ("between once per week and
once per month" for both); the table above resolves that by putting the slower side in low.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from latticedb_deploy.history import (
    CHANGED_PRODUCTION,
    FAILED_CHANGES,
    ROLLED_BACK,
    SUCCEEDED,
    DeploymentRecord,
    parse_time,
)

WINDOWS_DAYS = (7, 30, 90)
HOUR, DAY, WEEK, MONTH = 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0
BANDS_SOURCE = "2023 Accelerate State of DevOps Report (DORA)"


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def _summary(values: list[float]) -> dict[str, float | None]:
    med, p90 = percentile(values, 50), percentile(values, 90)
    return {"median": None if med is None else round(med, 1), "p90": None if p90 is None else round(p90, 1),
            "count": len(values)}


def band_deployment_frequency(per_day: float | None) -> str | None:
    if per_day is None:
        return None
    if per_day >= 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / 30:
        return "medium"
    return "low"


def band_lead_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return "elite" if seconds < DAY else "high" if seconds < WEEK else "medium" if seconds < MONTH else "low"


def band_change_failure_rate(rate: float | None) -> str | None:
    if rate is None:
        return None
    return "elite" if rate <= 0.05 else "high" if rate <= 0.10 else "medium" if rate <= 0.15 else "low"


def band_time_to_restore(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return "elite" if seconds < HOUR else "high" if seconds < DAY else "medium" if seconds < WEEK else "low"


@dataclass(frozen=True)
class DoraMetrics:
    environment: str
    days: int
    deployments: int  # runs of a deployment DAG that finished in the window, whatever their outcome
    successful: int
    changed_production: int
    failed_changes: int
    deployment_frequency_per_day: float
    deployment_frequency_per_week: float
    lead_time_seconds: dict[str, float | None]
    change_failure_rate: float | None
    time_to_restore_seconds: dict[str, float | None]
    bands: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "days": self.days,
            "deployments": self.deployments,
            "successful_deployments": self.successful,
            "deployments_that_changed_production": self.changed_production,
            "failed_changes": self.failed_changes,
            "deployment_frequency_per_day": self.deployment_frequency_per_day,
            "deployment_frequency_per_week": self.deployment_frequency_per_week,
            "lead_time_seconds": self.lead_time_seconds,
            "change_failure_rate": self.change_failure_rate,
            "time_to_restore_seconds": self.time_to_restore_seconds,
            "bands": self.bands,
            "bands_source": BANDS_SOURCE,
        }


def reverted_by_emergency(records: list[DeploymentRecord]) -> set[str]:
    """Owners (`dag_id/run_id`) of deployments an emergency rollback reverted."""
    changes = sorted(
        (r for r in records if not r.is_emergency_rollback and r.outcome in CHANGED_PRODUCTION),
        key=lambda r: r.finished,
    )
    reverted: set[str] = set()
    for rb in records:
        if not rb.is_emergency_rollback or rb.outcome != SUCCEEDED:
            continue
        if rb.rolls_back:
            reverted.add(rb.rolls_back)
            continue
        before = [c for c in changes if c.environment == rb.environment and parse_time(c.finished) <= parse_time(rb.started)]
        if before:
            reverted.add(before[-1].owner)
    return reverted


def compute(records: Iterable[DeploymentRecord], environment: str, days: int, now: datetime | None = None) -> DoraMetrics:
    """The four keys for `environment` over the `days` before `now` (by each record's finish)."""
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    mine = [r for r in records if r.environment == environment]
    in_window = [r for r in mine if since < parse_time(r.finished) <= now]
    deployments = [r for r in in_window if not r.is_emergency_rollback]
    reverted = reverted_by_emergency(mine)  # an emergency rollback in the window may revert an older one

    successful = [r for r in deployments if r.outcome == SUCCEEDED]
    lead_times = [
        (parse_time(r.finished) - parse_time(r.image_pushed_at)).total_seconds()
        for r in successful if r.image_pushed_at
    ]
    changed = [r for r in deployments if r.outcome in CHANGED_PRODUCTION]
    failed = [r for r in changed if r.outcome in FAILED_CHANGES or r.owner in reverted]
    restores = [
        r.time_to_restore_seconds for r in in_window
        if r.time_to_restore_seconds is not None
        and ((not r.is_emergency_rollback and r.outcome == ROLLED_BACK) or (r.is_emergency_rollback and r.outcome == SUCCEEDED))
    ]
    per_day = round(len(successful) / days, 3)
    cfr = round(len(failed) / len(changed), 3) if changed else None
    lead, restore = _summary(lead_times), _summary(restores)
    return DoraMetrics(
        environment=environment,
        days=days,
        deployments=len(deployments),
        successful=len(successful),
        changed_production=len(changed),
        failed_changes=len(failed),
        deployment_frequency_per_day=per_day,
        deployment_frequency_per_week=round(len(successful) * 7 / days, 3),
        lead_time_seconds=lead,
        change_failure_rate=cfr,
        time_to_restore_seconds=restore,
        bands={
            # No successful deployment at all is a frequency of zero: low, not "unknown".
            "deployment_frequency": band_deployment_frequency(per_day),
            "lead_time": band_lead_time(lead["median"]),
            "change_failure_rate": band_change_failure_rate(cfr),
            "time_to_restore": band_time_to_restore(restore["median"]),
        },
    )


def compute_windows(
    records: Iterable[DeploymentRecord], environment: str, windows: Iterable[int] = WINDOWS_DAYS, now: datetime | None = None
) -> dict[int, DoraMetrics]:
    records = list(records)
    return {days: compute(records, environment, days, now) for days in windows}


def daily_counts(records: Iterable[DeploymentRecord], environment: str, days: int, now: datetime | None = None) -> list[dict]:
    """Per day (oldest first): deployments that changed production and those that failed, for a small chart."""
    now = now or datetime.now(UTC)
    records = [r for r in records if r.environment == environment]
    reverted = reverted_by_emergency(records)
    start = (now - timedelta(days=days - 1)).date()
    out = [{"date": (start + timedelta(days=i)).isoformat(), "deployments": 0, "failures": 0} for i in range(days)]
    index = {row["date"]: row for row in out}
    for r in records:
        if r.is_emergency_rollback or r.outcome not in CHANGED_PRODUCTION:
            continue
        row = index.get(parse_time(r.finished).date().isoformat())
        if row is None:
            continue
        row["deployments"] += 1
        if r.outcome in FAILED_CHANGES or r.owner in reverted:
            row["failures"] += 1
    return out
