"""(e) The canary-versus-baseline judge (issue 16): false positives, detection, power. Measured, not asserted.

Pure Python, no running environment: each comparison simulates one local canary gate window, per
period, for the baseline (v1.0.0) and the canary, with the local simulator's own noise model
(include/local/latticedb_local/simulator.py: `period_behaviour`, `load_factor`) and the `local`
environment's judge settings and sample period (include/config/latticedb.yaml), then asks the judge.

- false-positive rate: healthy vs healthy (v2.0.0 vs v1.0.0), a "fail" verdict;
- detection rate per subtle image (scenarios.yaml), a "fail" verdict;
- a power table: detection rate against effect size (1.2x .. 3x) on error rate and on latency.

Results are merged into artifacts/bench/results.json (keys `judge.*`).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from benchmarks.common import ROOT, merge_results, table

sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "include" / "local"))

from latticedb_local.scenarios import load_scenarios  # noqa: E402
from latticedb_local.settings import SCENARIO_FILE  # noqa: E402
from latticedb_local.simulator import (
    load_factor,  # noqa: E402
    period_behaviour,  # noqa: E402
)

from latticedb_deploy.config import load_config  # noqa: E402
from latticedb_deploy.relative_judge import FAIL, PASS, judge  # noqa: E402

COMPARISONS = int(os.environ.get("BENCH_JUDGE_COMPARISONS", "1000"))
POWER_COMPARISONS = int(os.environ.get("BENCH_JUDGE_POWER_COMPARISONS", "300"))
SUBTLE = ("v2.5.0-subtle-errors", "v2.6.0-subtle-latency")
EFFECTS = (1.2, 1.5, 2.0, 3.0)


def window(behaviour, periods: int, t0: float, rng: random.Random, *, err_x=1.0, lat_x=1.0) -> dict[str, list[float]]:
    """Per-period samples of one slot over one gate window (what GetMetricData returns per period)."""
    out: dict[str, list[float]] = {"error_rate": [], "latency": [], "success_rate": []}
    for i in range(periods):
        rate, _mean, p95 = period_behaviour(
            behaviour.error_rate * err_x, behaviour.latency_mean_ms * lat_x, behaviour.latency_p95_ms * lat_x,
            load_factor(t0 + i), rng,
        )
        out["error_rate"].append(rate)
        out["latency"].append(p95)  # local latency statistic: the period's Maximum (~ P95)
        out["success_rate"].append(1.0 - rate)
    return out


def rate(baseline, canary, n: int, periods: int, settings, rng, **shift) -> tuple[float, float]:
    """(fail rate, not-pass rate) over n simulated gate windows."""
    fails = not_pass = 0
    for _ in range(n):
        t0 = rng.uniform(0, 3600)
        verdict = judge(window(baseline, periods, t0, rng), window(canary, periods, t0, rng, **shift), settings).verdict
        fails += verdict == FAIL
        not_pass += verdict != PASS
    return fails / n, not_pass / n


def main() -> None:
    env = load_config().environment("local")
    settings = env.judge.settings()
    period = env.judge_period_seconds
    periods = max(1, env.canary.interval_seconds // period)
    scenarios = load_scenarios(Path(os.environ.get("LATTICEDB_LOCAL_SCENARIOS") or SCENARIO_FILE))
    baseline = scenarios.behaviour(scenarios.initial)
    rng = random.Random(int(os.environ.get("BENCH_JUDGE_SEED", "16")))

    fp, fp_not_pass = rate(baseline, scenarios.behaviour("v2.0.0"), COMPARISONS, periods, settings, rng)
    results: dict = {"judge.false_positive_rate": fp, "judge.comparisons": COMPARISONS,
                     "judge.samples_per_side": periods, "judge.confidence": settings.confidence}
    rows = [["v2.0.0 vs v1.0.0 (healthy)", COMPARISONS, f"{fp:.1%}", f"{fp_not_pass:.1%}", "false positive: <= 2 %"]]
    for tag in SUBTLE:
        if tag not in scenarios.images:
            rows.append([tag, 0, "not in scenarios file", "", ""])
            continue
        det, det_not_pass = rate(baseline, scenarios.behaviour(tag), COMPARISONS, periods, settings, rng)
        results[f"judge.detection_rate.{tag}"] = det
        rows.append([f"{tag} vs {scenarios.initial}", COMPARISONS, f"{det:.1%}", f"{det_not_pass:.1%}", "detection: >= 95 %"])
    table(
        f"Relative judge at the local default interval ({periods} samples of {period} s per side, "
        f"confidence {settings.confidence})",
        ["comparison", "windows", "fail verdicts", "not a pass (fail, marginal, nodata)", "target"],
        rows,
        ["simulated with include/local's noise model (simulator.period_behaviour): shared load shape, "
         "independent log-normal per-period noise (error rate sigma 0.2, latency sigma 0.05)",
         "a fail verdict rolls the canary back; marginal keeps the gate collecting until its deadline"],
    )

    power: dict[str, dict[str, float]] = {"error_rate": {}, "latency": {}}
    power_rows = []
    for effect in EFFECTS:
        err, _ = rate(baseline, baseline, POWER_COMPARISONS, periods, settings, rng, err_x=effect)
        lat, _ = rate(baseline, baseline, POWER_COMPARISONS, periods, settings, rng, lat_x=effect)
        power["error_rate"][f"{effect:g}x"], power["latency"][f"{effect:g}x"] = err, lat
        power_rows.append([f"{effect:g}x", f"{err:.1%}", f"{lat:.1%}"])
    results.update({f"judge.power.{metric}.{effect}": share for metric, shares in power.items() for effect, share in shares.items()})
    table(
        f"Relative judge power: detection (fail verdict) against effect size, confidence {settings.confidence}",
        ["effect", "error rate x effect", "latency x effect"],
        power_rows,
        [f"{POWER_COMPARISONS} simulated windows per cell; tolerance (allowed change): "
         + ", ".join(f"{m} {settings.tolerance_for(m):.1%}" for m in settings.metrics),
         "a change within the tolerance is a Pass by design (Kayenta-style), so 1.2x is not meant to be caught"],
    )
    merge_results(results)


if __name__ == "__main__":
    main()
