"""The canary-versus-baseline judge (issue 16) on known data: no Airflow, no AWS."""

import math

import pytest

from latticedb_deploy.relative_judge import (
    FAIL,
    HIGH,
    LOW,
    MARGINAL,
    NO_DATA,
    NODATA,
    PASS,
    PASS_CLASS,
    JudgeSettings,
    classify,
    judge,
    verdict_table,
)

# Twelve healthy per-period samples around 0.2 % errors / 150 ms, and shifted copies of them.
BASE_ERR = [0.0019, 0.0021, 0.0020, 0.0018, 0.0022, 0.0020, 0.0023, 0.0017, 0.0021, 0.0019, 0.0020, 0.0022]
BASE_LAT = [148.0, 151.0, 150.0, 147.0, 153.0, 149.0, 152.0, 146.0, 150.0, 151.0, 149.0, 154.0]
# Same distribution, different draws (interleaved values: no significant difference).
CAN_ERR = [0.0020, 0.0018, 0.0022, 0.0021, 0.0019, 0.0023, 0.0017, 0.0020, 0.0021, 0.0018, 0.0022, 0.0019]
CAN_LAT = [150.0, 149.0, 152.0, 148.0, 151.0, 147.0, 153.0, 150.0, 149.0, 152.0, 148.0, 151.0]


def samples(err, lat):
    return {"error_rate": err, "latency": lat, "success_rate": [1 - e for e in err]}


def test_same_distribution_passes_with_full_score():
    v = judge(samples(BASE_ERR, BASE_LAT), samples(CAN_ERR, CAN_LAT))
    assert v.verdict == PASS and v.score == 100.0
    assert [r.classification for r in v.results] == [PASS_CLASS] * 3
    assert all(r.p_value > 0.02 for r in v.results)


def test_triple_error_rate_is_high_and_critical():
    """0.2 % -> 0.6 %: far under a 5 % threshold, but the judge sees it."""
    v = judge(samples(BASE_ERR, BASE_LAT), samples([3 * e for e in CAN_ERR], CAN_LAT))
    err, lat, ok = v.results
    assert err.classification == HIGH and err.passed is False and err.critical
    assert err.effect == pytest.approx(3.0, rel=0.05) and err.p_value < 0.001
    assert lat.classification == PASS_CLASS
    assert ok.classification == LOW and ok.passed is False  # success rate fell: bad for a "decrease" metric
    assert v.verdict == FAIL
    assert "critical metric failed" in v.reason and "error rate high" in v.reason
    assert "0.600%" in v.reason or "0.6" in v.reason  # the canary median is named


def test_double_latency_fails_on_score():
    v = judge(samples(BASE_ERR, BASE_LAT), samples(CAN_ERR, [2 * x for x in CAN_LAT]))
    lat = v.results[1]
    assert lat.classification == HIGH and lat.effect == pytest.approx(2.0, rel=0.02)
    assert v.score == pytest.approx(66.7) and v.verdict == FAIL  # 2 of 3 pass: below marginal 75
    assert "score 66.7 is below 75" in v.reason and "latency high" in v.reason
    assert "300 ms vs baseline 150 ms" in v.reason


def test_significant_but_within_tolerance_passes():
    """Kayenta-style: a shift that is significant but smaller than the allowed change is a Pass."""
    lat = [x * 1.10 for x in CAN_LAT]  # +10 %: significant with 12 vs 12, under the 20 % tolerance
    r = classify("latency", BASE_LAT, lat)
    assert r.p_value < 0.001 and r.classification == PASS_CLASS and r.passed
    strict = JudgeSettings(tolerance={"latency": 0.05})
    assert classify("latency", BASE_LAT, lat, strict).classification == HIGH


def test_large_but_insignificant_difference_passes():
    """Beyond the tolerance but not significant (too noisy): no High."""
    base = [100.0, 300.0, 90.0, 400.0, 110.0, 280.0, 95.0, 350.0, 105.0, 320.0]
    can = [x * 1.3 for x in [300.0, 100.0, 350.0, 90.0, 280.0, 110.0, 320.0, 95.0, 400.0, 105.0]][::-1]
    r = classify("latency", base, can)
    assert r.effect > 1.2 and r.p_value > 0.02 and r.classification == PASS_CLASS


def test_improvement_is_not_a_failure():
    v = judge(samples(BASE_ERR, BASE_LAT), samples([e / 3 for e in CAN_ERR], [x / 2 for x in CAN_LAT]))
    err, lat, ok = v.results
    assert (err.classification, lat.classification) == (LOW, LOW)
    assert ok.classification == PASS_CLASS  # 99.8 % -> 99.93 %: within the 0.2 % tolerance
    assert all(r.passed for r in v.results) and v.verdict == PASS


def test_too_few_samples_is_nodata_never_a_pass():
    v = judge(samples(BASE_ERR, BASE_LAT), samples(CAN_ERR[:9], CAN_LAT[:9]))
    assert v.verdict == NO_DATA and v.score is None
    assert all(r.classification == NODATA and r.passed is None for r in v.results)
    assert "not enough samples (baseline 12, canary 9, need 10 each)" in v.reason
    # One metric without data, the rest passing: still not a pass (marginal: keep collecting).
    partial = judge(samples(BASE_ERR, BASE_LAT), {**samples(CAN_ERR, CAN_LAT), "latency": CAN_LAT[:3]})
    assert partial.verdict == MARGINAL and partial.score == 100.0 and "no data yet" in partial.reason


def test_nan_and_none_samples_are_dropped():
    r = classify("latency", BASE_LAT, [*CAN_LAT[:9], None, math.nan])
    assert r.canary_n == 9 and r.classification == NODATA


def test_weights_and_marginal_band():
    s = JudgeSettings(weights={"error_rate": 1, "latency": 1, "success_rate": 8}, critical=())
    v = judge(samples(BASE_ERR, BASE_LAT), samples(CAN_ERR, [2 * x for x in CAN_LAT]), s)
    assert v.score == 90.0 and v.verdict == MARGINAL and "marginal score 90" in v.reason


def test_non_critical_error_rate_fails_by_score():
    s = JudgeSettings(critical=())
    v = judge(samples(BASE_ERR, BASE_LAT), samples([3 * e for e in CAN_ERR], CAN_LAT), s)
    assert v.verdict == FAIL and v.score == pytest.approx(33.3) and "critical" not in v.reason


def test_critical_latency_fails_alone_even_with_a_passing_score():
    s = JudgeSettings(weights={"latency": 0.01}, critical=("latency",))
    v = judge(samples(BASE_ERR, BASE_LAT), samples(CAN_ERR, [2 * x for x in CAN_LAT]), s)
    assert v.score > 99 and v.verdict == FAIL and "critical metric failed" in v.reason


def test_zero_baseline_error_rate():
    zeros = [0.0] * 12
    assert classify("error_rate", zeros, zeros).classification == PASS_CLASS  # constant and equal: no difference
    r = classify("error_rate", zeros, [0.01] * 12)
    assert math.isinf(r.effect) and r.classification == HIGH and r.to_dict()["effect"] == "inf"


def test_table_has_every_column_and_the_score():
    v = judge(samples(BASE_ERR, BASE_LAT), samples([3 * e for e in CAN_ERR], CAN_LAT))
    text = verdict_table(v)
    header = text.splitlines()[0]
    for col in ("metric", "baseline median", "canary median", "effect", "p-value", "classification", "score"):
        assert col in header
    assert "error rate (critical)" in text and "High" in text and "2.98x" in text and "-0.40%" in text
    assert text.splitlines()[-1].split("|")[6].strip() == FAIL and v.to_dict()["metrics"][0]["classification"] == HIGH


@pytest.mark.parametrize(
    "kwargs",
    [{"confidence": 1.0}, {"marginal_score": 96}, {"min_samples": 2}, {"metrics": ("cpu",)}, {"weights": {"latency": -1}}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        JudgeSettings(**kwargs)
