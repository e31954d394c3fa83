"""deploy.retire_old_stable / deploy.scale_down_old_colour scale the old slot to zero only while it takes no
traffic, read after the lease check right before the scale: an emergency rollback can switch all traffic
back to that slot between the step's shift (a no-op when promotion already moved it) and its scale.

Real parts: the operator and its lease check against a lease table in decorator-mode moto; ECS and the
listener are fakes that record calls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

DAG_ID, RUN_ID = "latticedb_deploy_blue_green", "manual__2026-12-07T10:00:00+00:00"
OWNER = f"{DAG_ID}/{RUN_ID}"
BASELINE = {"service": "svc-blue", "target_group_arn": "tg-blue", "colour": "blue", "idle_service": "svc-green",
            "idle_target_group_arn": "tg-green", "idle_colour": "green", "desired_count": 2, "task_definition": "td:7"}
NEW = {"task_definition": "td:8"}


class Ecs:
    def __init__(self):
        self.scaled = []

    def describe_service(self, name):
        return {"serviceName": name, "taskDefinition": "td:8" if name == "svc-green" else "td:7", "desiredCount": 2,
                "runningCount": 2, "deployments": [{"status": "PRIMARY", "rolloutState": "COMPLETED"}]}

    def scale(self, name, count):
        self.scaled.append((name, count))


class Listener:
    """Green has all traffic (promotion); `then` is what later reads see (an emergency switched back)."""

    def __init__(self, then):
        self.reads, self.then = 0, then

    def weights(self, port=None):
        self.reads += 1
        return {"tg-green": 100, "tg-blue": 0} if self.reads == 1 else dict(self.then)

    def healthy_targets(self, arn):
        return 2

    def set_weights(self, weights, port=None):
        raise AssertionError("no weight change expected: promotion already moved traffic")


@pytest.fixture
def fakes(lock, monkeypatch):
    from latticedb_deploy.aws import guarded_traffic, locks

    monkeypatch.setattr(locks, "boto_client", lambda env, service: lock.client)
    assert lock.acquire(OWNER, ttl_seconds=300) is None
    lock.record_last_good(OWNER, BASELINE)
    ecs = Ecs()
    monkeypatch.setattr(guarded_traffic, "EcsClient", lambda env: ecs)

    def listener(then):
        fake = Listener(then)
        monkeypatch.setattr(guarded_traffic, "TrafficClient", lambda env: fake)
        return fake

    return ecs, listener


def _retire():
    from latticedb_deploy.operators.traffic import RetireOldSlotOperator

    op = RetireOldSlotOperator(task_id="deploy.scale_down_old_colour", baseline=BASELINE, new_revision=NEW)
    op.environment = "local"
    return op


def _context():
    return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": RUN_ID, "ti": SimpleNamespace(dag_id=DAG_ID), "params": {}}


def test_the_old_slot_is_not_scaled_when_traffic_went_back_to_it(fakes):
    ecs, listener = fakes
    listener({"tg-blue": 100, "tg-green": 0})
    with pytest.raises(AirflowFailException, match="refusing to scale down, nothing changed: svc-blue takes 100%"):
        _retire().execute(_context())
    assert ecs.scaled == []  # before: svc-blue scaled to 0 under all of production's traffic


def test_the_old_slot_is_scaled_when_it_has_no_traffic(fakes):
    ecs, listener = fakes
    listener({"tg-green": 100, "tg-blue": 0})
    assert _retire().execute(_context())["retired_service"] == "svc-blue"
    assert ecs.scaled == [("svc-blue", 0)]
