"""Ports, paths and timings of the local stack, all overridable from the process environment.

One place so that ctl.py (the parent) and server.py (the child) agree on where things are.

The stack hosts the environments named in LATTICEDB_LOCAL_ENVIRONMENTS (comma or space separated,
default `local`): `local` and any of its copies in the config (`local_copies`: local-2,
local-staging, ...). Each has its own four ports, from LATTICEDB_<NAME>_{MOTO,SERVICE,SLACK,TEST}_PORT
(`local` -> LATTICEDB_LOCAL_MOTO_PORT, `local-2` -> LATTICEDB_LOCAL_2_MOTO_PORT), by default
local's ports (5000, 8081, 8082, 8083) moved up by 10 per copy (the copy's position in the config).
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


DEFAULT_PORTS = {"moto": 5000, "service": 8081, "slack": 8082, "test": 8083}


def port_variable(environment: str, kind: str) -> str:
    """LATTICEDB_LOCAL_2_SERVICE_PORT for ("local-2", "service")."""
    return f"LATTICEDB_{environment.upper().replace('-', '_')}_{kind.upper()}_PORT"


@dataclass(frozen=True)
class EnvPorts:
    """One hosted environment's endpoints."""

    name: str
    moto_port: int
    service_port: int
    slack_port: int
    test_port: int
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

    def as_dict(self) -> dict:
        return {"ports": self.ports, "moto_url": self.moto_url, "service_url": self.service_url,
                "test_url": self.test_url, "slack_url": self.slack_url}


def env_ports(environment: str, copy_index: int = 0, host: str = "127.0.0.1") -> EnvPorts:
    """The ports of one environment of the stack (copy_index: the copy's position in the config, 0 for local)."""
    got = {k: _env_int(port_variable(environment, k), v + 10 * copy_index) for k, v in DEFAULT_PORTS.items()}
    return EnvPorts(environment, got["moto"], got["service"], got["slack"], got["test"], host)


def environment_names() -> tuple[str, ...]:
    raw = os.environ.get("LATTICEDB_LOCAL_ENVIRONMENTS") or "local"
    names = tuple(dict.fromkeys(n for n in raw.replace(",", " ").split() if n))
    return names or ("local",)


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
    environments: tuple[EnvPorts, ...] = ()
    # ECS's eventual consistency (latticedb_local.consistency): the deployment's DescribeServices may show
    # a service as it was for this long after an UpdateService.
    describe_lag_seconds: float = 0.0

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

    @property
    def all_ports(self) -> dict[str, int]:
        """Every port the stack listens on, named <environment>.<kind>."""
        return {f"{e.name}.{k}": p for e in self.environments for k, p in e.ports.items()}


def load_settings() -> Settings:
    """Settings of the stack; the first environment (normally `local`) answers ctl.py's status and reset."""
    state = os.environ.get("LATTICEDB_LOCAL_STATE_DIR") or str(REPO_ROOT / ".local")
    config = deploy_config()
    hosted = []
    for name in environment_names():
        env = config.environment(name)  # an unknown name fails here, listing the valid ones
        if name != "local" and env.copy_of != "local":
            raise ValueError(f"the local stack hosts `local` and its copies (local_copies), not {name!r}")
        hosted.append(env_ports(name, copy_index(config, name)))
    first = hosted[0]
    return Settings(
        state_dir=Path(state),
        moto_port=first.moto_port,
        service_port=first.service_port,
        slack_port=first.slack_port,
        test_port=first.test_port,
        rollout_seconds=_env_float("LATTICEDB_LOCAL_ROLLOUT_SECONDS", 2.0),
        failed_retention_seconds=_env_float("LATTICEDB_LOCAL_FAILED_RETENTION_SECONDS", 30.0),
        tick_seconds=_env_float("LATTICEDB_LOCAL_TICK_SECONDS", 1.0),
        emulator_tick_seconds=_env_float("LATTICEDB_LOCAL_EMULATOR_TICK_SECONDS", 0.3),
        # A new target answers `initial` for this long before `healthy`, as an ALB health check does.
        health_grace_seconds=_env_float("LATTICEDB_LOCAL_HEALTH_GRACE_SECONDS", 1.0),
        rps=_env_float("LATTICEDB_LOCAL_RPS", 50.0),
        scenario_file=Path(os.environ.get("LATTICEDB_LOCAL_SCENARIOS") or SCENARIO_FILE),
        environments=tuple(hosted),
        describe_lag_seconds=_env_float("LATTICEDB_LOCAL_DESCRIBE_LAG_SECONDS", 1.0),
    )


def deploy_config():
    """The deployment config (the single source of names)."""
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGINS_DIR))
    from latticedb_deploy.config import load_config

    return load_config()


def copy_index(config, name: str) -> int:
    """0 for `local`, k for the k-th copy in the config (its default ports are 10*k higher)."""
    copies = [n for n, e in config.environments.items() if e.copy_of == "local"]
    return copies.index(name) + 1 if name in copies else 0


def local_environment(name: str = "local"):
    """The typed Environment `name` (default `local`) from the deployment config."""
    return deploy_config().environment(name)
