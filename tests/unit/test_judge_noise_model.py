"""The judge on the local simulator's own noise model (issue 16), seeded: healthy passes, subtle regressions fail."""

import random

import pytest

# benchmarks.judge puts include/local on sys.path and re-exports the local scenarios loader.
from benchmarks.judge import SCENARIO_FILE, load_scenarios, window
from latticedb_deploy.config import load_config
from latticedb_deploy.relative_judge import FAIL, PASS, judge

ENV = load_config().environment("local")
SCENARIOS = load_scenarios(SCENARIO_FILE)
PERIODS = ENV.canary.interval_seconds // ENV.judge_period_seconds  # one local gate window


def verdicts(tag: str, n: int = 40) -> set[str]:
    rng = random.Random(16)
    base = SCENARIOS.behaviour(SCENARIOS.initial)
    out = set()
    for i in range(n):
        b = window(base, PERIODS, i * 37.0, rng)
        c = window(SCENARIOS.behaviour(tag), PERIODS, i * 37.0, rng)
        out.add(judge(b, c, ENV.judge.settings()).verdict)
    return out


def test_a_local_gate_window_has_the_minimum_samples():
    assert PERIODS >= ENV.judge.min_samples


def test_healthy_release_passes_every_window():
    assert verdicts("v2.0.0") == {PASS}


@pytest.mark.parametrize("tag", ["v2.5.0-subtle-errors", "v2.6.0-subtle-latency", "v2.1.0-errors", "v2.2.0-slow"])
def test_regressions_fail_every_window(tag):
    assert verdicts(tag) == {FAIL}


def test_subtle_images_hide_under_the_fixed_thresholds():
    t = ENV.thresholds
    errors, latency = SCENARIOS.behaviour("v2.5.0-subtle-errors"), SCENARIOS.behaviour("v2.6.0-subtle-latency")
    base = SCENARIOS.behaviour(SCENARIOS.initial)
    assert errors.error_rate < t.max_error_rate and errors.error_rate == pytest.approx(3 * base.error_rate)
    assert latency.latency_p95_ms < t.max_p95_ms and latency.latency_p95_ms == pytest.approx(2 * base.latency_p95_ms)
