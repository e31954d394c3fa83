"""The environment lease: one holder at a time, renewable by its owner, expiring after a crash."""

import pytest

from latticedb_deploy.config import load_config


def test_second_owner_is_told_who_holds_it(lock):
    assert lock.acquire("canary/run-1", ttl_seconds=60, now=1000) is None
    holder = lock.acquire("rolling/run-2", ttl_seconds=60, now=1010)
    assert holder is not None and holder.owner == "canary/run-1" and holder.expires_at == 1060


def test_owner_may_renew_and_release(lock):
    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    assert lock.acquire("a/1", ttl_seconds=60, now=1030) is None  # a retried task converges
    assert lock.release("b/2") is False
    assert lock.release("a/1") is True
    assert lock.holder() is None
    assert lock.acquire("b/2", ttl_seconds=60, now=1031) is None


def test_a_crashed_holder_expires(lock):
    assert lock.acquire("crashed/1", ttl_seconds=60, now=1000) is None
    assert lock.acquire("next/2", ttl_seconds=60, now=1059) is not None
    assert lock.acquire("next/2", ttl_seconds=60, now=1061) is None
    assert lock.holder().owner == "next/2"


def test_a_failed_write_is_never_counted_as_acquired(lock):
    """The holder releases between our failed conditional write and our read: write again, then say so."""
    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    real_get = lock.client.get_item
    calls = []

    def get_after_release(**kwargs):
        if not calls:
            lock.release("a/1")
        calls.append(kwargs)
        return real_get(**kwargs)

    lock.client.get_item = get_after_release
    assert lock.acquire("b/2", ttl_seconds=60, now=1010) is None
    lock.client.get_item = real_get
    assert lock.holder().owner == "b/2"


@pytest.mark.parametrize("ttl", [0, -5])
def test_a_lease_that_never_lasts_is_refused_at_load(tmp_path, ttl):
    from latticedb_deploy.config import DEFAULT_CONFIG_PATH, ConfigError

    text = DEFAULT_CONFIG_PATH.read_text().replace("  local:\n", f"  local:\n    lock_ttl_seconds: {ttl}\n", 1)
    path = tmp_path / "latticedb.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"environments\.local\.lock_ttl_seconds: must be positive"):
        load_config(path)


def test_renewal_extends_the_owners_lease_and_fences_everyone_else(lock):
    from latticedb_deploy.aws.locks import LeaseLostError

    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    assert lock.renew("a/1", ttl_seconds=60, now=1050).expires_at == 1110
    assert lock.acquire("b/2", ttl_seconds=60, now=1100) is not None  # still a's: renewed
    with pytest.raises(LeaseLostError, match="LEASE LOST: environment 'local' is now held by a/1"):
        lock.renew("b/2", ttl_seconds=60, now=1100)


def test_emergency_take_preempts_and_the_preempted_run_learns_why(lock):
    from latticedb_deploy.aws.locks import LeaseLostError

    assert lock.acquire("deploy/1", ttl_seconds=60, now=1000) is None
    previous = lock.take("latticedb_rollback/r1", "INC-1: errors", ttl_seconds=60, now=1010)
    assert previous.owner == "deploy/1"
    with pytest.raises(LeaseLostError, match=r"pre-empted by emergency rollback latticedb_rollback/r1 .*INC-1: errors.*it owns"):
        lock.renew("deploy/1")
    assert lock.release("latticedb_rollback/r1") is True
    assert lock.holder() is None  # free again ...
    with pytest.raises(LeaseLostError, match=r"pre-empted by emergency rollback latticedb_rollback/r1 .*has since given it back"):
        lock.renew("deploy/1")  # ... and the pre-empted run still learns who stopped it
    assert lock.acquire("next/2", ttl_seconds=60, now=2000) is None


def test_a_blocked_lease_never_expires_and_only_a_person_clears_it(lock):
    assert lock.acquire("deploy/1", ttl_seconds=60, now=1000) is None
    assert lock.block("other/9", "rollback failed at x") is False  # not its lease
    assert lock.block("deploy/1", "rollback failed at rollback.restore_previous_revision in deploy/1") is True
    holder = lock.acquire("next/2", ttl_seconds=60, now=99999)  # long after it would have expired
    assert holder is not None and holder.owner == "deploy/1" and "rollback failed" in holder.blocked
    assert lock.acquire("deploy/1", ttl_seconds=60, now=99999) is not None  # not even its own run, re-run
    assert lock.clear(expected_owner="someone/else") is False
    assert lock.clear(expected_owner="deploy/1") is True
    assert lock.acquire("next/2", ttl_seconds=60, now=99999) is None


def test_a_renewal_is_one_call_that_returns_the_item_it_wrote(lock):
    """Every poll of every wait renews the lease: the conditional update returns the item it left
    (ReturnValues ALL_NEW, a person's control signal included), instead of a second read."""
    from harness.aws_calls import AwsCallCounter

    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    assert lock.signal("a/1", '{"action": "pause"}', None) is True
    with AwsCallCounter() as calls:
        holder = lock.renew("a/1", ttl_seconds=60, now=1050)
    assert dict(calls.calls) == {("dynamodb", "UpdateItem"): 1}
    assert (holder.owner, holder.expires_at, holder.control) == ("a/1", 1110, '{"action": "pause"}')


def test_a_deployments_last_good_state_goes_with_its_lease_to_the_emergency_take(lock):
    """prepare.record_baseline writes what served before the deployment on the run's lease; the emergency
    rollback that pre-empts the run reads it from the holder it took over (its default target). Only the
    holder can write it, and it never outlives the lease it was written on."""
    from latticedb_deploy.aws.locks import LeaseLostError

    baseline = {"service": "svc-blue", "task_definition": "arn:aws:ecs:us-east-1:1:task-definition/f:7", "weights": {"b": 100}}
    assert lock.acquire("deploy/1", ttl_seconds=60, now=1000) is None
    with pytest.raises(LeaseLostError, match="held by deploy/1"):
        lock.record_last_good("other/2", {"service": "x"})
    lock.record_last_good("deploy/1", baseline)
    assert lock.renew("deploy/1", ttl_seconds=60, now=1010).baseline == baseline  # a renewal keeps it
    previous = lock.take("latticedb_rollback/r1", "INC-7", ttl_seconds=60, now=1020)
    assert previous.owner == "deploy/1" and previous.baseline == baseline
    assert lock.holder().baseline is None  # the rollback's own lease: nothing recorded
    assert lock.release("latticedb_rollback/r1") is True
    assert lock.acquire("next/3", ttl_seconds=60, now=1030) is None
    assert lock.holder().baseline is None  # a new run starts with none


# What happened after run A recorded its baseline and lost its lease (TTL 60 s from t=1000), and whether
# A's rollback may take the environment back (EnvironmentLock.retake): only while nobody has changed
# production since A's baseline, so a rollback never restores a baseline that no longer served last.
def _nothing(lock):
    pass


def _b_failed_preflight(lock):  # took the expired lease, changed nothing, gave it back
    assert lock.acquire("b/2", ttl_seconds=60, now=1100) is None
    assert lock.release("b/2", now=1101)


def _b_crashed_in_preflight(lock):  # took it, changed nothing, its own lease expired
    assert lock.acquire("b/2", ttl_seconds=60, now=1100) is None


def _b_deployed(lock):
    assert lock.acquire("b/2", ttl_seconds=60, now=1100) is None
    lock.record_last_good("b/2", {"service": "svc-green"})
    assert lock.release("b/2", now=1101)


def _b_deployed_and_crashed(lock):
    assert lock.acquire("b/2", ttl_seconds=60, now=1100) is None
    lock.record_last_good("b/2", {"service": "svc-green"})


def _b_holds_it(lock):
    assert lock.acquire("b/2", ttl_seconds=600, now=1100) is None


def _emergency_rollback(lock):
    lock.take("latticedb_rollback/r1", "INC-9", ttl_seconds=60, now=1100)
    assert lock.release("latticedb_rollback/r1", now=1101)


def _emergency_then_b_failed_preflight(lock):
    _emergency_rollback(lock)
    assert lock.acquire("b/2", ttl_seconds=60, now=1102) is None
    assert lock.release("b/2", now=1103)


def _service_restart(lock):  # latticedb_service scale/restart: changes the service, records no baseline
    assert lock.acquire("latticedb_service/s1", ttl_seconds=60, now=1100, changes_production=True) is None
    assert lock.release("latticedb_service/s1", now=1101)


def _cleared_by_hand(lock):
    assert lock.clear()


def _blocked_by_a_failed_rollback(lock):
    assert lock.acquire("a/1", ttl_seconds=60, now=1050) is None
    assert lock.block("a/1", "rollback failed")


@pytest.mark.parametrize("meanwhile, may_retake", [
    (_nothing, True),
    (_b_failed_preflight, True),
    (_b_crashed_in_preflight, True),
    (_b_deployed, False),
    (_b_deployed_and_crashed, False),
    (_b_holds_it, False),
    (_emergency_rollback, False),
    (_emergency_then_b_failed_preflight, False),
    (_service_restart, False),
    (_cleared_by_hand, False),
    (_blocked_by_a_failed_rollback, False),
], ids=lambda v: v.__name__.strip("_") if callable(v) else str(v))
def test_a_run_takes_its_lapsed_lease_back_only_while_its_baseline_is_the_latest(lock, meanwhile, may_retake):
    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    lock.record_last_good("a/1", {"service": "svc-blue"})
    meanwhile(lock)
    before = lock._item()
    assert lock.retake("a/1", ttl_seconds=60, now=1200) is may_retake
    holder = lock.holder()
    if may_retake:
        assert holder.owner == "a/1" and holder.expires_at == 1260 and holder.baseline_is_from("a/1")
    else:
        assert lock._item() == before  # nothing written


def test_the_lease_item_outlives_its_holders(lock):
    """Released, the item stays without an owner (free), naming the run whose baseline is the latest;
    a new holder starts with no signal, no baseline and no pre-emption record of its own."""
    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    lock.record_last_good("a/1", {"service": "svc-blue"})
    assert lock.signal("a/1", '{"action": "pause"}', None)
    assert lock.release("a/1", now=1010) is True
    item = lock._item()
    assert "owner" not in item and item["baseline_by"]["S"] == "a/1" and "control" not in item and "last_good" not in item
    assert lock.holder() is None
    assert lock.acquire("b/2", ttl_seconds=60, now=1020) is None
    holder = lock.holder()
    assert (holder.owner, holder.control, holder.last_good, holder.baseline_by) == ("b/2", None, None, "a/1")
    assert not holder.baseline_is_from("b/2")  # until b records its own
    lock.record_last_good("b/2", {"service": "svc-green"})
    assert lock.holder().baseline_is_from("b/2")


def test_a_lease_written_before_baseline_by_existed_still_counts_as_its_holders(lock):
    """Upgrading mid-run: a lease item with last_good but no baseline_by is its holder's baseline."""
    from latticedb_deploy.aws.locks import Holder

    assert Holder("a/1", 0, 1, last_good='{"service": "x"}').baseline_is_from("a/1")
    assert not Holder("a/1", 0, 1).baseline_is_from("a/1")  # re-acquired after a clear by hand: no baseline


def test_an_emergency_rollback_never_pre_empts_another_one_of_the_same_environment(lock):
    """latticedb_rollback may run in several environments at once; in one, a second run is refused while the
    first holds the lease, live and unblocked. A blocked (its rollback failed) or expired one is taken over."""
    from latticedb_deploy.aws.locks import TakeRefusedError

    first, second = "latticedb_rollback/r1", "latticedb_rollback/r2"
    assert lock.acquire("latticedb_deploy_canary/d1", ttl_seconds=60, now=1000) is None
    assert lock.take(first, "INC-1", ttl_seconds=60, now=1010, unless_held_by="latticedb_rollback").owner.startswith("latticedb_deploy")
    with pytest.raises(TakeRefusedError) as refused:
        lock.take(second, "INC-2", ttl_seconds=60, now=1020, unless_held_by="latticedb_rollback")
    assert refused.value.holder.owner == first and lock.holder().owner == first and lock.holder().reason == "INC-1"
    assert lock.take(first, "INC-1", ttl_seconds=60, now=1025, unless_held_by="latticedb_rollback") is not None  # a retry
    assert lock.take(second, "INC-2", ttl_seconds=60, now=1090, unless_held_by="latticedb_rollback").owner == first  # expired
    assert lock.block(second, "rollback failed at update_service")
    assert lock.take(first, "INC-3", ttl_seconds=60, now=1100, unless_held_by="latticedb_rollback").owner == second  # blocked

