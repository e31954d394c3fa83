"""latticedb_deploy_blue_green against the local environment."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401 - see below
import airflow.models
import pytest
import yaml

from tests.envs import ENV
from tests.integration.background import lock_item
from tests.integration.control_runs import control_run, held_by, refused
from tests.integration.helpers import history, image, run_dag, run_dag_run, xcom

pytestmark = pytest.mark.integration
# The HITL API and Airflow's models are imported here, in the main thread, before any test starts the
# person's thread (_answer_when_asked): that thread importing them on first use can deadlock on the
# import lock with dag.test() importing the models in the main thread (seen: both stuck for minutes).
airflow.models.import_all_models()
DAG_ID = "latticedb_deploy_blue_green"
BLUE, GREEN = ENV.service, ENV.green_service
CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "latticedb.yaml"


def conf(tag: str, **extra) -> dict:
    return {"image_uri": image(tag), "environment": ENV.name, "bake_seconds": 6, "require_approval": False, **extra}


def test_v2_switches_to_the_idle_colour_and_scales_the_old_one_down(local, dagbag):
    before = local.service(BLUE)
    state, tasks = run_dag(dagbag, DAG_ID, conf("v2.0.0"))
    assert state == "success", tasks
    assert local.weights() == {ENV.green_tg: 100, ENV.blue_tg: 0}
    green, blue = local.service(GREEN), local.service(BLUE)
    assert local.task_definition_image(green["taskDefinition"]).endswith(local.digest("v2.0.0"))
    assert green["runningCount"] == before["desiredCount"]
    assert blue["desiredCount"] == 0 and blue["taskDefinition"] == before["taskDefinition"]
    assert tasks["deploy.smoke_test_idle_colour"] == "success"
    texts = local.message_texts()
    for event in ("blue_green deployment started", "Switched: production traffic now on green", "Baked", "succeeded"):
        assert any(event in t for t in texts), (event, texts)


def test_crashing_image_never_gets_production_traffic(local, dagbag):
    state, tasks = run_dag(dagbag, DAG_ID, conf("v2.3.0-crash"))
    assert state == "failed"
    assert tasks["deploy.wait_for_idle_colour_stable"] == "failed"
    assert tasks["deploy.switch_traffic"] == "upstream_failed"
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service(GREEN)["desiredCount"] == 0
    assert local.service(BLUE)["runningCount"] == 2


def test_errors_during_bake_switch_back_to_the_old_colour(local, dagbag):
    before = local.service(BLUE)
    state, tasks = run_dag(dagbag, DAG_ID, conf("v2.1.0-errors"))
    assert state == "failed"
    assert tasks["deploy.switch_traffic"] == "success"
    assert tasks["deploy.bake"] == "failed"
    assert tasks["rollback.restore_previous_revision"] == "success"
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    blue = local.service(BLUE)
    assert blue["taskDefinition"] == before["taskDefinition"] and blue["runningCount"] == 2
    assert local.service(GREEN)["desiredCount"] == 0
    assert any("Rollback started" in t for t in local.message_texts())


def test_two_runs_alternate_colours_with_no_manual_step(local, dagbag):
    assert run_dag(dagbag, DAG_ID, conf("v2.0.0"))[0] == "success"
    assert local.weights()[ENV.green_tg] == 100
    assert run_dag(dagbag, DAG_ID, conf("v2.0.1"))[0] == "success"
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.task_definition_image(local.service(BLUE)["taskDefinition"]).endswith(local.digest("v2.0.1"))
    assert local.service(GREEN)["desiredCount"] == 0


def _open_request(session, ti) -> bool:
    """The task instance's approval request exists and has no answer yet."""
    from airflow.models.hitl import HITLDetail
    from sqlalchemy import select

    detail = session.scalars(select(HITLDetail).where(HITLDetail.ti_id == ti.id)).first()
    return detail is not None and detail.responded_at is None


def _answer_when_asked(dag_id: str, option: str, stop: threading.Event, user=("oncall", "On-call engineer"),
                       task_id: str = "deploy.approve_switch", first=None) -> dict:
    """Play the person in the Airflow UI: answer the approval through the HITL API's own handler
    (after calling `first()`, if given, once the request is open: what happened while nobody answered)."""
    from types import SimpleNamespace

    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.settings import Session
    from sqlalchemy import select

    person = SimpleNamespace(get_id=lambda: user[0], get_name=lambda: user[1])
    while not stop.is_set():
        with Session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.state == "awaiting_input",
                )
            ).first()
            if ti is not None and _open_request(session, ti):
                if first is not None:
                    first()
                update_hitl_detail(
                    dag_id=dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=person, session=session,
                )
                session.commit()
                return {"run_id": ti.run_id}
        time.sleep(0.5)
    return {}


def _run_with_person(dagbag, run_conf: dict, person):
    """Run the blue/green DAG while `person(stop)` plays the person in the Airflow UI, in another thread."""
    stop = threading.Event()
    thread = threading.Thread(target=person, args=(stop,), daemon=True)
    thread.start()
    try:
        return run_dag_run(dagbag, DAG_ID, run_conf)
    finally:
        stop.set()
        thread.join(5)


@pytest.mark.parametrize(("answer", "switched"), [("Approve", True), ("Reject", False)])
def test_approval_decides_the_switch(local, dagbag, answer, switched):
    dr = _run_with_person(dagbag, conf("v2.0.0", require_approval=True),
                          lambda stop: _answer_when_asked(DAG_ID, answer, stop))
    state, tasks = dr.state, {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert tasks["deploy.approve_switch"] == "success"
    texts = local.message_texts()
    assert any("Approval requested" in t for t in texts), texts
    outcome = xcom(DAG_ID, dr.run_id, "deploy.approve_switch", key="outcome")
    assert outcome["by"] == "On-call engineer"
    if switched:
        assert state == "success", tasks
        assert local.weights()[ENV.green_tg] == 100
        assert outcome["approved"] is True
        assert xcom(DAG_ID, dr.run_id, "notify_success", key="outcome")["deployed"] is True
        assert any("succeeded" in t and "Approved by: On-call engineer" in t for t in texts), texts
    else:
        # Rejected: an explicit "not deployed", never a successful-looking run, never a failure page.
        assert state == "failed", tasks
        assert tasks["deploy.switch_traffic"] == "skipped"
        assert tasks["notify_success"] == "failed"
        assert tasks["rollback.restore_previous_revision"] == "skipped"
        assert tasks["release_environment"] == "success"
        assert outcome == {**outcome, "approved": False, "outcome": "rejected"}
        assert xcom(DAG_ID, dr.run_id, "notify_success", key="outcome") == {
            "deployed": False, "outcome": "rejected", "reason": "rejected by On-call engineer",
        }
        assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
        assert local.service(GREEN)["desiredCount"] == 0
        assert any("Deployment rejected: not deployed" in t for t in texts), texts
        assert not any("failed" in t.lower() or "Rollback" in t or "succeeded" in t for t in texts), texts
    [record] = history(limit=1)  # the history (and the Deployments page) says what happened, either way
    assert (record.run_id, record.strategy) == (dr.run_id, "blue_green"), record
    if switched:
        assert (record.outcome, record.approved_by) == ("succeeded", "On-call engineer"), record
    else:
        assert (record.outcome, record.failed_step) == ("rejected", "deploy.approve_switch"), record
        assert record.reason == "rejected by On-call engineer" and record.time_to_restore_seconds is None, record
        # Between the rejection and the run giving the environment back, an abort has nothing to stop: refused,
        # saying why, nothing written (before, it was accepted and ignored).
        owner = f"{DAG_ID}/{dr.run_id}"
        lock = held_by(local, owner)
        before = lock_item(local)
        refused(local, control_run(dagbag, "abort", "INC-14 stop it"), f"{owner} is ending", "approval was rejected",
                "nothing to abort")
        assert lock_item(local) == before
        lock.release(owner)


def test_an_emergency_rollback_during_the_approval_leaves_production_on_the_old_colour(local, dagbag):
    """The new revision is warm on green at 0 % and the approval is open when on-call runs the emergency
    rollback (its own process, as from the UI); then the approver rejects. The rollback's default target
    is what served before the deployment (blue's revision, kept on the pre-empted run's lease), not the
    warm green; and the rejected run, no longer holding the environment, scales nothing down."""
    from tests.integration.background import BackgroundRun

    v1 = local.service(BLUE)["taskDefinition"]
    seen: dict = {}

    def emergency_rollback():
        run = BackgroundRun("latticedb_rollback", {
            "environment": ENV.name, "reason": "INC-8: errors on blue", "target_revision": None, "notify": True,
        }).start()
        seen["code"], seen["states"] = run.wait(240), run.task_states()
        seen["output"], seen["weights"], seen["green"] = run.output[-3000:], local.weights(), local.service(GREEN)

    dr = _run_with_person(dagbag, conf("v2.0.0", require_approval=True),
                          lambda stop: _answer_when_asked(DAG_ID, "Reject", stop, first=emergency_rollback))
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert seen.get("code") == 0, seen.get("output")
    assert seen["states"]["plan"] == "success" and seen["states"]["switch_listener"] == "skipped", seen["states"]
    assert seen["weights"] == {ENV.blue_tg: 100, ENV.green_tg: 0}  # not switched to the unapproved colour
    assert dr.state == "failed" and tasks["deploy.switch_traffic"] == "skipped", tasks
    assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
    assert local.service(BLUE)["taskDefinition"] == v1
    green = local.service(GREEN)
    assert green["desiredCount"] == seen["green"]["desiredCount"] > 0  # left as the rollback found it
    texts = local.message_texts()
    assert any("Emergency rollback finished" in t for t in texts), texts
    assert any("the environment was taken over" in t and "left as it is" in t for t in texts), texts
    assert not any("Deployment rejected: not deployed, production untouched" in t for t in texts), texts


@pytest.fixture
def four_eyes_local(tmp_path, monkeypatch):
    """`local` configured like production: approval always asked, four eyes."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["environments"]["local"]["approval"] = {"four_eyes": True}
    raw["environments"]["local"]["blue_green"] = {**raw["environments"]["local"]["blue_green"], "require_approval": True}
    path = tmp_path / "latticedb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("LATTICEDB_CONFIG", str(path))


def test_four_eyes_the_trigger_cannot_approve_their_own_deployment(local, dagbag, four_eyes_local):
    """dag.test() runs are triggered by user `dag_test`. Their own approval is refused (Slack says
    why, traffic untouched, the request stays open); a second engineer's approval switches, and
    is named in Slack, XCom and the deployment log. require_approval=false cannot skip it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.settings import Session
    from sqlalchemy import select

    result: dict = {}

    def people(stop):
        result.update(_answer_when_asked(DAG_ID, "Approve", stop, user=("dag_test", "dag_test")))
        # The refusal: nothing changed, and the request is open again, still for this run.
        deadline = time.time() + 120
        while not stop.is_set() and time.time() < deadline:
            with Session() as session:
                ti = session.scalars(select(TaskInstance).where(
                    TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == result.get("run_id"),
                    TaskInstance.task_id == "deploy.approve_switch")).first()
                if ti is not None and ti.state == "awaiting_input" and _open_request(session, ti):
                    result["reopened"] = True
                    result["weights_after_refusal"] = local.weights()
                    result["texts_after_refusal"] = local.message_texts()
                    break
            time.sleep(0.5)
        _answer_when_asked(DAG_ID, "Approve", stop, user=("oncall", "On-call engineer"))

    dr = _run_with_person(dagbag, conf("v2.0.0", require_approval=False), people)
    tasks = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert result.get("reopened"), result
    assert result["weights_after_refusal"] == {ENV.blue_tg: 100, ENV.green_tg: 0}
    refusal = [t for t in result["texts_after_refusal"] if "Approval refused: four eyes" in t]
    assert refusal and "dag_test triggered this run" in refusal[0], result["texts_after_refusal"]
    assert not any("Switched" in t for t in result["texts_after_refusal"])

    assert dr.state == "success", tasks
    assert local.weights()[ENV.green_tg] == 100
    outcome = xcom(DAG_ID, dr.run_id, "deploy.approve_switch", key="outcome")
    assert (outcome["approved"], outcome["by"], outcome["triggered_by"]) == (True, "On-call engineer", "dag_test")
    assert [r["by"] for r in xcom(DAG_ID, dr.run_id, "deploy.approve_switch", key="refused")] == ["dag_test"]
    texts = local.message_texts()
    assert any("Switch approved by On-call engineer" in t for t in texts), texts
    assert any("succeeded" in t and "Approved by: On-call engineer" in t for t in texts), texts
    entry = xcom(DAG_ID, dr.run_id, "record_deployment")["entry"]
    assert "**Approved By**: On-call engineer" in entry and "**Deployed By**: dag_test" in entry
