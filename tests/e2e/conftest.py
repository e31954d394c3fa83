"""End-to-end suite: a real distributed Airflow (Postgres, Redis, CeleryExecutor, five processes).

Only collected when LATTICEDB_E2E=1 (`make e2e` sets it), so `make test` never starts the stack.
Artifacts (process logs, task logs, screenshots, durations) go to $LATTICEDB_E2E_ARTIFACTS,
default artifacts/e2e/; on a failure the tails of every process log are added to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

E2E = os.environ.get("LATTICEDB_E2E") == "1"
collect_ignore_glob = [] if E2E else ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LATTICEDB_E2E_ARTIFACTS") or ROOT / "artifacts" / "e2e")
# The DAGs the suite drives; blue/green only once its file exists (its test skips otherwise).
DAGS = ["latticedb_deploy_canary", "latticedb_deploy_rolling"] + (
    ["latticedb_deploy_blue_green"] if (ROOT / "dags" / "latticedb_deploy_blue_green.py").exists() else []
)
_durations: dict[str, float] = {}
_stack = None


@pytest.fixture(scope="session")
def stack():
    global _stack
    from harness.airflow_stack import Stack
    from harness.api import ApiClient

    for sub in ("logs", "screenshots", "local", "task-logs", "airflow-home", "reports"):
        shutil.rmtree(ARTIFACTS / sub, ignore_errors=True)
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    s = _stack = Stack(ARTIFACTS)
    t = time.monotonic()
    try:
        s.start()
        s.wait_for_components(ApiClient(s.api_url), DAGS)
    except BaseException:
        print(s.log_tails(80))
        s.stop()
        raise
    s.timings["stack_up_total"] = time.monotonic() - t
    _durations.update({f"stack.{k}": v for k, v in s.timings.items()})
    yield s
    t = time.monotonic()
    s.stop()
    _durations["stack.stop"] = time.monotonic() - t


@pytest.fixture(scope="session")
def api(stack):
    from harness.api import ApiClient

    return ApiClient(stack.api_url)


@pytest.fixture(scope="session")
def local_env(stack):
    from tests.integration.helpers import LocalEnv

    return LocalEnv(stack.moto_url, stack.service_url, stack.slack_url)


@pytest.fixture
def local(local_env):
    """The local environment freshly bootstrapped (v1.0.0 live on blue, no messages)."""
    local_env.reset()
    return local_env


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        _durations[item.nodeid] = rep.duration
    if rep.failed and _stack is not None:
        rep.sections.append(("e2e process logs (tails)", _stack.log_tails(40)))


def pytest_sessionfinish(session, exitstatus):
    if E2E and _durations:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "durations.json").write_text(json.dumps(_durations, indent=2, sort_keys=True))
