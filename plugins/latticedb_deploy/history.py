"""The deployment history record: one per run of a deployment DAG or of `latticedb_rollback`.

Pure (no AWS, no Airflow): the record, its outcomes, and its shape as a DynamoDB item. The
store is `latticedb_deploy.aws.history`; the DORA figures are computed from these records by
`latticedb_deploy.dora`; the runbook's deployment-log entry is rendered from the same record
(`to_log_entry`), so the file and the table never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SUCCEEDED = "succeeded"
ROLLED_BACK = "rolled_back"
FAILED_BEFORE_CHANGE = "failed_before_change"
REJECTED = "rejected"
ABORTED = "aborted"  # changed production, then stopped by a person (latticedb_control abort, rolled back) or without a rollback (disabled, lease lost)
ROLLBACK_FAILED = "rollback_failed"
OUTCOMES = (SUCCEEDED, ROLLED_BACK, FAILED_BEFORE_CHANGE, REJECTED, ABORTED, ROLLBACK_FAILED)
# Outcomes of a run that changed what production serves (the DORA change-failure denominator).
CHANGED_PRODUCTION = (SUCCEEDED, ROLLED_BACK, ABORTED, ROLLBACK_FAILED)
FAILED_CHANGES = (ROLLED_BACK, ABORTED, ROLLBACK_FAILED)

EMERGENCY_ROLLBACK_DAG = "latticedb_rollback"
# Words the deployment log has used for these outcomes since before the history existed.
LOG_OUTCOME = {ROLLED_BACK: "rolled back", FAILED_BEFORE_CHANGE: "failed before change", ABORTED: "aborted",
               REJECTED: "rejected", ROLLBACK_FAILED: "rollback failed"}


def iso(value: datetime | float | str | None) -> str | None:
    """UTC ISO-8601 with seconds precision and a `Z`-free `+00:00` offset (sortable as text)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = parse_time(value)
    elif isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class DeploymentRecord:
    environment: str
    dag_id: str
    run_id: str
    strategy: str  # rolling | canary | blue_green | emergency_rollback
    started: str  # ISO-8601 UTC: the run's start (also the sort key: stable across the run's tasks)
    finished: str
    outcome: str
    image: str | None = None
    digest: str | None = None
    version: str | None = None
    triggered_by: str | None = None
    approved_by: str | None = None
    failed_step: str | None = None
    reason: str | None = None
    time_to_restore_seconds: float | None = None  # failure detected -> 100 % on a good version
    run_link: str | None = None
    image_pushed_at: str | None = None  # the change's start for lead time (ECR push, or an OCI created label)
    rolls_back: str | None = None  # an emergency rollback: the `<dag_id>/<run_id>` it stopped, when known
    issues: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {', '.join(OUTCOMES)}")

    @property
    def key(self) -> str:
        """The sort key: newest-first by start, unique per run."""
        return f"{self.started}#{self.dag_id}/{self.run_id}"

    @property
    def owner(self) -> str:
        return f"{self.dag_id}/{self.run_id}"

    @property
    def is_emergency_rollback(self) -> bool:
        return self.dag_id == EMERGENCY_ROLLBACK_DAG

    @property
    def duration_seconds(self) -> float:
        return max((parse_time(self.finished) - parse_time(self.started)).total_seconds(), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration_seconds": round(self.duration_seconds, 1)}

    # ------------------------------------------------------------------ DynamoDB
    def to_item(self) -> dict[str, dict]:
        """A low-level DynamoDB item (the client's typed attribute values); empty values are left out."""
        item: dict[str, dict] = {"environment": {"S": self.environment}, "run_key": {"S": self.key}}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == [] or f.name == "environment":
                continue
            if isinstance(value, list):
                item[f.name] = {"L": [{"S": str(v)} for v in value]}
            elif isinstance(value, (int, float)):
                item[f.name] = {"N": str(value)}
            else:
                item[f.name] = {"S": str(value)}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict]) -> DeploymentRecord:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, typed in item.items():
            if name not in known:
                continue
            (kind, raw), = typed.items()
            if kind == "N":
                values[name] = float(Decimal(raw))
            elif kind == "L":
                values[name] = [next(iter(v.values())) for v in raw]
            else:
                values[name] = raw
        return cls(**values)

    # ------------------------------------------------------------------ the runbook's log
    def to_log_entry(self) -> Any:
        """The runbook-format deployment-log entry for this record (same words as before the history)."""
        from latticedb_deploy.deployment_log import DeploymentEntry

        issues = list(self.issues)
        extra: dict[str, str] = {}
        if self.outcome != SUCCEEDED:
            word = LOG_OUTCOME[self.outcome]
            issues.insert(0, f"{word}: failed at {self.failed_step or 'an unknown step'}")
            if self.reason:
                issues.insert(1, f"reason: {self.reason}")
            issues.extend(self.details)
            extra["Outcome"] = word
        extra["Image"] = self.image or ""
        extra["Run"] = self.run_id
        if self.approved_by:
            extra["Approved By"] = self.approved_by
        if self.time_to_restore_seconds is not None:
            extra["Time To Restore"] = f"{self.time_to_restore_seconds:g}s"
        return DeploymentEntry(
            date=parse_time(self.finished),
            version=self.version or (self.image or "").rsplit(":", 1)[-1],
            strategy=self.strategy,
            duration_seconds=self.duration_seconds,
            deployed_by=self.triggered_by or "unknown",
            issues=tuple(issues),
            environment=self.environment,
            extra=extra,
        )
