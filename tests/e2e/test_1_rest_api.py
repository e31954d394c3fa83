"""Through the REST API only, as a user would: trigger, poll, answer approvals; check AWS on moto."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.integration.helpers import image

CANARY = "latticedb_deploy_canary"
BLUE_GREEN = "latticedb_deploy_blue_green"
FAST_CANARY = {"environment": "local", "traffic_steps": [25, 50, 100], "interval_seconds": 6}
SLOT_SERVICE = {"latticedb-local-blue": "latticedb-service-local", "latticedb-local-green": "latticedb-service-local-green"}


def live_slot(local) -> tuple[str, str]:
    """(target group, image of its service's task definition) of the slot with 100 % of production traffic."""
    weights = local.weights()
    live = [tg for tg, w in weights.items() if w == 100]
    assert len(live) == 1 and sum(weights.values()) == 100, weights
    service = local.service(SLOT_SERVICE[live[0]])
    return live[0], local.task_definition_image(service["taskDefinition"])


def aws_snapshot(local) -> dict:
    return {
        "weights": local.weights(),
        "revisions": local.revisions(),
        "blue": local.service()["taskDefinition"],
        "green": local.service("latticedb-service-local-green")["taskDefinition"],
    }


def _trigger(api, conf: dict) -> str:
    """Trigger the canary through the REST API; its run id."""
    r = api.trigger(CANARY, conf)
    assert r.status_code == 200, r.text
    return r.json()["dag_run_id"]


def test_canary_succeeds_with_gates_deferred_to_the_triggerer(api, local):
    before_tg, before_image = live_slot(local)
    assert not before_image.endswith(local.digest("v2.0.0"))
    api.unpause(CANARY)
    run_id = _trigger(api, {**FAST_CANARY, "image_uri": image("v2.0.0")})

    seen: dict[str, set[str]] = {}

    def record(states):
        for task_id, state in states.items():
            seen.setdefault(task_id, set()).add(state)

    run = api.wait(CANARY, run_id, timeout=300, on_poll=record, interval=0.5)
    states = api.task_states(CANARY, run_id)
    assert run["state"] == "success", states
    for p in (25, 50, 100):
        assert states[f"deploy.gate_{p}pct"] == "success"
    deferred = sorted(t for t, s in seen.items() if "deferred" in s)
    assert any(t.startswith("deploy.gate_") for t in deferred), f"no gate was seen deferred: {seen}"

    tg, live_image = live_slot(local)
    assert tg != before_tg
    assert live_image.endswith(local.digest("v2.0.0")), live_image

    # One Celery worker ran every task: the first that needed the run's config read it from XCom, the
    # later ones from the worker host's copy (latticedb_deploy.snapshot_cache), each try in its own process,
    # and the copy is the snapshot notify_start took.
    taken = re.search(r"sha256 ([0-9a-f]{12}), taken now", api.task_log(CANARY, run_id, "notify_start"))
    assert taken, "notify_start's log does not name the snapshot it took"
    sources = {task_id: api.task_log(CANARY, run_id, task_id) for task_id in
               ("preflight.verdict", "deploy.shift_traffic_to_50pct", "notify_success")}
    read = f"sha256 {taken.group(1)}, read from this host's copy"
    assert all(read in log for log in sources.values()), (read, sources)


def test_a_second_run_of_a_deployment_dag_is_not_queued_behind_the_first(api, local):
    """Runs of one deployment DAG go at once (production's hour-long canary never queues staging's); in one
    environment the lease refuses the second at once, naming the first, which carries on undisturbed. Before,
    `max_active_runs=1` held the second `queued` until the first ended, whatever its environment."""
    api.unpause(CANARY)
    first_id = _trigger(api, {**FAST_CANARY, "interval_seconds": 20, "image_uri": image("v2.0.0")})
    _wait_for_task_state(api, CANARY, first_id, "preflight.acquire_environment", "success")
    second_id = _trigger(api, {**FAST_CANARY, "image_uri": image("v2.0.1")})
    run = api.wait(CANARY, second_id, timeout=240)
    states = api.task_states(CANARY, second_id)
    assert run["state"] == "failed", states
    assert states["preflight.acquire_environment"] == "failed", states
    assert api.run(CANARY, first_id)["state"] == "running"  # refused while the first still deploys
    refused = [t for t in local.message_texts() if "acquire_environment" in t]
    assert refused and f"{CANARY}/{first_id}" in refused[0], local.message_texts()
    assert api.wait(CANARY, first_id, timeout=300)["state"] == "success", api.task_states(CANARY, first_id)
    assert live_slot(local)[1].endswith(local.digest("v2.0.0"))


@pytest.mark.parametrize(
    "conf, reason",
    [
        ({"image_uri": "latticedb:latest!", "environment": "local"}, "malformed image_uri"),
        ({"image_uri": "not a uri", "environment": "local"}, "malformed image_uri"),
        ({"image_uri": image("v2.0.0"), "environment": "moon"}, "unknown environment"),
    ],
    ids=["bad-image-chars", "bad-image-spaces", "unknown-environment"],
)
def test_invalid_conf_is_refused_at_trigger_time_and_nothing_changes(api, local, conf, reason):
    api.unpause(CANARY)
    before_runs = {r["dag_run_id"] for r in api.runs(CANARY)}
    before = aws_snapshot(local)
    r = api.trigger(CANARY, conf)
    assert 400 <= r.status_code < 500, f"{reason}: {r.status_code} {r.text}"
    assert {x["dag_run_id"] for x in api.runs(CANARY)} == before_runs, "a run was created"
    assert aws_snapshot(local) == before


def test_failing_canary_rolls_back_and_the_run_fails(api, local):
    before_tg, before_image = live_slot(local)
    api.unpause(CANARY)
    run_id = _trigger(api, {**FAST_CANARY, "image_uri": image("v2.1.0-errors")})
    run = api.wait(CANARY, run_id, timeout=300)
    states = api.task_states(CANARY, run_id)
    assert run["state"] == "failed", states
    assert states["deploy.gate_25pct"] == "failed"
    assert states["rollback.restore_previous_revision"] == "success", states
    assert live_slot(local) == (before_tg, before_image)


def _wait_for_task_state(api, dag_id: str, run_id: str, task_id: str, wanted: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.run(dag_id, run_id)
        states = api.task_states(dag_id, run_id)
        if states.get(task_id) == wanted:
            return
        assert run["state"] not in ("success", "failed"), f"run ended {run['state']} before {task_id} was {wanted}: {states}"
        time.sleep(0.5)
    raise TimeoutError(f"{task_id} never reached {wanted}: {api.task_states(dag_id, run_id)}")


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_blue_green_approval_answered_through_the_hitl_api(api, local, answer):
    if api.get(f"/dags/{BLUE_GREEN}").status_code == 404:
        errors = api.get("/importErrors").json().get("import_errors", [])
        pytest.skip(f"{BLUE_GREEN} is not in the DagBag yet (import errors: {errors})")
    task_id = "deploy.approve_switch"
    before_tg, before_image = live_slot(local)
    api.unpause(BLUE_GREEN)
    conf = {"image_uri": image("v2.0.0"), "environment": "local", "require_approval": True, "bake_seconds": 2}
    r = api.trigger(BLUE_GREEN, conf)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]

    _wait_for_task_state(api, BLUE_GREEN, run_id, task_id, "awaiting_input")
    detail = api.hitl(BLUE_GREEN, run_id, task_id)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert set(body["options"]) >= {"Approve", "Reject"}, body
    assert "v2.0.0" in body["subject"], body
    assert live_slot(local) == (before_tg, before_image), "traffic moved before anyone approved"

    answered = api.answer(BLUE_GREEN, run_id, task_id, answer)
    assert answered.status_code == 200, answered.text
    assert answered.json()["chosen_options"] == [answer]

    run = api.wait(BLUE_GREEN, run_id, timeout=300)
    states = api.task_states(BLUE_GREEN, run_id)
    assert states[task_id] == "success", states
    tg, live_image = live_slot(local)
    if answer == "Approve":
        assert run["state"] == "success", states
        assert states["deploy.switch_traffic"] == "success"
        assert tg != before_tg and live_image.endswith(local.digest("v2.0.0")), (tg, live_image)
    else:
        assert states["deploy.switch_traffic"] == "skipped", states
        assert (tg, live_image) == (before_tg, before_image)
        assert any("rejected" in t.lower() for t in local.message_texts()), local.message_texts()
    # The Deployments page's JSON (the plugin on the api-server) has this run, with its outcome.
    page = f"{api.base_url}/latticedb/api/deployments?environment=local"
    assert requests.get(page, timeout=10).status_code == 401  # anonymous: refused, no redirect
    deployments = api.session.get(page, timeout=30).json()["deployments"]
    mine = [d for d in deployments if d["run_id"] == run_id]
    wanted = ("succeeded", None) if answer == "Approve" else ("rejected", "deploy.approve_switch")
    assert [(d["outcome"], d["failed_step"]) for d in mine] == [wanted], deployments
    assert mine[0]["strategy"] == "blue_green" and mine[0]["version"] == "v2.0.0", mine
