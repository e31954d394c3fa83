"""latticedb_control on real runs: a canary mid-step (its own process, as on a second scheduler) is
promoted, paused and resumed, or aborted by a control run; a rolling deployment is aborted during its
post-deployment checks; with nothing in flight, or another run than the one named holding the
environment, or a deployment past verify, the control run fails and changes nothing."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import yaml

from tests.envs import ENV
from tests.integration.background import BackgroundRun, lock_item, wait_until
from tests.integration.control_runs import CONTROL, control_run, held_by, refused
from tests.integration.helpers import history, image, run_dag_run

pytestmark = pytest.mark.integration
CANARY = "latticedb_deploy_canary"
ROLLING = "latticedb_deploy_rolling"
CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def _canary(interval: int) -> BackgroundRun:
    return BackgroundRun(CANARY, {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [25, 50, 100], "interval_seconds": interval,
    }).start()


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


def _canary_failing_at_25(local, dagbag):
    """A [25, 100] canary at 10 s whose 25 % gate fails (green's errors set by the caller or its hooks; cleared
    after): its run, and its task states."""
    from tests.faults.driver import faults

    try:
        dr = run_dag_run(dagbag, CANARY, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                                          "traffic_steps": [25, 100], "interval_seconds": 10})
    finally:
        faults(local, slot_errors=None)
    states = _states(dr)
    assert dr.state == "failed" and states["deploy.gate_25pct"] == "failed", states
    return dr, states


def _linked_deployment(local, title: str) -> str:
    """The `deployment` the control link of the Slack message `title` names (the form's pre-filled field)."""
    text = next(t for t in local.message_texts() if title in t)
    conf = json.loads(unquote_plus(re.search(r"/dags/latticedb_control\?conf=(\S+)", text).group(1)))
    assert conf["environment"] == ENV.name, conf
    return conf["deployment"]


def test_promote_mid_step_goes_to_100pct_and_skips_the_rest(local, dagbag):
    canary = _canary(interval=60)
    try:
        _at_25(local, canary)
        # The person clicks the link in the canary's "Traffic shifted" message: it names this run.
        deployment = _linked_deployment(local, "Traffic shifted: 25% on the new version")
        assert deployment == f"{CANARY}/{canary.run_id()}"
        dr = control_run(dagbag, "promote", "CHG-1 metrics look great", deployment=deployment)
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
    interval = 30  # room for the pause's control run (a dag.test() of its own) to land while the 25% gate waits
    canary = BackgroundRun(CANARY, {
        "image_uri": image("v2.0.0"), "environment": ENV.name, "traffic_steps": [25, 100], "interval_seconds": interval,
    }).start()
    try:
        # Warm-up while the canary starts: the first dag.test() of a DAG also writes it to the DB. Whatever it
        # finds (nothing in flight, or nothing paused), a resume is refused and changes nothing.
        assert control_run(dagbag, "resume", "CHG-2 warm-up").state == "failed"
        _at_25(local, canary)
        at_25 = time.time()
        assert control_run(dagbag, "pause", "CHG-2 looking at a dashboard").state == "success"
        assert time.time() - at_25 < interval, "the pause landed after the gate's interval: this machine is too slow"
        time.sleep(max(0.0, at_25 + interval + 4 - time.time()))  # past the gate's interval, plus two polls
        assert local.weights().get(ENV.green_tg) == 25
        assert canary.task_states()["deploy.gate_25pct"] in WAITING
        assert '"action": "pause"' in lock_item(local)["control"]
        flight = _progress(canary, state=True)["in_flight"]  # the Deployments page's card
        assert (flight["dag_id"], flight["run_id"]) == (CANARY, canary.run_id()), flight
        assert (flight["current_step"], flight["last_gate"]) == ("deploy.gate_25pct", None), flight
        assert control_run(dagbag, "resume", "CHG-2 all good").state == "success"
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


def test_a_pause_between_gates_still_judges_the_new_slot_and_rolls_back_on_a_failure(local, dagbag, monkeypatch):
    """A pause that lands after a gate passed and before the next shift holds that shift while the new slot
    keeps its 25 %. Green goes bad meanwhile (50 % errors) and nobody is there to resume: the held shift
    judges the share as the gate did, fails, and the rollback puts 100 % back on blue; green never gets
    more than its 25 %. (Before: the hold judged nothing and the bad 25 % served until a resume.)"""
    import threading

    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config
    from latticedb_deploy.control import apply
    from latticedb_deploy.operators.base import owner_of
    from latticedb_deploy.operators.traffic import ShiftTrafficOperator
    from tests.faults.driver import WeightWatcher, faults

    lock, paused, resumed = EnvironmentLock(load_config().environment(ENV.name)), [], threading.Event()
    shift = ShiftTrafficOperator.execute

    def resume_later(owner: str, pause) -> None:
        """A bound for the old behaviour: someone resumes after 90 s (the fixed hold fails well before)."""
        if not resumed.wait(90):
            lock.signal(owner, apply(pause, "resume", owner=owner, by="bob", reason="CHG-8 done",
                                     now=time.time()).to_json(), pause.to_json())

    def pause_at_the_shift(self, context):
        if int(self.percent) == 100 and not paused:  # the 25 % gate has passed: the person pauses now
            owner, holder = owner_of(context), lock.holder()
            pause = apply(holder.signal, "pause", owner=owner, by="alice", reason="CHG-7 a dashboard", now=time.time())
            assert lock.signal(owner, pause.to_json(), holder.control)
            faults(local, slot_errors={ENV.green_tg: 0.5})
            paused.append(time.time())
            threading.Thread(target=resume_later, args=(owner, pause), daemon=True).start()
        return shift(self, context)

    monkeypatch.setattr(ShiftTrafficOperator, "execute", pause_at_the_shift)
    v1 = local.service()["taskDefinition"]
    try:
        with WeightWatcher(local) as watcher:
            dr = run_dag_run(dagbag, CANARY, {"image_uri": image("v2.0.0"), "environment": ENV.name,
                                              "traffic_steps": [25, 100], "interval_seconds": 10})
    finally:
        resumed.set()
        faults(local, slot_errors=None)
    states = _states(dr)
    assert paused and dr.state == "failed", states
    assert states["deploy.gate_25pct"] == "success" and states["deploy.shift_traffic_to_100pct"] == "failed", states
    assert states["deploy.gate_100pct"] != "success", states
    assert max(w.get(ENV.green_tg, 0) for _, w in watcher.seen) == 25, watcher.seen
    assert states["rollback.shift_traffic_back"] == "success", states
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == v1
    [record] = history(limit=1)
    assert record.failed_step == "deploy.shift_traffic_to_100pct", record
    assert "paused at 25%" in record.reason and "failed its metrics" in record.reason, record
    texts = local.message_texts()
    assert any("Deployment failed at deploy.shift_traffic_to_100pct" in t for t in texts), texts
    started = [t for t in texts if "Rollback started" in t]  # names the failed shift and why, as for a gate
    assert started and "deploy.shift_traffic_to_100pct" in started[-1] and "failed its metrics" in started[-1], started


@pytest.mark.parametrize("resumed", [True, False], ids=["paused-then-resumed", "still-paused"])
def test_a_gate_failing_after_a_pause_marks_the_lease_so_a_promote_or_resume_is_refused(local, dagbag, monkeypatch, resumed):
    """Paused at the 25 % gate (its first polls held), resumed or not, then green goes bad: the gate fails (a pause
    holds a pass back, never a failure) and marks the lease `failing` over the spent resume or over the pause, so
    a promote or resume sent while its task resumes to fail is refused (before, the resume or pause stayed on the
    lease and the action was accepted and changed nothing). The rollback runs as after any failed gate."""
    import threading

    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config
    from latticedb_deploy.control import FAILING, ControlRefused, apply
    from latticedb_deploy.operators.base import owner_of
    from latticedb_deploy.sensors.metric_gate import MetricGateSensor
    from tests.faults.driver import faults

    lock, seen = EnvironmentLock(load_config().environment(ENV.name)), {}
    execute, complete = MetricGateSensor.execute, MetricGateSensor.execute_complete

    def resume_then_go_bad(owner: str, pause) -> None:
        time.sleep(4)  # the gate's first polls are held by the pause
        if resumed:
            resume = apply(pause, "resume", owner=owner, by="alice", reason="CHG-7 done", now=time.time())
            seen["resumed"] = lock.signal(owner, resume.to_json(), pause.to_json())
        faults(local, slot_errors={ENV.green_tg: 0.5})

    def paused_and_resumed(self, context):
        if int(self.percent) == 25 and not seen:
            owner, holder = owner_of(context), lock.holder()
            pause = apply(holder.signal, "pause", owner=owner, by="alice", reason="CHG-7 a dashboard", now=time.time())
            assert lock.signal(owner, pause.to_json(), holder.control)
            seen["owner"] = owner
            threading.Thread(target=resume_then_go_bad, args=(owner, pause), daemon=True).start()
        return execute(self, context)

    def as_the_task_resumes(self, context, event):
        if int(self.percent) == 25:
            signal = lock.holder().signal
            seen["signal"] = signal
            for action in ("promote", "resume"):
                try:
                    apply(signal, action, owner=seen["owner"], by="bob", reason="looks fine", now=time.time())
                except ControlRefused as exc:
                    seen[f"{action} refused"] = str(exc)
        return complete(self, context, event)

    monkeypatch.setattr(MetricGateSensor, "execute", paused_and_resumed)
    monkeypatch.setattr(MetricGateSensor, "execute_complete", as_the_task_resumes)
    v1 = local.service()["taskDefinition"]
    _, states = _canary_failing_at_25(local, dagbag)
    signal = seen["signal"]
    assert signal.action == FAILING and signal.reason.startswith("gate 25% failed"), signal
    assert signal.paused_by == "alice" and signal.paused_at is not None, signal
    if resumed:
        assert seen["resumed"] and signal.resumed_at - signal.paused_at >= 4, signal  # the pause held its first polls
        assert signal.replaced == "resumed by alice: CHG-7 done", signal
    else:
        assert signal.resumed_at is None and signal.replaced == "paused by alice: CHG-7 a dashboard", signal
    assert "is failing" in seen.get("promote refused", "") and "is failing" in seen.get("resume refused", ""), seen
    assert states["rollback.restore_previous_revision"] == "success", states
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == v1


def test_abort_mid_step_rolls_back_with_the_reason(local, dagbag):
    v1 = local.service()["taskDefinition"]
    canary = _canary(interval=60)
    try:
        _at_25(local, canary)
        dr = control_run(dagbag, "abort", "INC-9 replication lag")
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
    dr = control_run(dagbag, "promote", "CHG-3 nothing running")
    assert dr.state == "failed"
    assert _states(dr)["apply"] == "failed"
    assert (local.weights(), local.service()["taskDefinition"], lock_item(local)) == before
    assert any("no deployment in flight" in t and "refused" in t for t in local.message_texts()), local.message_texts()


def test_an_unknown_action_is_refused_when_the_run_is_created(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="action"):
        run_dag_run(dagbag, CONTROL, {"environment": ENV.name, "action": "skip", "reason": "CHG-4"})


# ---------------------------------------------------------------- in verify, past verify, another run


@pytest.fixture
def long_checks(tmp_path, monkeypatch):
    """A copy of the config whose post-deployment checks watch a 600 s window (local: 10 s): they cannot reach
    a verdict of their own while the test runs, so only the control run's abort (read at their next poll)
    ends them, however long that run takes to start under load."""
    raw = yaml.safe_load(CONFIG.read_text())
    local = raw["environments"]["local"]
    local.setdefault("post_deployment", {}).update({"window_seconds": 600, "timeout_seconds": 900})
    local["deployment_log"] = str(tmp_path / "DEPLOYMENT_LOG.md")
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))
    return path


def test_abort_during_the_post_deployment_checks_rolls_back(local, dagbag, long_checks):
    """The review's defect: an abort while verify.post_deployment_checks watched was accepted, then the checks
    passed and the new version stayed. Now the checks fail with the abort's reason and the rollback runs."""
    v1 = local.service()["taskDefinition"]
    rolling = BackgroundRun(ROLLING, {"image_uri": image("v2.0.0"), "environment": ENV.name}).start()
    try:
        wait_until(lambda: rolling.task_states().get("verify.post_deployment_checks") in WAITING, 240,
                   "the rolling deployment's post-deployment checks")
        assert json.loads(lock_item(local)["control"])["action"] == "verifying"  # smoke tests marked the phase
        assert local.service()["taskDefinition"] != v1  # the new version serves
        dr = control_run(dagbag, "abort", "INC-11 errors in the logs", deployment=f"{ROLLING}/{rolling.run_id()}")
        assert dr.state == "success", _states(dr)
        assert rolling.task_states().get("verify.post_deployment_checks") in WAITING, "the checks ended before the abort"
        code = rolling.wait(240)
    finally:
        rolling.stop()
    states = rolling.task_states()
    assert code != 0, rolling.output[-3000:]
    assert states["verify.post_deployment_checks"] == "failed", states
    assert states["rollback.restore_previous_revision"] == states["rollback.notify_rollback"] == "success", states
    assert states["cleanup.deregister_old_revisions"] != "success", states
    assert local.service()["taskDefinition"] == v1  # the previous version, with all the traffic
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert "post-deployment checks aborted by dag_test: INC-11 errors in the logs" in rolling.output
    [record] = history(limit=1)
    assert (record.outcome, record.failed_step) == ("aborted", "verify.post_deployment_checks"), record
    texts = local.message_texts()
    assert any("Deployment aborted by dag_test" in t and "INC-11" in t for t in texts), texts
    for title in ("Deployment failed at verify.post_deployment_checks", "Rollback started", "Rollback finished"):
        hits = [t for t in texts if title in t]
        assert hits and all("aborted by dag_test: INC-11 errors in the logs" in t for t in hits), (title, texts)
    assert any("Rollback started" in t and "verify.post_deployment_checks" in t for t in texts), texts


def test_a_control_run_naming_a_finished_deployment_does_not_act_on_the_next(local, dagbag):
    """Run A's Slack link, clicked after A finished, while run B holds the environment: refused, naming B;
    nothing is written on B's lease (B would otherwise have jumped to 100 % skipping every gate)."""
    run_a, run_b = f"{CANARY}/manual__2026-12-01T10:00:00+00:00", f"{CANARY}/manual__2026-12-01T11:00:00+00:00"
    lock = held_by(local, run_b)
    before = lock_item(local)
    dr = control_run(dagbag, "promote", "CHG-5 from A's message", deployment=run_a)
    refused(local, dr, f"{run_a} does not hold", f"{run_b} does")
    assert lock_item(local) == before  # no signal written
    dr = control_run(dagbag, "promote", "CHG-5 from A's message", deployment="manual__2026-12-01T10:00:00+00:00")
    refused(local, dr, f"{run_b} does")  # the run id alone: the same
    assert lock_item(local) == before

    # Naming B (whole, or its run id), or naming nobody (the CLI's way: whoever holds it), acts on B.
    dr = control_run(dagbag, "pause", "CHG-6 hold B", deployment=run_b)
    assert dr.state == "success", _states(dr)
    assert json.loads(lock_item(local)["control"])["action"] == "pause"
    dr = control_run(dagbag, "resume", "CHG-6 go on", deployment=run_b.split("/", 1)[1])
    assert dr.state == "success", _states(dr)
    dr = control_run(dagbag, "abort", "CHG-7 whoever holds it")
    assert dr.state == "success", _states(dr)
    assert json.loads(lock_item(local)["control"])["action"] == "abort"
    lock.release(run_b)


def test_a_malformed_deployment_is_refused_before_any_aws_call(local, dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="param deployment"):
        run_dag_run(dagbag, CONTROL, {"environment": ENV.name, "action": "abort", "reason": "CHG-8",
                                      "deployment": "latticedb_deploy_canary/manual__1/extra"})
    lock = held_by(local, "latticedb_service/manual__2026-12-01T10:00:00+00:00")
    before = lock_item(local)
    dr = control_run(dagbag, "abort", "CHG-8 the service run", deployment="latticedb_service/manual__2026-12-01T10:00:00+00:00")
    refused(local, dr, "which is not a deployment DAG")
    assert lock_item(local) == before
    lock.release("latticedb_service/manual__2026-12-01T10:00:00+00:00")


def test_in_verify_only_abort_is_taken_and_past_verify_nothing(local, dagbag):
    """A deployment's verify marks its lease (smoke tests: verifying; post-deployment checks passed:
    verified). In verify a pause or promote is refused (the checks run to their verdict; abort still stops
    them); past verify every action is refused, pointing at latticedb_rollback."""
    owner = f"{CANARY}/manual__2026-12-01T12:00:00+00:00"
    lock = held_by(local, owner, marker="verifying")
    before = lock_item(local)
    refused(local, control_run(dagbag, "pause", "CHG-9 hold the checks"), "is in verify", "abort still stops it")
    refused(local, control_run(dagbag, "promote", "CHG-9 go"), "nothing to promote")
    assert lock_item(local) == before
    lock.release(owner)

    lock = held_by(local, owner, marker="verified")
    before = lock_item(local)
    refused(local, control_run(dagbag, "abort", "INC-12 too late", deployment=owner), "is past verify",
             "trigger latticedb_rollback")
    assert lock_item(local) == before  # refused, not "accepted" and ignored
    lock.release(owner)


def test_a_promote_sent_while_the_rollback_runs_is_refused_and_changes_nothing(local, dagbag, monkeypatch):
    """A canary's gate fails (green answers 50 % errors) and its rollback starts; a person promotes from the
    failure's control link meanwhile, in their own control run. Before: accepted ("100 % on the new slot at
    the next gate poll") while the rollback went on regardless. Now the rollback's first step marks the lease
    `rolling_back`: the promote is refused naming it, nothing is written, the rollback ends on blue with 100 %.
    In the seconds between the gate's failure and that mark, a promote or abort is refused too (the run's task
    states say it failed)."""
    from latticedb_deploy.operators.deploy import ShiftTrafficBackOperator
    from tests.faults.driver import faults

    shift_back, seen = ShiftTrafficBackOperator.execute, {}

    def promote_first(self, context):
        if not seen:  # the rollback has restored blue's revision; traffic moves back next
            seen["lease"] = json.loads(lock_item(local)["control"])
            control = BackgroundRun(CONTROL, {"environment": ENV.name, "action": "promote", "reason": "CHG-12 looks fine",
                                              "deployment": f"{CANARY}/{context['run_id']}"}).start()
            try:
                seen["code"] = control.wait(240)
                seen["states"], seen["output"] = control.task_states(), control.output
            finally:
                control.stop()
            seen["after"] = json.loads(lock_item(local)["control"])
        return shift_back(self, context)

    monkeypatch.setattr(ShiftTrafficBackOperator, "execute", promote_first)
    from latticedb_deploy.operators.deploy import RestorePreviousRevisionOperator

    restore, at_restore = RestorePreviousRevisionOperator.execute, {}

    def look_first(self, context):  # the lease as the rollback finds it: the gate's trigger marked it failing
        at_restore.setdefault("lease", json.loads(lock_item(local)["control"]))
        return restore(self, context)

    monkeypatch.setattr(RestorePreviousRevisionOperator, "execute", look_first)
    v1 = local.service()["taskDefinition"]
    faults(local, slot_errors={ENV.green_tg: 0.5})
    dr, states = _canary_failing_at_25(local, dagbag)
    assert at_restore["lease"]["action"] == "failing", at_restore  # from the gate's verdict on
    assert at_restore["lease"]["reason"].startswith("gate 25% failed: "), at_restore
    assert seen["lease"]["action"] == "rolling_back", seen["lease"]
    assert seen["code"] != 0 and seen["states"].get("apply") == "failed", (seen["states"], seen["output"][-3000:])
    assert "is rolling back" in seen["output"] and "nothing to promote" in seen["output"], seen["output"][-3000:]
    assert seen["after"] == seen["lease"]  # nothing written: no promote waiting on the lease
    assert states["rollback.shift_traffic_back"] == states["rollback.notify_rollback"] == "success", states
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service()["taskDefinition"] == v1
    texts = local.message_texts()
    assert any("Control promote refused" in t and "is rolling back" in t for t in texts), texts
    assert not any("Deployment promoted" in t for t in texts), texts

    # The seconds before that mark: the gate has failed for good and the rollback's first step has not started.
    # With the lease as it was then (this run's, no mark), a promote or an abort is refused, naming the gate:
    # the control run reads the deployment's task states before it writes.
    owner = f"{CANARY}/{dr.run_id}"
    lock = held_by(local, owner)
    before = lock_item(local)
    for action in ("promote", "abort"):
        refused(local, control_run(dagbag, action, "CHG-13 from the failure's link", deployment=owner),
                f"{owner} is ending", "deploy.gate_25pct failed", f"nothing to {action}")
    assert lock_item(local) == before
    lock.release(owner)
