"""The AWS endpoint goes away in the middle of a traffic shift and comes back.

`moto_down` arms on the 2nd ModifyListener of the canary (the 1st is deploy_canary_service
pinning weight 0; the 2nd is shift_traffic_to_25pct), lets that call change the listener and loses
its answer ("after"), then drops every connection for a while. The client retries with backoff; the
task's own retries (exponential) carry it over the outage; the shift converges to the same weights.
"""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.faults.driver import BLUE, GREEN, WeightWatcher, aws_stats, faults, listener_is_whole, task_states
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_canary"
FAST = {"traffic_steps": [25, 50, 100], "interval_seconds": 6}


def test_endpoint_down_mid_shift_then_back_carries_on(local, dagbag):
    faults(local, moto_down={"seconds": 12, "on": "ModifyListener", "nth": 2, "when": "after"})
    with WeightWatcher(local) as watch:
        dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name, **FAST})
    stats = aws_stats(local)
    states = task_states(dr)
    # The fault really hit the shift: its ModifyListener was applied, its answer lost, calls dropped.
    assert stats["applied_then_dropped"] == ["ModifyListener"], stats
    assert stats["dropped"] >= 2, stats
    # Survived: carried on to promotion; nothing failed for good.
    assert dr.state == "success", states
    assert states["rollback.restore_previous_revision"] == "skipped"
    assert local.weights() == {GREEN: 100, BLUE: 0}
    assert listener_is_whole(local)
    assert local.task_definition_image(local.service(ENV.green_service)["taskDefinition"]).endswith(
        local.digest("v2.0.0")
    )
    # The listener only ever went through the plan's states.
    seen = [w for _, w in watch.seen]
    assert all(w.get(GREEN) in (0, 25, 50, 100) and sum(w.values()) == 100 for w in seen), seen
    assert any("canary deployment succeeded" in t for t in local.message_texts()), local.message_texts()
