"""The metric gate's verdicts: one window -> pass/fail/inconclusive; many -> done or keep watching.

Pure functions over numbers, so the sensor, its trigger and the tests reach the same
decision from the same inputs, with no Airflow or AWS in the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class GateCriteria:
    """What a canary must show. Thresholds are strict: a value equal to its limit fails."""

    max_error_rate: float
    max_latency_ms: float
    min_success_rate: float
    min_requests: int
    latency_statistic: str = "p95"
    tolerated_failures: int = 0

    @classmethod
    def from_environment(cls, env: Environment, tolerated_failures: int = 0) -> GateCriteria:
        t, m = env.thresholds, env.metrics
        return cls(
            max_error_rate=t.max_error_rate,
            max_latency_ms=t.max_p95_ms,
            min_success_rate=t.min_success_rate,
            min_requests=m.min_requests,
            latency_statistic=m.latency_statistic,
            tolerated_failures=tolerated_failures,
        )


@dataclass(frozen=True)
class MetricWindow:
    """Target-group totals over one window (ISO-8601 UTC bounds); latency None = no datapoints."""

    start: str
    end: str
    requests: float
    errors_5xx: float
    latency_ms: float | None


@dataclass(frozen=True)
class Evaluation:
    step: int
    window_start: str
    window_end: str
    requests: int
    error_rate: float | None
    success_rate: float | None
    latency_ms: float | None
    latency_statistic: str
    verdict: str
    reasons: tuple[str, ...]
    max_error_rate: float | None = None  # the limit, so the summary can show it

    def to_dict(self) -> dict:
        """A small JSON-able record for XCom and logs."""
        return {
            "step": self.step,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "requests": self.requests,
            "error_rate": self.error_rate,
            "success_rate": self.success_rate,
            "latency_ms": self.latency_ms,
            "latency_statistic": self.latency_statistic,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "max_error_rate": self.max_error_rate,
        }

    @property
    def summary(self) -> str:
        error = "n/a" if self.error_rate is None else f"{self.error_rate:.1%}"
        if self.max_error_rate is not None:
            error += f" (max {self.max_error_rate:.1%})"
        latency = "n/a" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        line = f"{self.step}%: {self.requests} req, error {error}, {self.latency_statistic} {latency} -> {self.verdict}"
        if self.verdict == INCONCLUSIVE and self.reasons:
            line += f" ({'; '.join(self.reasons)})"
        return line


def _pct(value: float, limit: float) -> str:
    """Percent with enough decimals that a value just over its limit does not print as equal."""
    for digits in (1, 2, 3, 4):
        if f"{value:.{digits}%}" != f"{limit:.{digits}%}" or value == limit:
            return f"{value:.{digits}%}"
    return f"{value:%}"


def evaluate(step: int, window: MetricWindow, criteria: GateCriteria) -> Evaluation:
    """Judge one window. Too little traffic is inconclusive, never a pass."""
    requests = int(round(window.requests))
    errors = min(max(float(window.errors_5xx), 0.0), float(requests))
    stat = criteria.latency_statistic
    error_rate = success_rate = None
    failures: list[str] = []
    if requests > 0:
        error_rate = errors / requests
        success_rate = (requests - errors) / requests  # not 1 - error_rate: keeps 95/100 == 0.95 exact
        if error_rate >= criteria.max_error_rate:
            failures.append(
                f"error rate {_pct(error_rate, criteria.max_error_rate)} is not below "
                f"the maximum {_pct(criteria.max_error_rate, error_rate)}"
            )
        if success_rate <= criteria.min_success_rate:
            failures.append(
                f"success rate {_pct(success_rate, criteria.min_success_rate)} is not above "
                f"the minimum {_pct(criteria.min_success_rate, success_rate)}"
            )
        if window.latency_ms is not None and window.latency_ms >= criteria.max_latency_ms:
            failures.append(
                f"{stat} latency {window.latency_ms:.0f} ms is not below the maximum {criteria.max_latency_ms:.0f} ms"
            )

    if requests <= 0:
        verdict, reasons = INCONCLUSIVE, (f"no requests in the window, need {max(criteria.min_requests, 1)}",)
    elif requests < criteria.min_requests:
        verdict, reasons = INCONCLUSIVE, (f"only {requests} requests in the window, need {criteria.min_requests}",)
    elif failures:
        # A breach on the data we have is conclusive even if latency datapoints are missing.
        verdict, reasons = FAIL, tuple(failures)
    elif window.latency_ms is None:
        verdict, reasons = INCONCLUSIVE, (f"no {stat} latency datapoints in the window",)
    else:
        verdict, reasons = PASS, ()
    return Evaluation(
        step=step,
        window_start=window.start,
        window_end=window.end,
        requests=requests,
        error_rate=error_rate,
        success_rate=success_rate,
        latency_ms=window.latency_ms,
        latency_statistic=stat,
        verdict=verdict,
        reasons=reasons,
        max_error_rate=criteria.max_error_rate,
    )


@dataclass(frozen=True)
class GateDecision:
    """done=False: keep watching; passed is None until done."""

    done: bool
    passed: bool | None
    reason: str


def decide(
    evaluations: Sequence[Evaluation],
    *,
    criteria: GateCriteria,
    now: float,
    interval_end: float,
    deadline: float,
) -> GateDecision:
    """Decide a gate from its evaluations so far (oldest first).

    Failures beyond the tolerance end the gate at once; a pass only counts once the
    interval is over; inconclusive data is waited on until the deadline, then fails.
    """
    failed = [e for e in evaluations if e.verdict == FAIL]
    if len(failed) > criteria.tolerated_failures:
        reason = "; ".join(failed[-1].reasons)
        if criteria.tolerated_failures:
            reason = f"{len(failed)} failing windows, more than the {criteria.tolerated_failures} tolerated: {reason}"
        return GateDecision(True, False, f"at {failed[-1].step}%: {reason}")
    latest = evaluations[-1] if evaluations else None
    if now < interval_end:
        return GateDecision(False, None, f"watching: {latest.summary if latest else 'no metrics yet'}")
    if latest is not None and latest.verdict == PASS:
        return GateDecision(True, True, latest.summary)
    if now < deadline:
        return GateDecision(False, None, f"waiting for conclusive metrics: {latest.summary if latest else 'no metrics yet'}")
    if latest is None:
        return GateDecision(True, False, "inconclusive: no metrics")
    if latest.verdict == INCONCLUSIVE:
        return GateDecision(True, False, f"inconclusive: {'; '.join(latest.reasons)}")
    return GateDecision(True, False, f"at {latest.step}%: {'; '.join(latest.reasons)}")
