"""Issue 15: the runbook's two canary plans, and which one each environment runs (README: "The two canary plans")."""

from latticedb_deploy.canary import plan_for
from latticedb_deploy.config import load_config

CFG = load_config()


def _plan(env_name, params=None):
    return [(s.percent, s.interval_seconds) for s in plan_for(CFG.environment(env_name), params or {})]


def test_production_runs_the_step_5_plan():
    assert _plan("production") == [(p, 600) for p in (5, 15, 25, 50, 100)]


def test_other_environments_run_the_strategy_sections_plan():
    for name in ("dev", "staging"):
        assert _plan(name) == [(p, 300) for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]
    assert _plan("local") == [(p, 10) for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]


def test_step_3_flags_taken_literally_are_eleven_steps():
    plan = _plan("production", {"canary_percent": 5, "step_percent": 10})
    assert [p for p, _ in plan] == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 100]
    assert sum(i for _, i in plan) == 6600  # 110 minutes: beyond step 5's 60-90 minute budget
