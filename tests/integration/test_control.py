"""latticedb_control on real runs: a canary mid-step (its own process, as on a second scheduler) is
promoted, paused and resumed, or aborted by a control run; with nothing in flight the control run
fails and changes nothing."""

from __future__ import annotations

import copy
import time

import pytest

from tests.envs import ENV
from tests.integration.background import BackgroundRun, lock_item, wait_until
from tests.integration.helpers import history, image, run_dag_run

pytestmark = pytest.mark.integration
CANARY = "latticedb_deploy_canary"
CONTROL = "latticedb_control"


def _canary(interval: int) -> BackgroundRun:
    return BackgroundRun(CANARY, {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [25, 50, 100], "interval_seconds": interval,
    }).start()


def _control(dagbag, action: str, reason: str):
    """A latticedb_control run. Its required params get the run's values as defaults for the run: under
    dag.test() the DAG-level failure callback validates the DAG's params without the run's conf."""
    conf = {"environment": ENV.name, "action": action, "reason": reason}
    dag = dagbag.dags[CONTROL]
    original = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            dag.params[key] = value
        return run_dag_run(dagbag, CONTROL, conf)
    finally:
        dag.params = original


# A gate waiting: `airflow dags test` runs its trigger in process, the task instance `queued` meanwhile.
WAITING = ("queued", "running", "deferred")


def _at_25(local, canary: BackgroundRun) -> None:
    wait_until(lambda: local.weights().get(ENV.green_tg) == 25 and canary.task_states().get("deploy.gate_25pct")
               in WAITING, 240, "the canary's 25% gate")


def _progress(canary: BackgroundRun, state: bool = False) -> dict:
    """What the Deployments page shows of the canary (its run lives in its own Airflow home's DB)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from latticedb_deploy import page
    from latticedb_deploy.config import load_config

    engine = create_engine(f"sqlite:///{canary.home / 'airflow.db'}")
    try:
        with Session(engine) as session:
            if state:
                return page.environment_state(load_config().environment(ENV.name), session)
            return page.run_progress(CANARY, canary.run_id(), session)
    finally:
        engine.dispose()


def _states(dr) -> dict:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_promote_mid_step_goes_to_100pct_and_skips_the_rest(local, dagbag):
    canary = _canary(interval=60)
    try:
        _at_25(local, canary)
        dr = _control(dagbag, "promote", "CHG-1 metrics look great")
        assert dr.state == "success", _states(dr)
        code = canary.wait(180)
    finally:
        canary.stop()
    states = canary.task_states()
    assert code == 0, canary.output[-3000:]
    assert states["deploy.gate_25pct"] == "success", states
    for task in ("shift_traffic_to_50pct", "gate_50pct", "shift_traffic_to_100pct", "gate_100pct"):
        assert states[f"deploy.{task}"] == "skipped", (task, states)
    assert states["deploy.retire_old_stable"] == states["verify.smoke_tests"] == "success", states
    assert states["cleanup.deregister_old_revisions"] == "success", states
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    assert local.service()["desiredCount"] == 0  # the old stable slot retired as usual
    texts = local.message_texts()
    assert any("promoted by dag_test" in t and "CHG-1" in t for t in texts), texts
    assert any("Promoted: 100% on the new version" in t for t in texts), texts
    assert "promoted by dag_test: CHG-1 metrics look great" in canary.output  # the skipped steps say why


def test_pause_holds_past_the_interval_until_resume(local, dagbag):
    interval = 20  # room for the pause's control run to start while the 25% gate is in its interval
    canary = BackgroundRun(CANARY, {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [25, 100], "interval_seconds": interval,
    }).start()
    try:
        # Warm-up while the canary starts: the first dag.test() of a DAG also writes it to the DB. Whatever it
        # finds (nothing in flight, or nothing paused), a resume is refused and changes nothing.
        assert _control(dagbag, "resume", "CHG-2 warm-up").state == "failed"
        _at_25(local, canary)
        at_25 = time.time()
        assert _control(dagbag, "pause", "CHG-2 looking at a dashboard").state == "success"
        assert time.time() - at_25 < interval, "the pause landed after the gate's interval: this machine is too slow"
        time.sleep(max(0.0, at_25 + interval + 4 - time.time()))  # past the gate's interval, plus two polls
        assert local.weights().get(ENV.green_tg) == 25
        assert canary.task_states()["deploy.gate_25pct"] in WAITING
        assert '"action": "pause"' in lock_item(local)["control"]
        flight = _progress(canary, state=True)["in_flight"]  # the Deployments page's card
        assert (flight["dag_id"], flight["run_id"]) == (CANARY, canary.run_id()), flight
        assert (flight["current_step"], flight["last_gate"]) == ("deploy.gate_25pct", None), flight
        assert _control(dagbag, "resume", "CHG-2 all good").state == "success"
        code = canary.wait(180)
    finally:
        canary.stop()
    states = canary.task_states()
    assert code == 0, canary.output[-3000:]
    assert states["deploy.gate_25pct"] == states["deploy.gate_100pct"] == "success", states
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    assert "[held: paused by dag_test: CHG-2 looking at a dashboard]" in canary.output  # the gate's log
    done = _progress(canary)
    assert done["current_step"] is None and done["last_gate"]["passed"] is True, done
    assert done["last_gate"]["task_id"] == "verify.post_deployment_checks", done
    texts = local.message_texts()
    assert any("Deployment paused by dag_test" in t and "CHG-2 looking" in t for t in texts), texts
    assert any("Deployment resumed by dag_test" in t and "CHG-2 all good" in t for t in texts), texts


def test_abort_mid_step_rolls_back_with_the_reason(local, dagbag):
    v1 = local.service()["taskDefinition"]
    canary = _canary(interval=60)
    try:
        _at_25(local, canary)
        dr = _control(dagbag, "abort", "INC-9 replication lag")
        assert dr.state == "success", _states(dr)
        code = canary.wait(180)
    finally:
        canary.stop()
    states = canary.task_states()
    assert code != 0, canary.output[-3000:]
    assert states["deploy.gate_25pct"] == "failed", states
    assert states["deploy.shift_traffic_to_50pct"] != "success", states
    assert states["rollback.restore_previous_revision"] == "success", states
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == v1
    last_gate = _progress(canary)["last_gate"]  # what the Deployments page shows of the run
    assert (last_gate["task_id"], last_gate["passed"]) == ("deploy.gate_25pct", False), last_gate
    assert "aborted by dag_test: INC-9 replication lag" in last_gate["reason"], last_gate
    [record] = history(limit=1)
    assert (record.outcome, record.failed_step, record.run_id) == ("aborted", "deploy.gate_25pct", canary.run_id())
    assert "INC-9 replication lag" in record.reason and record.time_to_restore_seconds is not None, record
    texts = local.message_texts()
    for title in ("Deployment failed at deploy.gate_25pct", "Rollback started", "Rollback finished"):
        hits = [t for t in texts if title in t]
        assert hits and all("aborted by dag_test: INC-9 replication lag" in t for t in hits), (title, texts)


def test_no_deployment_in_flight_fails_and_changes_nothing(local, dagbag):
    before = (local.weights(), local.service()["taskDefinition"], lock_item(local))
    dr = _control(dagbag, "promote", "CHG-3 nothing running")
    assert dr.state == "failed"
    assert _states(dr)["apply"] == "failed"
    assert (local.weights(), local.service()["taskDefinition"], lock_item(local)) == before
    assert any("no deployment in flight" in t and "refused" in t for t in local.message_texts()), local.message_texts()


def test_an_unknown_action_is_refused_when_the_run_is_created(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="action"):
        run_dag_run(dagbag, CONTROL, {"environment": ENV.name, "action": "skip", "reason": "CHG-4"})
