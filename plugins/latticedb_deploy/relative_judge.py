"""Canary versus baseline: a statistical judge over per-period samples (issue 16).

Fixed thresholds pass a release that triples a 0.2 % error rate or doubles a 110 ms latency. This
judge compares the canary's per-period samples with the baseline's over the same window, metric by
metric, the way Kayenta's NetflixACAJudge does:

- a two-sided Mann-Whitney U test (scipy) at `confidence` (default 0.98): is the difference significant?
- an effect size, canary mean / baseline mean, with a `tolerance`: High (or Low) only when the
  difference is significant AND larger than the allowed relative change;
- a direction: an increase is bad for error rate and latency, a decrease is bad for success rate
  (a difference in the good direction passes);
- NoData when either side has fewer than `min_samples` samples: never a pass;
- `critical` metrics fail the verdict on their own;
- score = weight of passing metrics / weight of judged metrics x 100: >= `pass_score` passes,
  >= `marginal_score` is marginal (the gate keeps collecting until its deadline), below fails.

Pure: numbers in, a verdict out. No Airflow, no AWS.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Per-metric classifications (Kayenta's names).
PASS_CLASS, HIGH, LOW, NODATA = "Pass", "High", "Low", "NoData"
# Verdicts.
PASS, MARGINAL, FAIL, NO_DATA = "pass", "marginal", "fail", "nodata"

INCREASE, DECREASE = "increase", "decrease"
# The metrics the judge knows and which way is bad for each.
DIRECTIONS: dict[str, str] = {"error_rate": INCREASE, "latency": INCREASE, "success_rate": DECREASE}
LABELS: dict[str, str] = {"error_rate": "error rate", "latency": "latency", "success_rate": "success rate"}
# Default allowed relative change per metric. Success rate lives near 1.0: a 0.2 % drop is already a
# large rise in failures, so its tolerance is small; error rates are noisy, so theirs is wide.
DEFAULT_TOLERANCE: dict[str, float] = {"error_rate": 0.5, "latency": 0.2, "success_rate": 0.002}


@dataclass(frozen=True)
class JudgeSettings:
    """How strict the judge is. Defaults are the issue's: 0.98 confidence, 95 pass, 75 marginal, 10 samples."""

    confidence: float = 0.98
    tolerance: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCE))
    metrics: tuple[str, ...] = ("error_rate", "latency", "success_rate")
    weights: Mapping[str, float] = field(default_factory=dict)  # missing: 1.0
    critical: tuple[str, ...] = ("error_rate",)
    pass_score: float = 95.0
    marginal_score: float = 75.0
    min_samples: int = 10

    def __post_init__(self):
        unknown = [m for m in (*self.metrics, *self.critical, *self.weights, *self.tolerance) if m not in DIRECTIONS]
        if unknown:
            raise ValueError(f"unknown judge metric(s) {sorted(set(unknown))}; known: {sorted(DIRECTIONS)}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError(f"need 0 <= marginal_score <= pass_score <= 100, got {self.marginal_score}, {self.pass_score}")
        if self.min_samples < 3:
            raise ValueError(f"min_samples must be at least 3, got {self.min_samples}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if any(t < 0 for t in self.tolerance.values()):
            raise ValueError("tolerances must not be negative")

    def tolerance_for(self, metric: str) -> float:
        return float(self.tolerance.get(metric, DEFAULT_TOLERANCE[metric]))

    def weight_for(self, metric: str) -> float:
        return float(self.weights.get(metric, 1.0))


@dataclass(frozen=True)
class MetricResult:
    metric: str
    direction: str
    baseline_n: int
    canary_n: int
    baseline_median: float | None
    canary_median: float | None
    effect: float | None  # canary mean / baseline mean (inf: baseline mean 0, canary mean > 0)
    p_value: float | None
    classification: str  # Pass | High | Low | NoData
    passed: bool | None  # None: NoData (not judged)
    critical: bool
    weight: float
    reason: str

    def to_dict(self) -> dict:
        def num(x):
            return None if x is None else (str(x) if isinstance(x, float) and math.isinf(x) else x)

        return {
            "metric": self.metric, "direction": self.direction, "baseline_n": self.baseline_n,
            "canary_n": self.canary_n, "baseline_median": self.baseline_median,
            "canary_median": self.canary_median, "effect": num(self.effect), "p_value": self.p_value,
            "classification": self.classification, "passed": self.passed, "critical": self.critical,
            "weight": self.weight, "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    verdict: str  # pass | marginal | fail | nodata
    score: float | None  # None: nothing judged
    results: tuple[MetricResult, ...]
    reason: str

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "score": self.score, "reason": self.reason,
                "metrics": [r.to_dict() for r in self.results]}

    @property
    def table(self) -> str:
        return verdict_table(self)


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "latency":
        return f"{value:.0f} ms"
    return f"{value:.3%}"


def _fmt_effect(effect: float | None) -> str:
    if effect is None:
        return "n/a"
    if math.isinf(effect):
        return "inf"
    if abs(effect - 1.0) < 0.1:  # near 1 (success rate lives there): the relative change reads better
        return f"{effect - 1.0:+.2%}"
    return f"{effect:.2f}x"


def classify(
    metric: str,
    baseline: Sequence[float],
    canary: Sequence[float],
    settings: JudgeSettings | None = None,
) -> MetricResult:
    """Classify one metric from its per-period samples (None/NaN samples are dropped)."""
    from scipy.stats import mannwhitneyu

    s = settings or JudgeSettings()
    direction = DIRECTIONS[metric]
    base = [float(x) for x in baseline if x is not None and not math.isnan(x)]
    can = [float(x) for x in canary if x is not None and not math.isnan(x)]
    common = {
        "metric": metric, "direction": direction, "baseline_n": len(base), "canary_n": len(can),
        "baseline_median": statistics.median(base) if base else None,
        "canary_median": statistics.median(can) if can else None,
        "critical": metric in s.critical, "weight": s.weight_for(metric),
    }
    label = LABELS[metric]
    if len(base) < s.min_samples or len(can) < s.min_samples:
        return MetricResult(
            **common, effect=None, p_value=None, classification=NODATA, passed=None,
            reason=f"{label}: not enough samples (baseline {len(base)}, canary {len(can)}, need {s.min_samples} each)",
        )
    base_mean, can_mean = statistics.fmean(base), statistics.fmean(can)
    if base_mean == 0:
        effect = 1.0 if can_mean == 0 else math.inf
    else:
        effect = can_mean / base_mean
    if all(x == base[0] for x in base + can):
        p_value = 1.0  # identical constant samples: no difference (scipy would warn and return NaN)
    else:
        p_value = float(mannwhitneyu(can, base, alternative="two-sided").pvalue)
    significant = p_value < 1.0 - s.confidence
    tol = s.tolerance_for(metric)
    if significant and effect > 1.0 + tol:
        classification = HIGH
    elif significant and effect < 1.0 - tol:
        classification = LOW
    else:
        classification = PASS_CLASS
    bad = (classification == HIGH and direction == INCREASE) or (classification == LOW and direction == DECREASE)
    change = f"{_fmt(metric, common['canary_median'])} vs baseline {_fmt(metric, common['baseline_median'])}"
    if bad:
        reason = (f"{label} {classification.lower()}: canary {change} (median; effect {_fmt_effect(effect)}, "
                  f"p={p_value:.2g}, allowed change {tol:.1%})")
    elif classification != PASS_CLASS:
        reason = f"{label} {classification.lower()} (the good direction): canary {change}"
    else:
        reason = f"{label}: canary {change}, no significant change beyond {tol:.1%} (p={p_value:.2g})"
    return MetricResult(**common, effect=effect, p_value=p_value, classification=classification,
                        passed=not bad, reason=reason)


def judge(
    baseline: Mapping[str, Sequence[float]],
    canary: Mapping[str, Sequence[float]],
    settings: JudgeSettings | None = None,
) -> Verdict:
    """Judge every configured metric (missing series count as no samples) and score the canary."""
    s = settings or JudgeSettings()
    results = tuple(classify(m, baseline.get(m) or (), canary.get(m) or (), s) for m in s.metrics)
    judged = [r for r in results if r.passed is not None]
    nodata = [r for r in results if r.passed is None]
    total = sum(r.weight for r in judged)
    if not judged or total <= 0:
        reasons = "; ".join(r.reason for r in nodata) or "no metrics configured"
        return Verdict(NO_DATA, None, results, f"relative judge: no data: {reasons}")
    score = round(100.0 * sum(r.weight for r in judged if r.passed) / total, 1)
    failing = [r for r in judged if not r.passed]
    critical = [r for r in failing if r.critical]
    detail = "; ".join(r.reason for r in failing)
    if critical:
        return Verdict(FAIL, score, results,
                       f"relative judge: critical metric failed (score {score:g}): {'; '.join(r.reason for r in critical)}")
    if score < s.marginal_score:
        return Verdict(FAIL, score, results, f"relative judge: score {score:g} is below {s.marginal_score:g}: {detail}")
    if score < s.pass_score:
        return Verdict(MARGINAL, score, results,
                       f"relative judge: marginal score {score:g} (pass at {s.pass_score:g}): {detail}")
    if nodata:
        return Verdict(MARGINAL, score, results,
                       f"relative judge: score {score:g} but no data yet: {'; '.join(r.reason for r in nodata)}")
    return Verdict(PASS, score, results, f"relative judge: score {score:g}")


def verdict_table(verdict: Verdict) -> str:
    """A plain-text table: metric, baseline median, canary median, effect, p-value, classification, score."""
    headers = ["metric", "baseline median", "canary median", "effect", "p-value", "classification", "score"]
    rows = []
    for r in verdict.results:
        metric_score = "-" if r.passed is None else ("100" if r.passed else "0")
        rows.append([
            LABELS[r.metric] + (" (critical)" if r.critical else ""),
            f"{_fmt(r.metric, r.baseline_median)} (n={r.baseline_n})",
            f"{_fmt(r.metric, r.canary_median)} (n={r.canary_n})",
            _fmt_effect(r.effect),
            "n/a" if r.p_value is None else f"{r.p_value:.2g}",
            r.classification,
            metric_score,
        ])
    score = "n/a" if verdict.score is None else f"{verdict.score:g}"
    rows.append(["overall", "", "", "", "", verdict.verdict, score])
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)])
