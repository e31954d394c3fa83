"""The `judge:` block of include/config/latticedb.yaml (issue 16): defaults per environment, bad values refused."""

from pathlib import Path

import pytest
import yaml

from latticedb_deploy.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "include" / "config" / "latticedb.yaml"


def test_modes_default_to_both_for_local_staging_and_production():
    cfg = load_config(REAL)
    modes = {n: cfg.environment(n).judge_mode for n in cfg.environment_names}
    assert {n: modes[n] for n in ("local", "dev", "staging", "production")} == {
        "local": "both", "dev": "absolute", "staging": "both", "production": "both"}
    assert all(modes[n] == "both" for n in modes if n.startswith("local-"))  # copies of local
    local = cfg.environment("local")
    assert local.judge_period_seconds == 1 and cfg.environment("production").judge_period_seconds == 60
    s = local.judge.settings()
    assert (s.confidence, s.pass_score, s.marginal_score, s.min_samples) == (0.98, 95.0, 75.0, 10)
    assert s.metrics == ("error_rate", "latency", "success_rate") and s.critical == ("error_rate",)


def _load(tmp_path, env, judge_block) -> object:
    data = yaml.safe_load(REAL.read_text())
    data["environments"][env]["judge"] = judge_block
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_explicit_settings_reach_the_judge(tmp_path):
    cfg = _load(tmp_path, "dev", {"mode": "relative", "confidence": 0.99, "tolerance": 0.3,
                                  "weights": {"latency": 2}, "critical": [], "min_samples": 12})
    env = cfg.environment("dev")
    s = env.judge.settings()
    assert env.judge_mode == "relative" and s.confidence == 0.99 and s.min_samples == 12
    assert s.tolerance == {"error_rate": 0.3, "latency": 0.3, "success_rate": 0.3}
    assert s.weight_for("latency") == 2.0 and s.weight_for("error_rate") == 1.0 and s.critical == ()
    local = _load(tmp_path, "local", {"mode": "absolute", "tolerance": {"latency": 0.1}}).environment("local")
    assert local.judge_mode == "absolute" and local.judge.settings().tolerance["latency"] == 0.1
    assert local.judge.settings().tolerance["error_rate"] == 0.5  # the others keep their defaults


@pytest.mark.parametrize(
    "block, expected",
    [
        ({"mode": "strict"}, r"environments\.staging\.judge\.mode: must be one of absolute, relative, both"),
        ({"confidnce": 0.9}, r"environments\.staging\.judge\.confidnce: unknown key"),
        ({"confidence": 1.5}, r"judge\.confidence: must be at least 0.5 and below 1"),
        ({"metrics": ["cpu"]}, r"judge\.metrics: unknown metric\(s\) 'cpu'"),
        ({"critical": ["p99"]}, r"judge\.critical: unknown metric\(s\) 'p99'"),
        ({"weights": {"cpu": 1}}, r"judge\.weights\.cpu: unknown metric"),
        ({"weights": {"latency": "heavy"}}, r"judge\.weights\.latency: must be a number >= 0"),
        ({"tolerance": -0.1}, r"judge\.tolerance: must not be negative"),
        ({"tolerance": "wide"}, r"judge\.tolerance: must be a mapping of metric to number \(or one number\)"),
        ({"pass_score": 70}, r"judge\.marginal_score: need 0 <= marginal_score \(75\) <= pass_score \(70\)"),
        ({"min_samples": 2}, r"judge\.min_samples: must be at least 3"),
        ({"period_seconds": 45}, r"judge\.period_seconds: must be 1, 5, 10, 30 or a multiple of 60"),
        ({"metrics": []}, r"judge\.metrics: must be a non-empty list"),
    ],
)
def test_bad_judge_block_names_file_key_and_problem(tmp_path, block, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        _load(tmp_path, "staging", block)
    assert str(tmp_path / "judge.yaml") in str(err.value)


# CloudWatch publishes ALB metrics a minute or two late (Environment.gate_limit_seconds allows two periods).
PUBLICATION_DELAY_PERIODS = 2


@pytest.mark.parametrize("name", ["staging", "production", "local", "dev"])
@pytest.mark.parametrize("interval", [0, 60, 240, 300, 600, 900])
@pytest.mark.parametrize("offset", [0, 1, 30, 59])  # seconds into a clock-aligned period the gate starts at
def test_a_gate_lasts_long_enough_for_the_relative_judge_to_have_its_samples(name, interval, offset):
    """A gate of any interval, started anywhere in a period, can see `min_samples` complete periods a side
    before its deadline when the relative judge decides; otherwise a healthy canary in staging (300 s
    steps, 60 s periods) failed as "inconclusive" at 600 s. With thresholds only, the limit is unchanged."""
    env = load_config(REAL).environment(name)
    period, limit = env.judge_period_seconds, env.gate_limit_seconds(interval)
    assert limit >= interval + max(interval, 30)  # never shorter than the interval's own limit
    if env.judge_mode == "absolute":
        assert limit == interval + max(interval, 30)
        return
    first_whole = (period - offset) % period  # the partial first period does not count
    visible = limit - PUBLICATION_DELAY_PERIODS * period - first_whole
    assert visible // period >= env.judge.min_samples, (limit, visible)
