"""Ports, paths and timings of the local environment, all overridable from the process environment.

One place so that ctl.py (the parent) and server.py (the child) agree on where things are.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

LOCAL_DIR = Path(__file__).resolve().parents[1]  # include/local
REPO_ROOT = LOCAL_DIR.parents[1]
PLUGINS_DIR = REPO_ROOT / "plugins"
SCENARIO_FILE = LOCAL_DIR / "scenarios.yaml"

ACCOUNT_ID = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


@dataclass(frozen=True)
class Settings:
    """Everything tunable about the local environment, read once from os.environ."""

    state_dir: Path
    moto_port: int
    service_port: int
    slack_port: int
    test_port: int
    rollout_seconds: float
    failed_retention_seconds: float
    tick_seconds: float
    emulator_tick_seconds: float
    health_grace_seconds: float
    rps: float
    scenario_file: Path
    host: str = "127.0.0.1"

    @property
    def moto_url(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def service_url(self) -> str:
        return f"http://{self.host}:{self.service_port}"

    @property
    def test_url(self) -> str:
        return f"http://{self.host}:{self.test_port}"

    @property
    def slack_url(self) -> str:
        return f"http://{self.host}:{self.slack_port}"

    @property
    def ports(self) -> dict[str, int]:
        return {"moto": self.moto_port, "service": self.service_port, "slack": self.slack_port, "test": self.test_port}


def load_settings() -> Settings:
    state = os.environ.get("LATTICEDB_LOCAL_STATE_DIR") or str(REPO_ROOT / ".local")
    return Settings(
        state_dir=Path(state),
        moto_port=_env_int("LATTICEDB_LOCAL_MOTO_PORT", 5000),
        service_port=_env_int("LATTICEDB_LOCAL_SERVICE_PORT", 8081),
        slack_port=_env_int("LATTICEDB_LOCAL_SLACK_PORT", 8082),
        test_port=_env_int("LATTICEDB_LOCAL_TEST_PORT", 8083),
        rollout_seconds=_env_float("LATTICEDB_LOCAL_ROLLOUT_SECONDS", 2.0),
        failed_retention_seconds=_env_float("LATTICEDB_LOCAL_FAILED_RETENTION_SECONDS", 30.0),
        tick_seconds=_env_float("LATTICEDB_LOCAL_TICK_SECONDS", 1.0),
        emulator_tick_seconds=_env_float("LATTICEDB_LOCAL_EMULATOR_TICK_SECONDS", 0.3),
        # A new target answers `initial` for this long before `healthy`, as an ALB health check does.
        health_grace_seconds=_env_float("LATTICEDB_LOCAL_HEALTH_GRACE_SECONDS", 1.0),
        rps=_env_float("LATTICEDB_LOCAL_RPS", 50.0),
        scenario_file=Path(os.environ.get("LATTICEDB_LOCAL_SCENARIOS") or SCENARIO_FILE),
    )


def local_environment():
    """The typed `local` Environment from the deployment config (the single source of names)."""
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGINS_DIR))
    from latticedb_deploy.config import load_config

    return load_config().environment("local")
