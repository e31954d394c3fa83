"""Pre-flight results and the runbook-style verdict list (✓ / ⚠ / ✗ per check)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
_MARK = {PASS: "✓", WARN: "⚠", FAIL: "✗"}


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def line(self) -> str:
        return f"{_MARK[self.status]} {self.check}: {self.reason}"


def verdict(results: list[CheckResult], strict: bool = False) -> tuple[bool, list[str]]:
    """Whether the deployment may proceed, and the printable list (warnings fail under strict)."""
    lines = [r.line for r in results]
    blocking = [r for r in results if r.status == FAIL or (strict and r.status == WARN)]
    return (not blocking, lines)
