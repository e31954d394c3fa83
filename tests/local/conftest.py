"""Run the embedded local environment once per test session, on free ports, reset before each test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CTL = REPO / "include" / "local" / "ctl.py"
PORT_VARS = (
    "LATTICEDB_LOCAL_MOTO_PORT",
    "LATTICEDB_LOCAL_SERVICE_PORT",
    "LATTICEDB_LOCAL_SLACK_PORT",
    "LATTICEDB_LOCAL_TEST_PORT",
)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ctl(command: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CTL), command], env=env, capture_output=True, text=True, timeout=timeout)


def local_env(tmp: Path, **extra: str) -> dict:
    env = dict(os.environ, LATTICEDB_LOCAL_STATE_DIR=str(tmp), **extra)
    env.update({var: str(port) for var, port in zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True)})
    return env


@dataclass
class Local:
    env: dict
    moto_url: str
    service_url: str
    test_url: str
    slack_url: str
    region: str = "us-east-1"

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.moto_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def status(self) -> dict:
        return requests.get(f"{self.service_url}/_local/status", timeout=5).json()

    def reset(self) -> dict:
        resp = requests.post(f"{self.service_url}/_local/reset", timeout=30)
        resp.raise_for_status()
        return resp.json()

    def health(self, url: str | None = None) -> requests.Response:
        return requests.get(f"{url or self.service_url}/health", timeout=5)


@pytest.fixture(scope="session")
def local(tmp_path_factory):
    env = local_env(tmp_path_factory.mktemp("local-state"), LATTICEDB_LOCAL_RPS="100")
    saved = {k: os.environ.get(k) for k in (*PORT_VARS, "LATTICEDB_LOCAL_STATE_DIR", "LATTICEDB_LOCAL_RPS")}
    os.environ.update({k: env[k] for k in saved})  # so load_config() in tests expands the same ports
    up = ctl("up", env)
    if up.returncode != 0:
        pytest.fail(f"ctl.py up failed:\n{up.stdout}\n{up.stderr}")
    p = {var: env[var] for var in PORT_VARS}
    yield Local(
        env=env,
        moto_url=f"http://127.0.0.1:{p['LATTICEDB_LOCAL_MOTO_PORT']}",
        service_url=f"http://127.0.0.1:{p['LATTICEDB_LOCAL_SERVICE_PORT']}",
        test_url=f"http://127.0.0.1:{p['LATTICEDB_LOCAL_TEST_PORT']}",
        slack_url=f"http://127.0.0.1:{p['LATTICEDB_LOCAL_SLACK_PORT']}",
    )
    ctl("down", env)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def fresh(request):
    """Every test that uses the environment starts from the freshly bootstrapped state."""
    if "local" in request.fixturenames:
        request.getfixturevalue("local").reset()
    yield
