"""GuardedTraffic checks the caller's lease again after waiting for a slot, right before the weight change:
the environment may change hands during the wait (up to 300 s), and a run that lost it must change nothing.
Narrow unit test: ECS and the listener are fakes that count calls."""

from __future__ import annotations

import pytest

from latticedb_deploy.aws.guarded_traffic import GuardedTraffic
from latticedb_deploy.config import load_config
from latticedb_deploy.readiness import SlotExpectation

NEW = SlotExpectation("svc-green", "tg-green", "td:8", 2)
OLD = SlotExpectation("svc-blue", "tg-blue", "td:7", 2)


class FakeEcs:
    """Blue settled on td:7; green on td:8 running `running` of 2 tasks, one more at each look (tasks take time)."""

    def __init__(self, running: int):
        self.running = running
        self.scaled: list[tuple[str, int]] = []

    def scale(self, name: str, count: int) -> None:
        self.scaled.append((name, count))

    def describe_service(self, name: str) -> dict:
        green = name == NEW.service
        svc = {"serviceName": name, "taskDefinition": "td:8" if green else "td:7", "desiredCount": 2,
               "runningCount": self.running if green else 2,
               "deployments": [{"status": "PRIMARY", "rolloutState": "COMPLETED"}]}
        if green:
            self.running = min(self.running + 1, 2)
        return svc


class FakeListener:
    def __init__(self, ecs: FakeEcs):
        self.ecs, self.changes = ecs, []
        self.current = {"tg-blue": 100, "tg-green": 0}

    def weights(self, port=None) -> dict:
        return dict(self.current)

    def healthy_targets(self, arn: str) -> int:
        return self.ecs.running if arn == NEW.target_group_arn else 2

    def set_weights(self, weights: dict, port=None) -> None:
        self.changes.append(weights)
        self.current = dict(weights)


class LeaseLost(RuntimeError):
    pass


def _guard(running: int) -> tuple[GuardedTraffic, FakeListener]:
    env = load_config().environment("local")
    ecs = FakeEcs(running)
    listener = FakeListener(ecs)
    return GuardedTraffic(env, ecs=ecs, traffic=listener), listener


@pytest.mark.parametrize("running", [0, 1])
def test_a_lease_lost_while_waiting_for_the_slot_changes_nothing(running):
    guard, listener = _guard(running)

    def fence():
        raise LeaseLost("pre-empted by emergency rollback latticedb_rollback/r1")

    with pytest.raises(LeaseLost):
        guard.set_weights({"tg-green": 25, "tg-blue": 75}, [NEW, OLD], wait_seconds=30, fence=fence)
    assert listener.changes == []


def test_the_lease_is_checked_again_only_after_a_wait():
    checks = []
    guard, listener = _guard(2)  # ready at the first look: the caller's own check just before still holds
    assert guard.set_weights({"tg-green": 25, "tg-blue": 75}, [NEW, OLD], wait_seconds=30, fence=lambda: checks.append(1))
    assert (checks, listener.changes) == ([], [{"tg-green": 25, "tg-blue": 75}])
    guard, listener = _guard(1)  # one wait: checked once, then changed
    assert guard.set_weights({"tg-green": 25, "tg-blue": 75}, [NEW, OLD], wait_seconds=30, fence=lambda: checks.append(1))
    assert (checks, listener.changes) == ([1], [{"tg-green": 25, "tg-blue": 75}])


# Scaling a slot to zero (deploy.retire_old_stable, deploy.scale_down_old_colour, rollback.shift_traffic_back)
# reads the weights after the caller's lease check, not before its shift: an emergency rollback may have
# switched all traffic back to that slot in between, and scaling it then is an outage.
def test_a_slot_that_takes_traffic_is_never_scaled_to_zero():
    from latticedb_deploy.aws.guarded_traffic import SlotInUse

    guard, listener = _guard(2)
    assert guard.set_weights({"tg-green": 100, "tg-blue": 0}, [NEW, OLD], wait_seconds=30)

    def emergency_switched_back():  # between the shift and the scale: the fence still passes (a race)
        listener.current = {"tg-blue": 100, "tg-green": 0}

    with pytest.raises(SlotInUse, match="svc-blue takes 100% of traffic"):
        guard.scale_to_zero("svc-blue", "tg-blue", fence=emergency_switched_back)
    assert guard.ecs.scaled == []
    guard.scale_to_zero("svc-green", "tg-green")
    assert guard.ecs.scaled == [("svc-green", 0)]


def test_a_lease_lost_before_a_scale_down_changes_nothing():
    guard, listener = _guard(2)
    listener.current = {"tg-green": 100, "tg-blue": 0}

    def fence():
        raise LeaseLost("pre-empted by emergency rollback latticedb_rollback/r1")

    with pytest.raises(LeaseLost):
        guard.scale_to_zero("svc-blue", "tg-blue", fence=fence)
    assert guard.ecs.scaled == []


class LaggingEcs(FakeEcs):
    """The restored slot: updated to 2 tasks a moment ago, its first `stale` reads still show 0 (ECS's reads
    are eventually consistent), then it runs 2."""

    def __init__(self, stale: int):
        super().__init__(2)
        self.stale = stale

    def describe_service(self, name: str) -> dict:
        svc = super().describe_service(name)
        if name == OLD.service and self.stale > 0:
            self.stale -= 1
            svc.update(desiredCount=0, runningCount=0)
        return svc


def _lagging(stale: int, monkeypatch) -> tuple[GuardedTraffic, FakeListener]:
    from latticedb_deploy.aws import guarded_traffic

    monkeypatch.setattr(guarded_traffic, "STALE_READ_SECONDS", 0.3)
    env = load_config().environment("local")
    ecs = LaggingEcs(stale)
    listener = FakeListener(ecs)
    listener.current = {"tg-blue": 0, "tg-green": 100}
    return GuardedTraffic(env, ecs=ecs, traffic=listener), listener


def test_a_slot_that_reads_as_before_its_update_is_read_again_not_refused(monkeypatch):
    """rollback.shift_traffic_back right after restore_previous_revision scaled the old slot back up: the
    first read may still show it at 0. Refusing then failed the rollback (ROLLBACK FAILED) for nothing."""
    guard, listener = _lagging(1, monkeypatch)
    assert guard.set_weights({"tg-blue": 100, "tg-green": 0}, [OLD, NEW], wait_seconds=30)
    assert listener.changes == [{"tg-blue": 100, "tg-green": 0}]


def test_a_slot_that_keeps_reading_as_not_converging_is_refused(monkeypatch):
    from latticedb_deploy.aws.guarded_traffic import SlotNotReady

    guard, listener = _lagging(10**6, monkeypatch)
    with pytest.raises(SlotNotReady, match="svc-blue"):
        guard.set_weights({"tg-blue": 100, "tg-green": 0}, [OLD, NEW], wait_seconds=30)
    assert listener.changes == []
    with pytest.raises(SlotNotReady, match="svc-blue"):  # no wait allowed (emergency switch): at once
        guard.set_weights({"tg-blue": 100, "tg-green": 0}, [OLD, NEW], wait_seconds=0)
