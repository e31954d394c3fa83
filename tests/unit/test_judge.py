import json

import pytest

from latticedb_deploy.config import load_config
from latticedb_deploy.judge import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    GateCriteria,
    MetricWindow,
    decide,
    evaluate,
)

CRIT = GateCriteria(max_error_rate=0.05, max_latency_ms=1000, min_success_rate=0.95, min_requests=20)


def window(requests=100, errors=0, latency=100.0):
    return MetricWindow("2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z", requests, errors, latency)


def ev(verdict, step=25, crit=CRIT):
    w = {PASS: window(), FAIL: window(errors=50), INCONCLUSIVE: window(requests=3)}[verdict]
    e = evaluate(step, w, crit)
    assert e.verdict == verdict
    return e


def test_criteria_from_environment():
    cfg = load_config()
    prod = GateCriteria.from_environment(cfg.environment("production"), tolerated_failures=2)
    assert (prod.max_error_rate, prod.max_latency_ms, prod.min_success_rate) == (0.05, 1000, 0.95)
    assert (prod.min_requests, prod.latency_statistic, prod.tolerated_failures) == (50, "p95", 2)
    local = GateCriteria.from_environment(cfg.environment("local"))
    assert (local.min_requests, local.latency_statistic, local.tolerated_failures) == (20, "Maximum", 0)


def test_healthy_window_passes():
    e = evaluate(10, window(requests=812, errors=4, latency=140.0), CRIT)
    assert e.verdict == PASS and e.reasons == ()
    assert e.requests == 812 and e.error_rate == pytest.approx(4 / 812) and e.success_rate == pytest.approx(808 / 812)
    assert e.summary == "10%: 812 req, error 0.5% (max 5.0%), p95 140 ms -> pass"


def test_error_rate_equal_to_max_fails():
    e = evaluate(25, window(requests=100, errors=5), GateCriteria(0.05, 1000, 0.90, 20))
    assert e.verdict == FAIL
    assert e.reasons == ("error rate 5.0% is not below the maximum 5.0%",)
    assert evaluate(25, window(requests=1000, errors=49), GateCriteria(0.05, 1000, 0.90, 20)).verdict == PASS


def test_success_rate_equal_to_min_fails():
    e = evaluate(25, window(requests=100, errors=5), GateCriteria(0.10, 1000, 0.95, 20))
    assert e.verdict == FAIL
    assert e.reasons == ("success rate 95.0% is not above the minimum 95.0%",)


def test_latency_equal_to_max_fails():
    e = evaluate(25, window(latency=1000.0), CRIT)
    assert e.verdict == FAIL and e.reasons == ("p95 latency 1000 ms is not below the maximum 1000 ms",)
    assert evaluate(25, window(latency=999.9), CRIT).verdict == PASS


def test_failure_names_every_breach_with_values_and_limits():
    e = evaluate(25, window(requests=812, errors=98, latency=1400.0), CRIT)
    assert e.verdict == FAIL
    assert e.reasons == (
        "error rate 12.1% is not below the maximum 5.0%",
        "success rate 87.9% is not above the minimum 95.0%",
        "p95 latency 1400 ms is not below the maximum 1000 ms",
    )
    assert e.summary == "25%: 812 req, error 12.1% (max 5.0%), p95 1400 ms -> fail"


def test_just_over_the_limit_does_not_print_as_equal():
    e = evaluate(5, window(requests=10000, errors=501), CRIT)
    assert e.reasons[0] == "error rate 5.01% is not below the maximum 5.00%"


def test_too_few_requests_is_inconclusive_never_pass_or_fail():
    assert evaluate(5, window(requests=19, errors=0), CRIT).verdict == INCONCLUSIVE
    bad = evaluate(5, window(requests=3, errors=3, latency=5000.0), CRIT)
    assert bad.verdict == INCONCLUSIVE and bad.reasons == ("only 3 requests in the window, need 20",)
    assert "-> inconclusive (only 3 requests" in bad.summary
    assert evaluate(5, window(requests=20), CRIT).verdict == PASS


def test_zero_requests_is_inconclusive_with_no_rates():
    e = evaluate(5, window(requests=0, errors=0, latency=None), CRIT)
    assert e.verdict == INCONCLUSIVE and e.error_rate is None and e.success_rate is None
    assert "no requests" in e.reasons[0]
    assert evaluate(5, window(requests=0), GateCriteria(0.05, 1000, 0.95, 0)).verdict == INCONCLUSIVE
    assert e.summary.startswith("5%: 0 req, error n/a")


def test_missing_latency_datapoints_is_inconclusive():
    e = evaluate(5, window(requests=500, errors=0, latency=None), CRIT)
    assert e.verdict == INCONCLUSIVE and e.reasons == ("no p95 latency datapoints in the window",)
    assert "p95 n/a" in e.summary


def test_error_breach_fails_even_without_latency_datapoints():
    e = evaluate(5, window(requests=500, errors=100, latency=None), CRIT)
    assert e.verdict == FAIL


def test_float_sums_from_cloudwatch_are_accepted():
    e = evaluate(5, window(requests=100.0, errors=1.0, latency=12.5), CRIT)
    assert e.requests == 100 and isinstance(e.requests, int) and e.verdict == PASS


def test_to_dict_is_json_serialisable():
    for e in (ev(PASS), ev(FAIL), ev(INCONCLUSIVE), evaluate(5, window(0, 0, None), CRIT)):
        record = json.loads(json.dumps(e.to_dict()))
        assert record["verdict"] == e.verdict and record["reasons"] == list(e.reasons)
        assert record["step"] == 25 or record["step"] == 5


# decide(): now / interval_end / deadline as epoch seconds
T0, END, DEADLINE = 1000.0, 1300.0, 1600.0


def gate(evals, now, crit=CRIT):
    return decide(evals, criteria=crit, now=now, interval_end=END, deadline=DEADLINE)


def test_keeps_watching_before_interval_end_even_when_passing():
    d = gate([ev(PASS)], now=T0 + 60)
    assert (d.done, d.passed) == (False, None) and d.reason.startswith("watching:")
    assert gate([], now=T0).done is False


def test_passes_at_interval_end_on_a_passing_latest_window():
    d = gate([ev(INCONCLUSIVE), ev(PASS)], now=END)
    assert (d.done, d.passed) == (True, True) and "-> pass" in d.reason


def test_failure_ends_the_gate_before_interval_end_with_zero_tolerance():
    d = gate([ev(PASS), ev(FAIL)], now=T0 + 10)
    assert (d.done, d.passed) == (True, False)
    assert "error rate 50.0% is not below the maximum 5.0%" in d.reason and d.reason.startswith("at 25%")


def test_tolerance_of_two_failures():
    crit = GateCriteria(0.05, 1000, 0.95, 20, tolerated_failures=2)
    two = [ev(FAIL, crit=crit), ev(PASS, crit=crit), ev(FAIL, crit=crit)]
    assert gate(two, now=T0 + 10, crit=crit).done is False
    # a tolerated failure as the latest window is not a pass: wait for the deadline, then fail
    assert gate(two, now=END, crit=crit).done is False
    late = gate(two, now=DEADLINE, crit=crit)
    assert (late.done, late.passed) == (True, False) and "error rate" in late.reason
    # ...but a later passing window passes
    assert gate([*two, ev(PASS, crit=crit)], now=END, crit=crit).passed is True
    third = gate([*two, ev(FAIL, crit=crit)], now=T0 + 10, crit=crit)
    assert (third.done, third.passed) == (True, False)
    assert third.reason.startswith("at 25%: 3 failing windows, more than the 2 tolerated: error rate")


def test_failure_beyond_tolerance_wins_over_a_later_pass():
    d = gate([ev(FAIL), ev(PASS)], now=END)
    assert (d.done, d.passed) == (True, False)


def test_inconclusive_waits_until_deadline_then_fails():
    evals = [ev(INCONCLUSIVE)]
    assert gate(evals, now=END).done is False
    assert gate(evals, now=DEADLINE - 1).done is False
    d = gate(evals, now=DEADLINE)
    assert (d.done, d.passed) == (True, False)
    assert d.reason == "inconclusive: only 3 requests in the window, need 20"


def test_missing_datapoints_at_deadline_fail_as_inconclusive():
    miss = evaluate(25, window(requests=500, latency=None), CRIT)
    d = gate([miss], now=DEADLINE + 5)
    assert d.reason == "inconclusive: no p95 latency datapoints in the window" and d.passed is False


def test_no_evaluations_at_deadline():
    assert gate([], now=END).done is False
    d = gate([], now=DEADLINE)
    assert (d.done, d.passed, d.reason) == (True, False, "inconclusive: no metrics")
