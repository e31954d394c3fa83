"""Pre-flight results and the runbook-style verdict list (✓ / ⚠ / ✗ per check)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
_MARK = {PASS: "✓", WARN: "⚠", FAIL: "✗"}


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)  # facts later stages reuse (e.g. alarms in ALARM)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def line(self) -> str:
        return f"{_MARK[self.status]} {self.check}: {self.reason}"


def strictly(result: CheckResult, strict: bool) -> CheckResult:
    """Under strict a warning is a failure, so the check's own task turns red in the graph."""
    if strict and result.status == WARN:
        return CheckResult(result.check, FAIL, f"{result.reason} (warning; strict pre-flight)", result.data)
    return result


def verdict(results: list[CheckResult], strict: bool = False) -> tuple[bool, list[str]]:
    """Whether the deployment may proceed, and the printable list (warnings fail under strict)."""
    lines = [r.line for r in results]
    blocking = [r for r in results if r.status == FAIL or (strict and r.status == WARN)]
    return (not blocking, lines)
