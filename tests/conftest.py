"""Test-session setup: a throwaway Airflow home with a migrated DB, this repo's DAGs and plugins.

Environment variables are set at import time, before anything imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_home = Path(tempfile.mkdtemp(prefix="latticedb-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "LATTICEDB_REPORT_DIR": str(_home / "reports"),
    }
)
sys.path.insert(0, str(ROOT / "plugins"))
# One AWS call-ledger directory per run, shared by xdist workers (they inherit it): tests/security/ledger_session.py
os.environ.setdefault("LATTICEDB_AWS_LEDGER_DIR", tempfile.mkdtemp(prefix="latticedb-aws-ledger-"))

import pytest  # noqa: E402

from tests.security.ledger_session import (  # noqa: E402,F401 - session hooks: the call-ledger proof
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


def pytest_unconfigure(config) -> None:
    """The controlling process (or the only one) stops the session's shared local stack (tests/stack.py)."""
    if hasattr(config, "workerinput"):
        return
    factory = getattr(config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if base is not None:
        from tests.stack import stop_stack

        stop_stack(base)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's Airflow metadata DB once (sqlite under the temp AIRFLOW_HOME)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    return _home
