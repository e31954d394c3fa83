"""The environment lease holds for the whole run (issue #11, defect 3), on real runs against `local`.

- A run that waits longer than `lock_ttl_seconds` keeps its lease: the triggers renew it on every poll.
- A run that lost its lease (expired and taken, cleared by hand) changes nothing more and fails saying
  who holds the environment: every mutating step and every wait checks ownership first (fencing).
- A conditional write that fails while the holder lets go is written again, never counted as won.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.envs import ENV
from tests.integration.background import LOCK_TABLE, lock_item, wait_until
from tests.integration.helpers import image, run_dag_run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "include" / "config" / "latticedb.yaml"
DAG_ID = "latticedb_deploy_canary"
GREEN, BLUE = ENV.green_tg, ENV.blue_tg


@pytest.fixture
def short_lease(tmp_path, monkeypatch):
    """A copy of the config whose `local` lease lasts 15 s between renewals: well under the 30 s gate,
    so only renewal keeps it, and above the few seconds a loaded 2-core machine takes between one
    task's last renewal and the next task's first (8 s was tight enough to expire there under load)."""
    raw = yaml.safe_load(CONFIG.read_text())
    local = raw["environments"]["local"]
    local["lock_ttl_seconds"] = 15
    local.setdefault("blue_green", {})["approval_timeout_seconds"] = 5
    local["deployment_log"] = str(tmp_path / "DEPLOYMENT_LOG.md")
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    return 15


class LeaseWatcher:
    """Samples the lease every 0.3 s while `active()` holds; keeps the moments another run could take it."""

    def __init__(self, local, active):
        self.local, self.active = local, active
        self.samples: list[tuple[float, dict | None]] = []
        self.open_moments: list[tuple[float, dict | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                if self.active():
                    now, item = time.time(), lock_item(self.local)
                    self.samples.append((now, item))
                    if item is None or not item.get("owner", "").startswith(f"{DAG_ID}/") or item["expires_at"] < now:
                        self.open_moments.append((now, item))
            except Exception:  # noqa: BLE001 - a transient read error: look again
                pass
            self._stop.wait(0.3)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def test_the_lease_outlives_its_ttl_while_the_run_waits_in_a_gate(local, dagbag, short_lease):
    # A 30 s gate with a 15 s lease: without renewal from the triggerer, another deployment could take
    # the environment in the middle of the canary.
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config

    probe = EnvironmentLock(load_config().environment(ENV.name), client=local.client("dynamodb"))
    refused: list[object] = []

    def in_gate() -> bool:
        return local.weights().get(GREEN) == 50

    def probe_mid_gate():  # a second deployment tries to take the environment half-way through the gate
        try:
            wait_until(in_gate, 240, "the 50% gate")
            time.sleep(15)
            refused.append(probe.acquire("latticedb_deploy_rolling/manual__second"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            refused.append(exc)

    prober = threading.Thread(target=probe_mid_gate, daemon=True)
    prober.start()
    with LeaseWatcher(local, in_gate) as watch:
        dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                                          "traffic_steps": [50, 100], "interval_seconds": 30})
    prober.join(30)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "success", states
    # The gate was watched over its interval: reads at least 20 s apart end to end, none more than the 15 s TTL
    # apart, so a lease left unrenewed would be seen expired (a count of samples would judge the machine's
    # speed instead). A lapse shorter than a gap could still fall between reads; the probe at +15 s covers
    # the middle of the gate.
    times = [t for t, _ in watch.samples]
    assert len(times) > 2 and times[-1] - times[0] >= 20, (len(times), times[:1], times[-1:])
    assert max(b - a for a, b in zip(times[:-1], times[1:], strict=True)) < 15, times
    assert watch.open_moments == [], watch.open_moments[:5]  # never expired, never anyone else's
    assert refused and getattr(refused[0], "owner", "").startswith(f"{DAG_ID}/"), refused
    assert local.weights() == {GREEN: 100, BLUE: 0}
    assert "owner" not in lock_item(local)  # released at the end: the item stays, without an owner


def test_a_run_that_lost_its_lease_changes_nothing_and_says_why(local, dagbag):
    # The canary slot comes up; at that moment the lease is lost (as if it had expired and another
    # run took it). The canary must not shift any traffic after that, and must say who holds it.
    thief = "latticedb_deploy_rolling/manual__2026-01-01T00:00:00+00:00"
    stolen: list[float] = []
    ddb = local.client("dynamodb")

    def steal_when_the_canary_slot_runs():
        def ready():
            green = local.service(ENV.green_service)
            return green["desiredCount"] > 0 and green["runningCount"] == green["desiredCount"]

        wait_until(ready, 240, "the canary slot to run", interval=0.1)
        now = time.time()
        ddb.put_item(TableName=LOCK_TABLE, Item={
            "environment": {"S": ENV.name}, "owner": {"S": thief},
            "acquired_at": {"N": f"{now:.3f}"}, "expires_at": {"N": f"{now + 3600:.3f}"},
        })
        stolen.append(now)

    weights: list[dict] = []
    thread = threading.Thread(target=steal_when_the_canary_slot_runs, daemon=True)
    thread.start()
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                                      "traffic_steps": [25, 50, 100], "interval_seconds": 6})
    thread.join(10)
    for _ in range(10):  # and nothing moves afterwards either
        weights.append(local.weights())
        time.sleep(0.5)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert stolen, "the canary slot never came up"
    assert dr.state == "failed", states
    assert all(w == {BLUE: 100, GREEN: 0} for w in weights), weights  # no traffic ever reached the canary
    assert "success" not in {states[t] for t in states if t.startswith("deploy.shift_traffic_to_")}, states
    assert states["rollback.restore_previous_revision"] == "skipped", states  # traffic is the new holder's now
    assert lock_item(local)["owner"] == thief  # and its lease was left alone
    texts = local.message_texts()
    stopped = [t for t in texts if "Deployment stopped at deploy." in t]
    assert stopped and "LEASE LOST" in stopped[0] and thief in stopped[0], texts
    assert any("Automatic rollback not run" in t for t in texts), texts


def test_a_run_whose_lease_lapsed_with_nobody_holding_it_still_rolls_back_what_it_changed(local, dagbag):
    """Mid-gate, the run's lease lapses and another run takes it, fails its pre-flight (changing nothing)
    and gives it back: the gate stops as with any lost lease, but nobody owns the 25 % split it left. Its
    rollback takes the environment again (its baseline is still the latest) and puts 100 % back on the
    stable slot."""
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config

    lock = EnvironmentLock(load_config().environment(ENV.name), client=local.client("dynamodb"))
    other = "latticedb_deploy_rolling/manual__2026-01-01T00:00:00+00:00"
    lapsed: list[float] = []

    def lapse_in_the_gate():
        wait_until(lambda: local.weights().get(GREEN) == 25, 240, "the 25% step", interval=0.1)
        time.sleep(2)  # the gate is waiting
        later = time.time() + 2 * lock.env.lock_ttl_seconds  # as if the run's lease had expired
        assert lock.acquire(other, now=later) is None
        assert lock.release(other)
        lapsed.append(time.time())

    thread = threading.Thread(target=lapse_in_the_gate, daemon=True)
    thread.start()
    dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                                      "traffic_steps": [25, 100], "interval_seconds": 30})
    thread.join(10)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert lapsed, "the 25% step never came"
    assert dr.state == "failed", states
    assert states["deploy.gate_25pct"] == "failed", states
    assert states["rollback.restore_previous_revision"] == "success", states
    assert states["rollback.shift_traffic_back"] == "success", states
    assert local.weights() == {BLUE: 100, GREEN: 0}
    texts = local.message_texts()
    assert any("Rollback took the environment again" in t for t in texts), texts
    assert "owner" not in lock_item(local)  # given back at the end


def test_a_cleared_task_of_an_old_run_never_rolls_production_back_to_that_runs_baseline(local, dagbag):
    """Run A deploys v2.0.0, then run B deploys v2.0.1. Someone clears A's verify.smoke_tests with its
    downstream tasks (the UI's Clear): the smoke test now meets v2.0.1 and fails, so A's rollback starts.
    But A's baseline (v1.0.0) is not the last good state any more: B recorded a newer one. A's rollback
    does not take the environment back; v2.0.1 keeps 100 % of traffic."""
    from tests.faults.driver import clear_with_downstream, continue_run

    rolling = "latticedb_deploy_rolling"
    first = run_dag_run(dagbag, rolling, {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert first.state == "success"
    second = run_dag_run(dagbag, rolling, {"image_uri": image("v2.0.1"), "environment": ENV.name})
    assert second.state == "success"
    serving = local.service()
    assert local.task_definition_image(serving["taskDefinition"]).endswith("@" + local.digest("v2.0.1"))

    cleared = clear_with_downstream(dagbag.dags[rolling], first.run_id, "verify.smoke_tests")
    assert "rollback.restore_previous_revision" in cleared, cleared
    dr = continue_run(dagbag.dags[rolling], first.run_id)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["verify.smoke_tests"] == "failed", states
    assert states["rollback.restore_previous_revision"] == "skipped", states
    assert local.service()["taskDefinition"] == serving["taskDefinition"]  # still v2.0.1
    assert local.weights()[BLUE] == 100
    assert "owner" not in lock_item(local) and lock_item(local)["baseline_by"].endswith(second.run_id)
    assert any("Automatic rollback not run" in t for t in local.message_texts()), local.message_texts()


class ReleasedBetweenWriteAndRead:
    """A DynamoDB client whose first read comes just after the holder released the lease."""

    def __init__(self, client):
        self._client, self._released = client, False

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_item(self, **kwargs):
        if not self._released:
            self._released = True
            self._client.delete_item(TableName=LOCK_TABLE, Key={"environment": {"S": ENV.name}})
        return self._client.get_item(**kwargs)


def test_a_failed_write_followed_by_a_release_is_not_counted_as_acquired(local):
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config

    env = load_config().environment(ENV.name)
    assert EnvironmentLock(env, client=local.client("dynamodb")).acquire("latticedb_deploy_canary/first") is None
    racing = EnvironmentLock(env, client=ReleasedBetweenWriteAndRead(local.client("dynamodb")))
    assert racing.acquire("latticedb_deploy_rolling/second") is None  # "acquired" ...
    assert lock_item(local)["owner"] == "latticedb_deploy_rolling/second"  # ... because it really wrote it
