"""latticedb_rollback when the old colour is cold: traffic never goes to a slot with no running task.

After a blue/green deployment has finished, the old colour (blue) is scaled to 0. An emergency
rollback then must not send traffic there before it runs: it rolls the live colour back to the
previous revision in place (traffic stays on running tasks), and verifies the result.
"""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.faults.test_failure_points import BLUE_TG, GREEN_TG, SERVICES, OutageSampler, _healthy_targets
from tests.integration.helpers import image, run_dag

pytestmark = pytest.mark.integration


def test_emergency_rollback_with_a_cold_old_colour_keeps_traffic_on_running_tasks(local, dagbag):
    v1 = local.service(SERVICES[BLUE_TG])["taskDefinition"]
    state, tasks = run_dag(dagbag, "latticedb_deploy_blue_green", {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "bake_seconds": 4, "require_approval": False,
    })
    assert state == "success", tasks
    assert local.weights() == {BLUE_TG: 0, GREEN_TG: 100}
    assert local.service(SERVICES[BLUE_TG])["desiredCount"] == 0  # cold

    with OutageSampler(local) as sampler:
        state, tasks = run_dag(dagbag, "latticedb_rollback", {
            "environment": ENV.name, "target_revision": None, "reason": "v2.0.0 corrupts replication", "notify": True,
        })
        sampler.sample()
    assert state == "success", tasks
    assert not sampler.outages, sampler.outages[:5]
    live = local.service(SERVICES[GREEN_TG])
    assert local.weights() == {BLUE_TG: 0, GREEN_TG: 100}
    assert live["taskDefinition"] == v1 and live["runningCount"] == live["desiredCount"] == 2
    assert _healthy_targets(local, GREEN_TG) == 2
    finished = next(t for t in local.message_texts() if "Emergency rollback finished" in t)
    assert "/health ok, version v1.0.0" in finished, finished
