import json

import pytest

from latticedb_deploy.config import load_config
from latticedb_deploy.plans import SLOT_PERCENTS, PlanError, TrafficStep, build_plan


def percents(plan):
    return [s.percent for s in plan]


def test_runbook_default_is_ten_percent_steps():
    plan = build_plan(canary_percent=10, step_percent=10, interval_seconds=300)
    assert percents(plan) == list(range(10, 101, 10))
    assert all(s.interval_seconds == 300 for s in plan)


def test_last_step_is_exactly_100():
    assert percents(build_plan(canary_percent=5, step_percent=10)) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 100]
    assert percents(build_plan(canary_percent=30, step_percent=50)) == [30, 80, 100]
    assert percents(build_plan(canary_percent=100, step_percent=10)) == [100]


def test_explicit_steps_override_the_three_knobs():
    plan = build_plan(canary_percent=50, step_percent=50, interval_seconds=600, traffic_steps=(5, 15, 25, 50, 100))
    assert plan == [TrafficStep(p, 600) for p in (5, 15, 25, 50, 100)]
    assert json.dumps([s.to_dict() for s in plan])
    assert plan[0].to_dict() == {"percent": 5, "interval_seconds": 600}


def test_every_configured_environment_fits_the_canary_dag():
    for env in load_config().environments.values():
        c = env.canary
        plan = build_plan(canary_percent=c.canary_percent, step_percent=c.step_percent,
                          interval_seconds=c.interval_seconds, traffic_steps=c.traffic_steps, allowed=SLOT_PERCENTS)
        assert plan[-1].percent == 100


@pytest.mark.parametrize(
    "steps, words",
    [
        ([], "empty"),
        ([10, 20.5, 100], "traffic step 2 must be a whole number"),
        ([10, True, 100], "traffic step 2 must be a whole number"),
        ([0, 100], "between 1 and 100, got 0"),
        ([50, 101], "between 1 and 100, got 101"),
        ([10, 10, 100], "strictly increase, got 10 after 10"),
        ([50, 20, 100], "strictly increase, got 20 after 50"),
        ([10, 50], "last traffic step must be 100"),
        ("10,100", "must be a list"),
    ],
)
def test_bad_explicit_plans_are_refused(steps, words):
    with pytest.raises(PlanError, match=words):
        build_plan(traffic_steps=steps)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"canary_percent": 0}, "canary_percent must be between 1 and 100"),
        ({"canary_percent": 101}, "canary_percent must be between 1 and 100"),
        ({"step_percent": 0}, "step_percent must be between 1 and 100"),
        ({"step_percent": 2.5}, "step_percent must be a whole number"),
        ({"canary_percent": False}, "canary_percent must be a whole number"),
        ({"interval_seconds": -1}, "interval_seconds"),
    ],
)
def test_bad_knobs_are_refused(kwargs, words):
    with pytest.raises(PlanError, match=words):
        build_plan(**kwargs)


def test_zero_interval_is_allowed():
    assert build_plan(interval_seconds=0)[0].interval_seconds == 0


def test_allowed_percents_name_the_slots():
    assert percents(build_plan(canary_percent=5, step_percent=10, allowed=SLOT_PERCENTS))[0] == 5
    with pytest.raises(PlanError) as err:
        build_plan(canary_percent=7, step_percent=10, allowed=SLOT_PERCENTS)
    msg = str(err.value)
    assert "7%" in msg and "multiples of 5" in msg and "5, 10, 15" in msg and "100" in msg
    with pytest.raises(PlanError, match="allowed traffic steps are 10, 50, 100"):
        build_plan(traffic_steps=[10, 20, 100], allowed={10, 50, 100})
