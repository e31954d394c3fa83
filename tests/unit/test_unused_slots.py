"""The canary's unused traffic slots are skipped block by block (operators/plan.py), over every kind of plan.

Skipping a slot early lets the next planned step start at once (its only upstream, the skipped slot, is
done), so each block must stop before the plan's next step: a matrix of plans checks that, and that every
slot outside the plan is skipped exactly once and none inside it ever is.
"""

from __future__ import annotations

import pytest

from latticedb_deploy.factory import _slot_task_ids
from latticedb_deploy.operators.plan import unused_slots
from latticedb_deploy.plans import SLOT_PERCENTS
from latticedb_deploy.strategies import CANARY

SLOTS = _slot_task_ids(CANARY)
PLANS = [
    [100],
    [5, 100],
    [25, 50, 100],
    [5, 15, 25, 50, 100],  # production's plan
    list(range(10, 101, 10)),  # the default plan
    [95, 100],
    list(SLOT_PERCENTS),  # every slot
]


def test_every_slot_has_its_shift_and_gate_in_order():
    assert sorted(SLOTS) == list(SLOT_PERCENTS)
    assert SLOTS[25] == ["deploy.shift_traffic_to_25pct", "deploy.gate_25pct"]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: "-".join(map(str, p)))
def test_blocks_cover_exactly_the_slots_outside_the_plan_and_stop_before_the_next_step(plan):
    skipped: list[str] = []
    for after in (None, *plan):  # the plan task, then each gate as it passes
        block = unused_slots(SLOTS, plan, after)
        following = min((p for p in plan if p > (after or 0)), default=None)
        for task_id in block:
            percent = int(task_id.rsplit("_", 1)[1].removesuffix("pct").removeprefix("to_"))
            assert percent > (after or 0), f"{task_id} is behind the step that skips it"
            assert following is None or percent < following, f"{task_id} is past the next step {following}%"
        skipped += block
    planned = {t for p in plan for t in SLOTS[p]}
    assert len(skipped) == len(set(skipped))
    assert set(skipped) == {t for ids in SLOTS.values() for t in ids} - planned


def test_after_a_promote_every_later_slot_is_skipped():
    assert unused_slots(SLOTS, [], 50) == [t for p in SLOT_PERCENTS if p > 50 for t in SLOTS[p]]
    assert unused_slots(SLOTS, [], 100) == []


def test_the_canary_dag_gives_the_plan_step_and_every_gate_the_slots():
    from latticedb_deploy.factory import build_deployment_dag

    dag = build_deployment_dag(CANARY)
    plan = dag.get_task("deploy.plan_traffic_steps")
    assert plan.slot_task_ids == SLOTS
    assert plan.downstream_task_ids == {"deploy.shift_traffic_to_5pct", "rollback.restore_previous_revision"}
    assert dag.get_task("deploy.smoke_test_canary").downstream_task_ids >= {"deploy.plan_traffic_steps"}
    for p in SLOT_PERCENTS:
        assert dag.get_task(f"deploy.gate_{p}pct").slot_task_ids == SLOTS
        assert dag.get_task(f"deploy.shift_traffic_to_{p}pct").trigger_rule == "none_failed"
    assert dag.get_task("rollback.restore_previous_revision").mutation_task_ids == ["deploy.deploy_canary_service"]
