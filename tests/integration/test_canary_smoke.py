"""Issue 15, runbook canary step 4: smoke tests of the canary slot at the initial percentage.

After the canary slot is stable and before the first traffic shift, the canary is smoke-tested
through the test listener (as blue/green does). Real dag.test() runs against the local environment;
the `test_health_down` fault fails /health behind the test listener only, so production's /health
stays up while the canary's smoke test fails. Every resource name comes from the config.
"""

from __future__ import annotations

import threading

import pytest
import requests

from latticedb_deploy.config import load_config
from tests.envs import ENV
from tests.integration.helpers import image, run_dag_run, xcom

pytestmark = pytest.mark.integration
DAG_ID = "latticedb_deploy_canary"
SMOKE = "deploy.smoke_test_canary"
CONF = {"traffic_steps": [50, 100], "interval_seconds": 4}


def _env():
    return load_config().environment(ENV.name)


def listener_weights(local, port: int) -> dict[str, int]:
    """Target group name -> weight on the listener at `port` of the environment's load balancer."""
    env = _env()
    elb = local.client("elbv2")
    lb = elb.describe_load_balancers(Names=[env.load_balancer.name])["LoadBalancers"][0]
    listener = next(x for x in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if x["Port"] == port)
    groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"].split("/")[-2]: g["Weight"] for g in groups}


class ProductionSampler:
    """Samples the production listener's weights every 0.2 s while a run goes on."""

    def __init__(self, local):
        self.local, self.port = local, _env().load_balancer.listener_port
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(listener_weights(self.local, self.port))
            except Exception:  # noqa: BLE001 - sqlite/moto busy for a moment: sample again
                pass
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def test_canary_smoke_failure_ends_the_run_with_no_production_traffic_shifted(local, dagbag):
    env = _env()
    lb = env.load_balancer
    stable = {lb.blue_target_group: 100, lb.green_target_group: 0}
    assert listener_weights(local, lb.listener_port) == stable
    before = local.service(env.service)
    local.faults(test_health_down=True)
    try:
        with ProductionSampler(local) as sampler:
            dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": env.name, **CONF})
        # While the fault is on: the test listener's /health fails, production's does not.
        assert requests.get(f"{env.test_url}/health", timeout=5).status_code == 503
        prod = requests.get(f"{env.service_url}/health", timeout=5)
        assert prod.status_code == 200 and prod.json()["version"] == "v1.0.0", prod.text
    finally:
        local.faults(test_health_down=False)

    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed"
    assert states["deploy.wait_for_canary_stable"] == "success", states
    assert states[SMOKE] == "failed", states
    # No traffic step ran: the production listener never left 100/0 (sampled during the whole run).
    assert not any(states[t] == "success" for t in states if t.startswith("deploy.shift_traffic_to_")), states
    assert sampler.samples and all(s == stable for s in sampler.samples), [s for s in sampler.samples if s != stable][:5]
    assert listener_weights(local, lb.listener_port) == stable
    # The canary slot is taken down again; production is on its old revision.
    assert states["rollback.notify_rollback"] == "success", states
    assert local.service(env.service)["taskDefinition"] == before["taskDefinition"]
    assert local.service(env.green_service)["desiredCount"] == 0
    # The operator is told which step failed and why.
    failed = [t for t in local.message_texts() if f"Deployment failed at {SMOKE}" in t]
    assert failed, local.message_texts()
    assert "canary slot" in failed[0] and "test listener" in failed[0], failed[0]


def test_canary_is_smoke_tested_on_the_test_listener_before_the_first_shift(local, dagbag):
    env = _env()
    lb = env.load_balancer
    with ProductionSampler(local) as sampler:
        dr = run_dag_run(dagbag, DAG_ID, {"image_uri": image("v2.0.0"), "environment": env.name, **CONF})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    report = xcom(DAG_ID, dr.run_id, SMOKE)
    assert report["passed"] and report["expected_version"] == "v2.0.0", report
    assert report["url"].startswith(env.test_url) and report["slot"]["service"] == env.green_service, report
    assert all(c["passed"] for c in report["checks"]), report["checks"]
    # Smoke-tested before any production traffic reached the canary.
    assert tis[SMOKE].end_date <= tis["deploy.shift_traffic_to_50pct"].start_date
    first_shift = next(i for i, s in enumerate(sampler.samples) if s.get(lb.green_target_group, 0) > 0)
    assert first_shift > 0
    assert listener_weights(local, lb.test_listener_port) == {lb.green_target_group: 100}
    assert listener_weights(local, lb.listener_port) == {lb.blue_target_group: 0, lb.green_target_group: 100}
