"""latticedb_feature_flags against a real redis-server (started by the suite), notifications to the Slack sink."""

from __future__ import annotations

import json

import pytest

from tests.envs import ENV
from tests.integration.helpers import run_dag

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_feature_flags"


def _run(dagbag, **conf):
    # Every param explicitly: dag.test() on one DAG object carries a previous run's conf over as defaults.
    return run_dag(dagbag, DAG_ID, {"environment": ENV.name, "flag": None, "reason": "", "notify": True, **conf})


def test_show_reads_everything_and_changes_nothing(local, redis_db, dagbag):
    state, tasks = _run(dagbag, action="show")
    assert state == "success", tasks
    assert redis_db.keys("*") == []
    assert local.messages() == []


def test_enable_and_disable_a_flag(local, redis_db, dagbag):
    assert _run(dagbag, action="enable", flag="new_query_optimizer", reason="rollout")[0] == "success"
    assert redis_db.get("latticedb:flags:new_query_optimizer") == b"true"
    assert _run(dagbag, action="disable", flag="new_query_optimizer")[0] == "success"
    assert redis_db.get("latticedb:flags:new_query_optimizer") == b"false"
    texts = local.message_texts()
    assert any("Feature flag new_query_optimizer enabled" in t and "Reason: rollout" in t for t in texts), texts
    assert any("Feature flag new_query_optimizer disabled" in t for t in texts), texts


def test_enable_without_a_flag_fails_without_touching_redis(local, redis_db, dagbag):
    state, tasks = _run(dagbag, action="enable")
    assert state == "failed" and tasks["apply"] == "failed"
    assert redis_db.keys("*") == []


def test_kill_switch_is_an_active_incident_until_turned_off(local, redis_db, dagbag):
    from latticedb_deploy.config import load_config
    from latticedb_deploy.flags import incident_reasons

    env = load_config().environment(ENV.name)
    redis_db.set("latticedb:flags:vector_search_v2", "true")
    assert incident_reasons(env) == []
    assert _run(dagbag, action="kill_switch_on", reason="INC-42")[0] == "success"
    assert redis_db.get("latticedb:flags:kill_switch:all") == b"true"
    assert incident_reasons(env) == ["kill switch latticedb:flags:kill_switch:all is on"]
    assert any("KILL SWITCH ON" in t for t in local.message_texts())
    assert _run(dagbag, action="kill_switch_off")[0] == "success"
    assert incident_reasons(env) == []
    assert redis_db.get("latticedb:flags:vector_search_v2") == b"true"  # flags keep their own values


def test_open_circuit_is_shown_reported_and_closed(local, redis_db, dagbag):
    from latticedb_deploy.config import load_config
    from latticedb_deploy.flags import incident_reasons

    env = load_config().environment(ENV.name)
    redis_db.set("latticedb:circuit:database:state", "open")  # what the service does when the database struggles
    assert incident_reasons(env) == ["circuit latticedb:circuit:database:state is open"]
    assert _run(dagbag, action="circuit_show")[0] == "success"
    assert redis_db.get("latticedb:circuit:database:state") == b"open"
    assert _run(dagbag, action="circuit_close", reason="database recovered")[0] == "success"
    assert redis_db.get("latticedb:circuit:database:state") == b"closed"
    assert incident_reasons(env) == []


def test_unreachable_redis_is_a_reason_not_an_exception(redis_server, monkeypatch):
    from latticedb_deploy.config import load_config
    from latticedb_deploy.flags import incident_reasons
    from tests.local_stack_fixtures import _free_port

    monkeypatch.setenv(ENV.conn_var(ENV.redis_conn_id), json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": _free_port()}))
    (reason,) = incident_reasons(load_config().environment(ENV.name))
    assert reason.startswith(f"cannot read incident state from Redis (connection '{ENV.redis_conn_id}')"), reason


def test_kill_switch_on_stops_a_deployment_at_preflight_naming_it(local, redis_db, dagbag):
    from tests.integration.helpers import image

    redis_db.set("latticedb:flags:kill_switch:all", "true")
    revisions, service = local.revisions(), local.service()
    try:
        state, tasks = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    finally:
        redis_db.flushall()  # the session's Redis is shared with later tests
    assert state == "failed"
    assert tasks["preflight.check_no_active_incidents"] == "failed"
    assert tasks["prepare.register_task_definition"] == "upstream_failed"
    assert local.revisions() == revisions and local.service()["taskDefinition"] == service["taskDefinition"]
    failed = [t for t in local.message_texts() if "preflight.verdict" in t]
    assert failed and "kill switch latticedb:flags:kill_switch:all is on" in failed[0], local.message_texts()
