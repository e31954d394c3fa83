"""The UI in a real browser (headless Chromium over WebDriver): log in, the canary's trigger form, a run's graph.

Screenshots go to artifacts/e2e/screenshots/ whatever the outcome.
"""

from __future__ import annotations

import pytest

from harness.airflow_stack import ADMIN, free_port
from tests.e2e.conftest import ARTIFACTS
from tests.integration.helpers import image

CANARY = "latticedb_deploy_canary"
SHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="module")
def browser(stack):
    from tests.e2e.webdriver import Browser, ChromeDriver, find_chromium

    try:
        binary, driver_binary = find_chromium()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    driver = ChromeDriver(driver_binary, free_port(), stack.logs / "chromedriver.log")
    b = None
    try:
        driver.wait_ready()
        b = Browser.start(driver.url, binary, driver.user_data_dir)
        yield b
    finally:
        if b is not None:
            b.quit()
        driver.stop()


@pytest.fixture(scope="module")
def logged_in(browser, stack):
    browser.get(f"{stack.api_url}/")
    user = browser.wait_find(css="input[name=username]", timeout=60)
    browser.screenshot(SHOTS / "01-login.png")
    browser.type(user, ADMIN[0])
    browser.type(browser.wait_find(css="input[name=password]"), ADMIN[1])
    browser.click(browser.wait_find(css="button[type=submit]"))
    browser.wait_text("Dags", timeout=60)
    assert "/auth/login" not in browser.current_url()
    browser.screenshot(SHOTS / "02-home.png")
    return browser


def test_trigger_form_shows_the_canary_params_with_titles(logged_in, stack):
    b = logged_in
    b.get(f"{stack.api_url}/dags/{CANARY}")
    b.wait_text(CANARY, timeout=60)
    b.click(b.wait_find(xpath="//button[normalize-space(.)='Trigger']", timeout=60))
    b.wait_text("Trigger Dag", timeout=30)
    try:
        text = b.wait_text("Image URI", "Initial canary %", "Environment", "Explicit traffic steps", timeout=30)
    finally:
        b.screenshot(SHOTS / "03-canary-trigger-form.png")
    assert "Step %" in text and "Interval (s)" in text
    # The canary's own fields sit below the common ones: scroll them into view for a second picture.
    b.execute(
        "const el = [...document.querySelectorAll('label, span, p, div')]"
        ".find(e => e.childElementCount === 0 && e.textContent.trim().startsWith('Initial canary %'));"
        "if (el) el.scrollIntoView({block: 'center'});"
    )
    b.screenshot(SHOTS / "03b-canary-trigger-form-canary-params.png")


def _finished_canary_run(api) -> str:
    for run in api.runs(CANARY):
        if run["state"] in ("success", "failed"):
            return run["dag_run_id"]
    api.unpause(CANARY)
    r = api.trigger(CANARY, {"image_uri": image("v2.0.0"), "environment": "local",
                             "traffic_steps": [25, 50, 100], "interval_seconds": 6})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    api.wait(CANARY, run_id, timeout=300)
    return run_id


def test_graph_view_of_a_finished_run_renders_the_phase_groups(logged_in, api, stack):
    b = logged_in
    run_id = _finished_canary_run(api)
    # The DAG page remembers grid vs graph in localStorage (`default_dag_view`): ask for the graph.
    b.execute("window.localStorage.setItem('default_dag_view', JSON.stringify('graph'));")
    b.get(f"{stack.api_url}/dags/{CANARY}/runs/{run_id}")
    try:
        b.wait_find(css=".react-flow__node", timeout=60)
        text = b.wait_text("preflight", "deploy", "rollback", timeout=60)
    finally:
        b.screenshot(SHOTS / "04-canary-run-graph.png")
    assert run_id in text or CANARY in text


def test_deployments_page_shows_the_environment_and_its_history(logged_in, api, stack):
    """The plugin's page (/latticedb/) in the browser, with the UI's own session: the environment's card,
    the DORA tiles, and the runs recorded so far (the REST tests above left at least one)."""
    b = logged_in
    recorded = api.session.get(f"{api.base_url}/latticedb/api/deployments?environment=local", timeout=30).json()
    b.get(f"{stack.api_url}/latticedb/")
    try:
        text = b.wait_text("LatticeDB deployments", "Deployment frequency", "Change failure rate", "traffic:", timeout=60)
    finally:
        b.screenshot(SHOTS / "05-deployments-page.png")
    assert "/auth/login" not in b.current_url()
    assert "local" in text and "serving" in text
    for d in recorded["deployments"][:20]:
        assert d["run_id"] in text and d["outcome"] in text, (d, text[:3000])
