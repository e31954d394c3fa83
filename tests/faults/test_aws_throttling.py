"""AWS throttling on the calls that matter is retried by the client, not failed.

`throttle` answers ThrottlingException (the service's own protocol, HTTP 400) to the first two calls
of every AWS operation the deployment makes (STS, ECR, ECS, ELBv2, CloudWatch, DynamoDB lease).
The SDK's retry handler backs off and retries; no task needs an Airflow retry.
"""

from __future__ import annotations

import pytest

from tests.envs import ENV
from tests.faults.driver import aws_stats, faults, task_states, tries
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration
MATTER = ("UpdateService", "DescribeServices", "RegisterTaskDefinition", "DescribeTaskDefinition", "DescribeListeners")


def test_rolling_deploy_survives_throttling_on_every_operation(local, dagbag):
    before = local.service()
    faults(local, throttle={"operations": ["*"], "count": 2})
    dr = run_dag_run(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    throttled = aws_stats(local)["throttled"]
    states = task_states(dr)
    for op in MATTER:  # the fault really hit the calls that matter, twice each
        assert throttled.get(op) == 2, throttled
    assert dr.state == "success", states
    # Retried by the client: not one task needed a second try.
    assert {t: n for t, n in tries(dr).items() if n > 1} == {}, tries(dr)
    after = local.service()
    assert after["taskDefinition"] != before["taskDefinition"]
    assert local.task_definition_image(after["taskDefinition"]).endswith(f"{ENV.repository}@" + local.digest("v2.0.0"))
    assert after["runningCount"] == after["desiredCount"] == before["desiredCount"]
    assert local.weights()[ENV.blue_tg] == 100
    assert len(local.revisions()) == 2  # one new revision, not one per retry
    assert any("rolling deployment succeeded" in t for t in local.message_texts()), local.message_texts()
