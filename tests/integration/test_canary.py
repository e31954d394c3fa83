"""latticedb_deploy_canary against the local environment: gates read the simulator's CloudWatch metrics."""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.integration.helpers import history, image, run_dag, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_canary"
FAST = {"traffic_steps": [25, 50, 100], "interval_seconds": 6}


def test_v2_is_promoted_to_100pct_and_the_old_slot_scaled_to_zero(local, dagbag):
    before = local.service()
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name, **FAST})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    state, tasks = dr.state, {t: ti.state for t, ti in tis.items()}
    assert state == "success", tasks
    # The slots outside the plan were skipped ahead, never started in a worker (operators/plan.py) ...
    unused = [t for t in tis if t.startswith(("deploy.shift_traffic_to_", "deploy.gate_"))
              and int(t.rsplit("_", 1)[1].removesuffix("pct")) not in (25, 50, 100)]
    assert len(unused) == 34 and all(tis[t].state == "skipped" and tis[t].try_number == 0 for t in unused), \
        {t: (tis[t].state, tis[t].try_number) for t in unused}
    # ... and the plan's steps still ran one after the other: no shift before the previous gate passed.
    order = ["deploy.plan_traffic_steps"] + [f"deploy.{k}_{p}pct" for p in (25, 50, 100) for k in ("shift_traffic_to", "gate")]
    for earlier, later in zip(order, order[1:], strict=False):
        assert tis[later].start_date >= tis[earlier].end_date, (earlier, later)
    assert xcom(DAG_ID, dr.run_id, "deploy.plan_traffic_steps")["plan"] == [
        {"percent": p, "interval_seconds": 6} for p in (25, 50, 100)]
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    green, blue = local.service(ENV.green_service), local.service()
    assert local.task_definition_image(green["taskDefinition"]).endswith(local.digest("v2.0.0"))
    assert green["desiredCount"] == green["runningCount"] == before["desiredCount"]
    assert blue["desiredCount"] == 0
    assert blue["taskDefinition"] == before["taskDefinition"]  # kept for rollback
    for p in (25, 50, 100):
        assert tasks[f"deploy.shift_traffic_to_{p}pct"] == "success"
        assert tasks[f"deploy.gate_{p}pct"] == "success"
    assert tasks["deploy.shift_traffic_to_10pct"] == "skipped"
    [record] = history()  # one history record per run, with what the Deployments page shows
    assert (record.outcome, record.strategy, record.dag_id, record.version) == ("succeeded", "canary", DAG_ID, "v2.0.0")
    assert record.digest == local.digest("v2.0.0") and record.image.endswith(record.digest)
    assert record.failed_step is None and record.time_to_restore_seconds is None and record.image_pushed_at
    assert record.started < record.finished and record.run_link and record.triggered_by


def test_second_canary_needs_no_cleanup_and_goes_back_to_blue(local, dagbag):
    conf = {"environment": ENV.name, **FAST}
    assert run_dag(dagbag, DAG_ID, {**conf, "image_uri": image("v2.0.0")})[0] == "success"
    state, tasks = run_dag(dagbag, DAG_ID, {**conf, "image_uri": image("v1.9.0")})
    assert state == "success", tasks
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service(ENV.green_service)["desiredCount"] == 0


def test_errors_fail_the_first_gate_and_roll_back(local, dagbag):
    before = local.service()
    state, tasks = run_dag(
        dagbag, DAG_ID, {"image_uri": image("v2.1.0-errors"), "environment": ENV.name, **FAST}
    )
    assert state == "failed"
    assert tasks["deploy.gate_25pct"] == "failed"
    assert tasks["deploy.shift_traffic_to_50pct"] == "upstream_failed"
    assert tasks["rollback.restore_previous_revision"] == "success"
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == before["taskDefinition"]
    assert local.service(ENV.green_service)["desiredCount"] == 0
    rollback = [m for m in local.message_texts() if "Rollback started" in m]
    assert rollback and "25%" in rollback[0] and "error" in rollback[0].lower(), local.message_texts()
    [record] = history()
    assert (record.outcome, record.version, record.failed_step) == ("rolled_back", "v2.1.0-errors", "deploy.gate_25pct")
    # measured and short: one listener call at 25 % can be under 0.05 s, which the record rounds to 0.0
    assert "error" in record.reason.lower() and 0 <= record.time_to_restore_seconds < 60, record


def test_slow_version_fails_on_latency(local, dagbag):
    state, tasks = run_dag(dagbag, DAG_ID, {"image_uri": image("v2.2.0-slow"), "environment": ENV.name, **FAST})
    assert state == "failed"
    assert tasks["deploy.gate_25pct"] == "failed"
    assert local.weights()[ENV.blue_tg] == 100
    rollback = [m for m in local.message_texts() if "Rollback started" in m]
    assert rollback and "ms" in rollback[0], local.message_texts()


@pytest.mark.parametrize("steps", [[10, 50], [50, 25, 100], [10, 33, 100]])
def test_bad_plan_is_refused_before_anything_changes(local, dagbag, steps):
    revisions = local.revisions()
    state, tasks = run_dag(
        dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": steps}
    )
    assert state == "failed"
    assert tasks["preflight.check_traffic_plan"] == "failed"
    assert tasks["deploy.deploy_canary_service"] == "upstream_failed"
    assert local.revisions() == revisions
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}


def test_auto_rollback_off_leaves_traffic_as_it_is_and_says_so(local, dagbag):
    state, tasks = run_dag(
        dagbag, DAG_ID,
        {"image_uri": image("v2.1.0-errors"), "environment": ENV.name, "auto_rollback": False, **FAST},
    )
    assert state == "failed"
    assert tasks["deploy.gate_25pct"] == "failed"
    assert tasks["rollback.restore_previous_revision"] == "skipped"
    assert local.weights() == {ENV.green_tg: 25, ENV.blue_tg: 75}  # left as it was
    loud = [t for t in local.message_texts() if "auto-rollback disabled" in t]
    assert loud and "AUTO-ROLLBACK DISABLED" in loud[0], local.message_texts()
