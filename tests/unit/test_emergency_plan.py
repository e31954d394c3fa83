"""The emergency rollback's plan (operators.emergency.choose): over every point of a deployment where it
can be triggered, its target is the revision that served before the deployment, and the path it picks
never gives traffic to a slot without a settled fleet.

Each case is a state of production as the plan reads it (the listener's weights, each colour's service)
and, when the rollback pre-empted a deployment, that deployment's last good state (kept on its lease).
"""

from __future__ import annotations

import pytest

from latticedb_deploy.operators.emergency import NOTHING, SWITCH, UPDATE, choose

OLD, NEW, OLDER = "arn:td/latticedb:7", "arn:td/latticedb:8", "arn:td/latticedb:6"
ACTIVE = [NEW, OLD, OLDER]


def service(name: str, td: str, count: int = 2, rolling: bool = False) -> dict:
    deployments = [{"status": "PRIMARY", "rolloutState": "IN_PROGRESS" if rolling else "COMPLETED"}]
    if rolling:
        deployments.append({"status": "ACTIVE", "rolloutState": "COMPLETED"})
    return {"serviceName": name, "taskDefinition": td, "desiredCount": count,
            "runningCount": count if not rolling else count - 1, "deployments": deployments}


def slots(weights: dict, blue: dict, green: dict) -> dict:
    """What PlanRollbackOperator passes: the slot with most traffic is "live" (blue wins a tie), as
    TrafficClient.live_and_idle reads the listener."""
    live_is_green = weights["green"] > weights["blue"]
    live, idle = (green, blue) if live_is_green else (blue, green)
    return {"live": live, "idle": idle, "live_weight": weights["green" if live_is_green else "blue"]}


def last_good(svc: str, td: str) -> dict:
    return {"service": svc, "task_definition": td, "desired_count": 2}


# (case, weights, blue, green, the pre-empted deployment's last good state, expected mode, the slot left serving)
# Blue served OLD before each deployment; the new revision goes to green (canary, blue/green) or onto blue (rolling).
CASES = [
    ("canary 10%", {"blue": 90, "green": 10}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), UPDATE, "blue"),
    ("canary 50% (tie)", {"blue": 50, "green": 50}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), UPDATE, "blue"),
    ("canary 60%", {"blue": 40, "green": 60}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), SWITCH, "blue"),
    ("canary 90%", {"blue": 10, "green": 90}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), SWITCH, "blue"),
    ("canary 100%, stable still up", {"blue": 0, "green": 100}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), SWITCH, "blue"),
    ("canary promoted, old stable retired", {"blue": 0, "green": 100}, service("blue", OLD, 0), service("green", NEW), last_good("blue", OLD), UPDATE, "green"),
    ("canary on blue at 50% (green stable)", {"blue": 50, "green": 50}, service("blue", NEW), service("green", OLD), last_good("green", OLD), SWITCH, "green"),
    ("canary on blue at 30% (green stable)", {"blue": 30, "green": 70}, service("blue", NEW), service("green", OLD), last_good("green", OLD), UPDATE, "green"),
    ("blue/green new colour warm, awaiting approval", {"blue": 100, "green": 0}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), NOTHING, "blue"),
    ("blue/green switched, baking", {"blue": 0, "green": 100}, service("blue", OLD), service("green", NEW), last_good("blue", OLD), SWITCH, "blue"),
    ("blue/green old colour scaled down", {"blue": 0, "green": 100}, service("blue", OLD, 0), service("green", NEW), last_good("blue", OLD), UPDATE, "green"),
    ("rolling, rollout in progress", {"blue": 100, "green": 0}, service("blue", NEW, rolling=True), service("green", OLD, 0), last_good("blue", OLD), UPDATE, "blue"),
    ("rolling, rollout done", {"blue": 100, "green": 0}, service("blue", NEW), service("green", OLD, 0), last_good("blue", OLD), UPDATE, "blue"),
]


@pytest.mark.parametrize(("case", "weights", "blue", "green", "good", "mode", "serving"), CASES, ids=[c[0] for c in CASES])
def test_a_preempted_deployment_is_rolled_back_to_its_last_good_revision(case, weights, blue, green, good, mode, serving):
    plan = choose(**slots(weights, blue, green), requested=None, active=ACTIVE, last_good=good)
    assert plan["target_task_definition"] == OLD, plan
    assert plan["mode"] == mode, plan
    assert plan["from_last_good"] is True
    live = slots(weights, blue, green)["live"]
    left = {SWITCH: slots(weights, blue, green)["idle"], UPDATE: live, NOTHING: live}[mode]
    assert left["serviceName"] == serving
    if mode == SWITCH:  # one listener call: only to a settled fleet already on the target
        assert left["taskDefinition"] == OLD and left["runningCount"] == left["desiredCount"] > 0


def test_without_a_preempted_deployment_the_plan_reads_production_as_before():
    """No run was pre-empted (or it had not recorded its baseline): the warm idle colour behind a full
    live one, the live colour's own revision when traffic is split, else the previous revision."""
    warm = choose(**slots({"blue": 100, "green": 0}, service("blue", NEW), service("green", OLD)), requested=None, active=ACTIVE)
    assert (warm["mode"], warm["target_task_definition"], warm["from_last_good"]) == (SWITCH, OLD, False)
    split = choose(**slots({"blue": 75, "green": 25}, service("blue", OLD), service("green", NEW)), requested=None, active=ACTIVE)
    assert (split["mode"], split["target_task_definition"]) == (UPDATE, OLD)
    settled = choose(**slots({"blue": 100, "green": 0}, service("blue", NEW), service("green", OLD, 0)), requested=None, active=ACTIVE)
    assert (settled["mode"], settled["target_task_definition"]) == (UPDATE, OLD)


def test_a_named_target_wins_over_the_last_good_state():
    plan = choose(**slots({"blue": 40, "green": 60}, service("blue", OLD), service("green", NEW)), requested=OLDER,
                  active=ACTIVE, last_good=last_good("blue", OLD))
    assert (plan["mode"], plan["target_task_definition"], plan["from_last_good"]) == (UPDATE, OLDER, False)
