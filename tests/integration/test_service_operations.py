"""Issue 15, the operations commands of `manage-service.sh`: latticedb_service's status, scale and
restart on real dag.test() runs against the local environment. Every resource name comes from the
config (load_config().environment(ENV.name))."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_service"


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("LATTICEDB_DATA_DIR", str(tmp_path))  # this test's own deployment log
    return load_config().environment(ENV.name)


def weights(local, env, port: int | None = None) -> dict[str, int]:
    elb = local.client("elbv2")
    lb = elb.describe_load_balancers(Names=[env.load_balancer.name])["LoadBalancers"][0]
    port = port or env.load_balancer.listener_port
    listener = next(x for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if x["Port"] == port)
    return {g["TargetGroupArn"].split("/")[-2]: g["Weight"] for g in listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}


def lease_holder(local, env):
    item = local.client("dynamodb").get_item(
        TableName=env.lock_table, Key={"environment": {"S": env.name}}, ConsistentRead=True
    ).get("Item")
    return item.get("owner") if item else None


def states(dr) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_status_reports_the_bootstrapped_state_and_the_last_deployment(local, dagbag, env):
    from latticedb_deploy.deployment_log import DeploymentEntry, append_entry, resolve_log_path

    append_entry(resolve_log_path(env.deployment_log), DeploymentEntry(
        date=datetime(2026, 11, 1, tzinfo=UTC), version="v1.0.0", strategy="canary", duration_seconds=75,
        deployed_by="alice", environment=env.name,
    ))
    append_entry(resolve_log_path(env.deployment_log), DeploymentEntry(
        date=datetime(2026, 11, 2, tzinfo=UTC), version="v9.9.9", strategy="rolling", duration_seconds=5,
        deployed_by="bob", environment="some-other-env",
    ))
    blue = local.service(env.service)
    dr = run_dag_run(dagbag, DAG_ID, {"environment": env.name, "action": "status"})
    assert dr.state == "success", states(dr)
    assert states(dr)["update_service"] == "skipped"  # status changes nothing
    status = xcom(DAG_ID, dr.run_id, "status")
    assert status["live_service"] == env.service
    slots = {s["service"]: s for s in status["slots"]}
    live, idle = slots[env.service], slots[env.green_service]
    assert live["task_definition"] == blue["taskDefinition"]
    assert live["running"] == live["desired"] == blue["desiredCount"] == 2
    assert live["weight"] == 100 and idle["weight"] == 0
    assert live["healthy_targets"] == 2 and idle["desired"] == 0
    assert status["last_deployment"]["Version"] == "v1.0.0", status["last_deployment"]  # this environment's
    text = next(t for t in local.message_texts() if "Service status" in t)
    assert env.service in text and "2/2 running" in text and "weight 100%" in text and "v1.0.0" in text, text
    assert lease_holder(local, env) is None


def test_scale_reaches_the_desired_count(local, dagbag, env):
    before = local.service(env.service)
    assert before["desiredCount"] == 2
    dr = run_dag_run(dagbag, DAG_ID, {"environment": env.name, "action": "scale", "desired_count": 3, "reason": "load test"})
    assert dr.state == "success", states(dr)
    assert states(dr)["wait_for_service"] == "success"
    after = local.service(env.service)
    assert after["desiredCount"] == after["runningCount"] == 3
    assert after["taskDefinition"] == before["taskDefinition"]
    assert weights(local, env) == {env.load_balancer.blue_target_group: 100, env.load_balancer.green_target_group: 0}
    report = xcom(DAG_ID, dr.run_id, "report")
    assert report["after"]["slots"][0]["running"] == 3
    texts = local.message_texts()
    assert any("Scaling" in t and "from 2 to 3 tasks" in t for t in texts), texts
    assert any("Scaled" in t and "3/3 running" in t for t in texts), texts
    assert lease_holder(local, env) is None


def test_scale_beyond_capacity_is_refused_with_nothing_changed(local, dagbag, env):
    limit = env.capacity.max_tasks
    assert limit is not None
    before = local.service(env.service)
    dr = run_dag_run(dagbag, DAG_ID, {
        "environment": env.name, "action": "scale", "desired_count": limit + 1, "reason": "too much",
    })
    s = states(dr)
    assert dr.state == "failed"
    assert s["check_request"] == "failed", s
    assert s["update_service"] != "success" and s["acquire_environment"] != "success", s
    after = local.service(env.service)
    assert after["desiredCount"] == before["desiredCount"] and after["deployments"] == before["deployments"]
    assert lease_holder(local, env) is None
    failed = [t for t in local.message_texts() if "check_request" in t]
    assert failed and "capacity.max_tasks" in failed[0], local.message_texts()


def test_restart_makes_a_new_deployment_of_the_same_revision(local, dagbag, env):
    lb = env.load_balancer
    stable = {lb.blue_target_group: 100, lb.green_target_group: 0}
    before = local.service(env.service)
    old_id = before["deployments"][0]["id"]
    seen: list[dict] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                seen.append(weights(local, env))
            except Exception:  # noqa: BLE001 - busy for a moment: sample again
                pass
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        dr = run_dag_run(dagbag, DAG_ID, {"environment": env.name, "action": "restart", "reason": "stuck pool"})
    finally:
        stop.set()
        sampler.join(5)
    assert dr.state == "success", states(dr)
    change = xcom(DAG_ID, dr.run_id, "update_service")
    assert change["deployment_id"] != old_id
    after = local.service(env.service)
    assert after["taskDefinition"] == before["taskDefinition"]
    assert [d["id"] for d in after["deployments"]] == [change["deployment_id"]]
    assert after["deployments"][0]["rolloutState"] == "COMPLETED"
    assert after["runningCount"] == after["desiredCount"] == before["desiredCount"]
    assert seen and all(w == stable for w in seen), [w for w in seen if w != stable][:5]
    assert weights(local, env) == stable
    texts = local.message_texts()
    assert any("Restarting" in t for t in texts) and any("Restarted" in t for t in texts), texts
    assert lease_holder(local, env) is None
