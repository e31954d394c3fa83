"""Steps as data: every step kind a strategy uses has a builder; an unknown one is refused by name."""

from __future__ import annotations

import pytest

from latticedb_deploy.factory import STEP_BUILDERS, StepContext, build_deployment_dag, build_step, step_builder
from latticedb_deploy.strategies import BLUE_GREEN, CANARY, ROLLING, Step, Strategy

STRATEGIES = (ROLLING, CANARY, BLUE_GREEN)


def test_every_step_of_every_strategy_has_a_builder():
    kinds = {s.kind for strategy in STRATEGIES for s in (*strategy.deploy, *strategy.rollback)}
    assert kinds <= set(STEP_BUILDERS), kinds - set(STEP_BUILDERS)


def test_an_unknown_step_kind_names_the_strategy_and_the_kind():
    odd = Strategy(name="teleport", summary="?", deploy=(Step("update_service"), Step("beam_me_up")), rollback=ROLLING.rollback)
    with pytest.raises(ValueError, match=r"strategy 'teleport': unknown step 'beam_me_up'"):
        build_step(Step("beam_me_up"), StepContext(odd))
    with pytest.raises(ValueError, match=r"strategy 'teleport': unknown step 'beam_me_up'"):
        build_deployment_dag(odd, dag_id="latticedb_test_unknown_step")


def test_a_kind_cannot_get_a_second_builder():
    with pytest.raises(ValueError, match="'gate' has two builders"):
        step_builder("gate")(lambda step, ctx: None)
    assert STEP_BUILDERS["gate"].__name__ == "_gate"  # the first one stays


def test_the_builders_make_the_tasks_the_steps_name():
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor

    ctx = StepContext(CANARY, mutation_task_ids=("deploy.deploy_canary_service",), gate_task_ids=("deploy.gate_5pct",))
    gate = build_step(Step("gate", 25), ctx)
    assert isinstance(gate, MetricGateSensor) and gate.task_id == "gate_25pct" and gate.percent == 25
    assert gate.trigger_rule == "none_failed" and not gate.is_bake
    bake = build_step(Step("bake"), StepContext(BLUE_GREEN))
    assert isinstance(bake, MetricGateSensor) and bake.is_bake and bake.interval_seconds is None
    restore = build_step(Step("restore_previous_revision"), ctx)
    assert restore.trigger_rule == "one_failed"
    assert (restore.mutation_task_ids, restore.gate_task_ids) == (["deploy.deploy_canary_service"], ["deploy.gate_5pct"])
