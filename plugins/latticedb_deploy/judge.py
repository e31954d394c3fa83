"""The metric gate's verdicts: one window -> pass/fail/inconclusive; many -> done or keep watching.

Pure functions over numbers, so the sensor, its trigger and the tests reach the same
decision from the same inputs, with no Airflow or AWS in the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment, Slo

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class GateCriteria:
    """What a canary must show. Thresholds are strict: a value equal to its limit fails.

    `max_p99_ms` (None: not judged) is read with `p99_statistic` ("p99" in AWS; the local
    environment, whose moto cannot serve percentiles, names another statistic).
    """

    max_error_rate: float
    max_latency_ms: float
    min_success_rate: float
    min_requests: int
    latency_statistic: str = "p95"
    tolerated_failures: int = 0
    max_p99_ms: float | None = None
    p99_statistic: str = "p99"
    source: str = "thresholds"  # where the limits come from: "thresholds", "SLO" or "thresholds+SLO"

    @classmethod
    def from_environment(cls, env: Environment, tolerated_failures: int = 0) -> GateCriteria:
        """The environment's thresholds only (the runbook's key metrics)."""
        t, m = env.thresholds, env.metrics
        return cls(
            max_error_rate=t.max_error_rate,
            max_latency_ms=t.max_p95_ms,
            min_success_rate=t.min_success_rate,
            min_requests=m.min_requests,
            latency_statistic=m.latency_statistic,
            tolerated_failures=tolerated_failures,
            p99_statistic=m.p99_statistic,
        )

    @classmethod
    def for_gate(cls, env: Environment, tolerated_failures: int = 0) -> GateCriteria:
        """Canary gates and blue/green bakes: the thresholds, tightened by the SLO where the environment
        has one and `slo.enforce_in_gates` (default true): whichever limit is stricter, plus P99."""
        criteria = cls.from_environment(env, tolerated_failures)
        return with_slo(criteria, env.slo) if env.slo is not None and env.slo.enforce_in_gates else criteria

    @classmethod
    def for_post_deployment(cls, env: Environment) -> GateCriteria:
        """Post-deployment checks: every SLO metric (error rate, P95, P99, availability) where there is
        an SLO, never looser than the thresholds; else the thresholds."""
        criteria = cls.from_environment(env)
        return with_slo(criteria, env.slo) if env.slo is not None else criteria


def with_slo(criteria: GateCriteria, slo: Slo) -> GateCriteria:
    """`criteria` with each limit replaced by the SLO's where the SLO is stricter, and the SLO's P99."""
    from dataclasses import replace

    return replace(
        criteria,
        max_error_rate=min(criteria.max_error_rate, slo.max_error_rate),
        max_latency_ms=min(criteria.max_latency_ms, slo.max_p95_ms),
        min_success_rate=max(criteria.min_success_rate, slo.min_availability),
        max_p99_ms=slo.max_p99_ms if criteria.max_p99_ms is None else min(criteria.max_p99_ms, slo.max_p99_ms),
        source="thresholds+SLO",
    )


@dataclass(frozen=True)
class MetricWindow:
    """Target-group totals over one window (ISO-8601 UTC bounds); latency None = no datapoints."""

    start: str
    end: str
    requests: float
    errors_5xx: float
    latency_ms: float | None
    p99_ms: float | None = None  # only read when the criteria judge P99


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
    p99_ms: float | None = None
    max_p99_ms: float | None = None  # None: P99 not judged
    p99_statistic: str = "p99"

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
            **(
                {"p99_ms": self.p99_ms, "max_p99_ms": self.max_p99_ms, "p99_statistic": self.p99_statistic}
                if self.max_p99_ms is not None else {}
            ),
        }

    @property
    def summary(self) -> str:
        error = "n/a" if self.error_rate is None else f"{self.error_rate:.1%}"
        if self.max_error_rate is not None:
            error += f" (max {self.max_error_rate:.1%})"
        latency = "n/a" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        line = f"{self.step}%: {self.requests} req, error {error}, {self.latency_statistic} {latency}"
        if self.max_p99_ms is not None:
            p99 = "n/a" if self.p99_ms is None else f"{self.p99_ms:.0f} ms"
            line += f", {_p99_label(self.p99_statistic)} {p99} (max {self.max_p99_ms:.0f} ms)"
        line += f" -> {self.verdict}"
        if self.verdict == INCONCLUSIVE and self.reasons:
            line += f" ({'; '.join(self.reasons)})"
        return line


def _pct(value: float, limit: float) -> str:
    """Percent with enough decimals that a value just over its limit does not print as equal."""
    for digits in (1, 2, 3, 4):
        if f"{value:.{digits}%}" != f"{limit:.{digits}%}" or value == limit:
            return f"{value:.{digits}%}"
    return f"{value:%}"


def _p99_label(statistic: str) -> str:
    return "p99" if statistic == "p99" else f"p99 ({statistic})"


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
        if criteria.max_p99_ms is not None and window.p99_ms is not None and window.p99_ms >= criteria.max_p99_ms:
            failures.append(
                f"{_p99_label(criteria.p99_statistic)} latency {window.p99_ms:.0f} ms is not below "
                f"the maximum {criteria.max_p99_ms:.0f} ms"
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
    elif criteria.max_p99_ms is not None and window.p99_ms is None:
        verdict, reasons = INCONCLUSIVE, (f"no {_p99_label(criteria.p99_statistic)} latency datapoints in the window",)
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
        p99_ms=window.p99_ms if criteria.max_p99_ms is not None else None,
        max_p99_ms=criteria.max_p99_ms,
        p99_statistic=criteria.p99_statistic,
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
