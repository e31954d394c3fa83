"""The Deployments page (plugins/latticedb_deployments_plugin.py) against the local stack's history table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.envs import ENV

pytestmark = pytest.mark.integration


def _record(n: int, outcome: str, minutes_ago: float, **extra):
    from latticedb_deploy.history import DeploymentRecord, iso

    finished = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return DeploymentRecord(
        environment=ENV.name, dag_id="latticedb_deploy_canary", run_id=f"manual__{n}", strategy="canary",
        started=iso(finished - timedelta(minutes=2)), finished=iso(finished), outcome=outcome,
        image=f"r/latticedb:v2.{n}.0", version=f"v2.{n}.0", digest=f"sha256:{n:064d}", triggered_by="admin", **extra,
    )


@pytest.fixture
def token(monkeypatch):
    """A real Airflow API token, signed by the configured auth manager (as /auth/token issues)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-only-secret-for-the-deployments-page")
    am = init_auth_manager()
    return am.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture
def client(local, monkeypatch):
    from latticedb_deployments_plugin import LatticeDBDeploymentsPlugin

    from latticedb_deploy import page

    monkeypatch.setenv(page.PAGE_ENVIRONMENTS_ENV, ENV.name)
    [mounted] = LatticeDBDeploymentsPlugin.fastapi_apps
    app = mounted["app"]
    yield TestClient(app, follow_redirects=False), app
    app.dependency_overrides.clear()


def test_anonymous_requests_are_refused(client, token):
    http, _ = client
    for path in ("/api/environments", f"/api/deployments?environment={ENV.name}", f"/api/dora?environment={ENV.name}&days=30"):
        resp = http.get(path)
        assert resp.status_code == 401, (path, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("application/json")
    resp = http.get("/")
    assert resp.status_code == 302 and resp.headers["location"].startswith("/auth/login")
    assert http.get("/api/environments", headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)


def test_records_written_are_served_as_json_and_html(client, token):
    from latticedb_deploy.aws.history import HistoryStore
    from latticedb_deploy.config import load_config

    http, _ = client
    http.headers["Authorization"] = f"Bearer {token}"
    store = HistoryStore(load_config().environment(ENV.name))
    store.put(_record(1, "succeeded", 90, image_pushed_at=(datetime.now(UTC) - timedelta(hours=3)).isoformat()))
    store.put(_record(2, "rolled_back", 60, failed_step="deploy.gate_25pct", reason="error rate 12.1 % above 5 %",
                      time_to_restore_seconds=2.9))
    store.put(_record(3, "rejected", 30, failed_step="deploy.approve_switch"))
    store.put(_record(4, "succeeded", 10, approved_by="bob"))

    body = http.get(f"/api/deployments?environment={ENV.name}&limit=3").json()
    assert body["environment"] == ENV.name
    assert [d["outcome"] for d in body["deployments"]] == ["succeeded", "rejected", "rolled_back"]  # newest first
    rolled = body["deployments"][2]
    assert (rolled["failed_step"], rolled["time_to_restore_seconds"], rolled["version"]) == ("deploy.gate_25pct", 2.9, "v2.2.0")

    dora = http.get(f"/api/dora?environment={ENV.name}&days=7").json()
    # by hand: 2 succeeded in 7 days; changed production: 1, 2, 4 (3 was rejected); failed: 2
    assert dora["successful_deployments"] == 2 and dora["deployment_frequency_per_day"] == round(2 / 7, 3)
    assert dora["change_failure_rate"] == round(1 / 3, 3)
    assert dora["time_to_restore_seconds"]["median"] == 2.9 and dora["bands"]["time_to_restore"] == "elite"
    assert dora["lead_time_seconds"]["count"] == 1 and 3 * 3600 - 90 * 60 - 5 < dora["lead_time_seconds"]["median"] < 3 * 3600

    [state] = http.get("/api/environments").json()["environments"]
    assert state["environment"] == ENV.name and state["serving"]["version"] == "v2.4.0"
    assert state["traffic"] == {"blue": 100, "green": 0} and state["in_flight"] is None

    del http.headers["Authorization"]
    http.cookies.set("_token", token)  # the UI's session
    html = http.get("/?days=7").text
    assert "LatticeDB deployments" in html and "v2.4.0" in html and "rolled_back" in html
    assert "deploy.gate_25pct" in html and "error rate 12.1 % above 5 %" in html and "Change failure rate" in html
    assert "<script" not in html


def test_the_plugin_registers_the_app_and_the_nav_entry():
    from latticedb_deployments_plugin import LatticeDBDeploymentsPlugin

    assert LatticeDBDeploymentsPlugin.fastapi_apps[0]["url_prefix"] == "/latticedb"
    [view] = LatticeDBDeploymentsPlugin.external_views
    assert view["name"] == "Deployments" and view["href"] == "/latticedb/"


def test_a_sequence_of_real_runs_is_what_the_page_shows(local, dagbag, client, token):
    """A canary rolled back, a rejected blue/green, a success and its emergency rollback, all real runs:
    the JSON and the page show each with its outcome, and DORA counts them as a person would."""
    import threading

    from tests.integration.helpers import image, run_dag_run
    from tests.integration.test_blue_green import _answer_when_asked
    from tests.integration.test_emergency_rollback import _rollback_run

    canary = run_dag_run(dagbag, "latticedb_deploy_canary", {
        "image_uri": image("v2.1.0-errors"), "environment": ENV.name, "traffic_steps": [25, 100], "interval_seconds": 6,
    })
    stop = threading.Event()
    person = threading.Thread(target=_answer_when_asked, args=("latticedb_deploy_blue_green", "Reject", stop), daemon=True)
    person.start()
    try:
        rejected = run_dag_run(dagbag, "latticedb_deploy_blue_green", {
            "image_uri": image("v2.0.0"), "environment": ENV.name, "bake_seconds": 2, "require_approval": True,
        })
    finally:
        stop.set()
        person.join(5)
    deployed = run_dag_run(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    emergency = _rollback_run(dagbag, reason="INC-5 v2.0.0 leaks connections")
    assert [canary.state, rejected.state, deployed.state, emergency.state] == ["failed", "failed", "success", "success"]

    http, _ = client
    http.headers["Authorization"] = f"Bearer {token}"
    body = http.get(f"/api/deployments?environment={ENV.name}").json()
    seen = [(d["run_id"], d["outcome"], d["failed_step"]) for d in body["deployments"]]
    assert seen == [  # newest first
        (emergency.run_id, "succeeded", None),
        (deployed.run_id, "succeeded", None),
        (rejected.run_id, "rejected", "deploy.approve_switch"),
        (canary.run_id, "rolled_back", "deploy.gate_25pct"),
    ], seen
    by_run = {d["run_id"]: d for d in body["deployments"]}
    assert by_run[emergency.run_id]["dag_id"] == "latticedb_rollback" and by_run[deployed.run_id]["version"] == "v2.0.0"
    restores = sorted(by_run[r.run_id]["time_to_restore_seconds"] for r in (canary, emergency))
    assert all(0 <= s < 120 for s in restores), restores  # a canary at 25 % is restored in one listener call

    dora = http.get(f"/api/dora?environment={ENV.name}&days=7").json()
    # By hand: one successful deployment (the rolling one; the rollback is not a deployment). Changed
    # production: the canary (rolled back) and the rolling deployment (then reverted by the emergency
    # rollback): both failed, so 2 of 2. Time to restore: the canary's and the emergency rollback's.
    assert (dora["successful_deployments"], dora["deployments_that_changed_production"], dora["failed_changes"]) == (1, 2, 2), dora
    assert dora["change_failure_rate"] == 1.0 and dora["bands"]["change_failure_rate"] == "low", dora
    assert dora["time_to_restore_seconds"]["median"] == pytest.approx((restores[0] + restores[1]) / 2, abs=0.051), dora

    html = http.get("/?days=7").text
    for text in ("rolled_back", "rejected", "deploy.gate_25pct", "deploy.approve_switch", "latticedb_rollback",
                 canary.run_id, emergency.run_id, "Change failure rate"):
        assert text in html, text
