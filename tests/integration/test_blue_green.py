"""latticedb_deploy_blue_green against the local environment."""

from __future__ import annotations

import threading
import time

import pytest

from tests.envs import ENV
from tests.integration.helpers import image, run_dag

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_blue_green"
BLUE, GREEN = ENV.service, ENV.green_service


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


def _answer_when_asked(dag_id: str, option: str, stop: threading.Event) -> None:
    """Play the person in the Airflow UI: answer the approval through the HITL API's own handler."""
    from types import SimpleNamespace

    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.settings import Session
    from sqlalchemy import select

    user = SimpleNamespace(get_id=lambda: "oncall", get_name=lambda: "On-call engineer")
    while not stop.is_set():
        with Session() as session:
            ti = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == "deploy.approve_switch",
                    TaskInstance.state == "awaiting_input",
                )
            ).first()
            if ti is not None:
                update_hitl_detail(
                    dag_id=dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=user, session=session,
                )
                session.commit()
                return
        time.sleep(0.5)


@pytest.mark.parametrize(("answer", "switched"), [("Approve", True), ("Reject", False)])
def test_approval_decides_the_switch(local, dagbag, answer, switched):
    stop = threading.Event()
    person = threading.Thread(target=_answer_when_asked, args=(DAG_ID, answer, stop), daemon=True)
    person.start()
    try:
        state, tasks = run_dag(dagbag, DAG_ID, conf("v2.0.0", require_approval=True))
    finally:
        stop.set()
        person.join(5)
    assert tasks["deploy.approve_switch"] == "success"
    texts = local.message_texts()
    assert any("Approval requested" in t for t in texts), texts
    if switched:
        assert state == "success", tasks
        assert local.weights()[ENV.green_tg] == 100
    else:
        assert tasks["deploy.switch_traffic"] == "skipped"
        assert local.weights() == {ENV.blue_tg: 100, ENV.green_tg: 0}
        assert local.service(GREEN)["desiredCount"] == 0
        assert any("Deployment rejected" in t for t in texts), texts
