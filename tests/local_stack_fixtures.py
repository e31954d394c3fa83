"""The local environment for tests that deploy: this worker's environment of the session's shared
local stack (started once per session on free ports), reset before each test, its Redis and the DagBag.

Registered once, by tests/conftest.py, for every directory (integration, faults, security). They used
to be imported by name into tests/faults/conftest.py and tests/security/conftest.py as well, which
made pytest hold a second copy of each session fixture there: a second redis-server that took over
the worker's Redis connection, so an integration test that ran after a security or fault test in the
same worker wrote its flags to one Redis and read them from the other. Tests drive real Airflow runs
(`dag.test()`) whose tasks reach the moto server over HTTP through ordinary Airflow connections,
exactly as a user's `make demo` does.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from harness import airflow_connections
from tests.envs import ENV
from tests.integration.helpers import LocalEnv
from tests.stack import ensure_stack, port_variable

ROOT = Path(__file__).resolve().parents[1]
CTL = ROOT / "include" / "local" / "ctl.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def local_env(airflow_db, tmp_path_factory):
    """This worker's environment (tests/envs.py) in the session's shared local stack (tests/stack.py),
    with the Airflow connections its config names pointing at its own ports."""
    try:
        state = ensure_stack(tmp_path_factory)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    for name, ports in state["environments"].items():  # so load_config() expands every environment's ports
        for kind, port in ports.items():
            os.environ[port_variable(name, kind)] = str(port)
    ports = state["environments"][ENV.name]
    moto = f"http://127.0.0.1:{ports['moto']}"
    os.environ.update(airflow_connections(ENV.config, moto, f"http://127.0.0.1:{ports['slack']}", label="TEST"))
    return LocalEnv(moto, f"http://127.0.0.1:{ports['service']}", f"http://127.0.0.1:{ports['slack']}",
                    test_url=f"http://127.0.0.1:{ports['test']}", names=ENV)


@pytest.fixture
def local(local_env, redis_db):
    """The local environment, freshly bootstrapped (v1.0.0 live on blue, nothing recorded), with an
    empty Redis for flags: pre-flight reads the kill switch and circuit breaker on every run."""
    local_env.reset()
    return local_env


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free port in a temp dir (one per worker); the connection of this
    worker's environment (AIRFLOW_CONN_LATTICEDB_LOCAL_<N>_REDIS) points at it."""
    import shutil
    import time

    import redis

    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    def start() -> tuple[subprocess.Popen, redis.Redis] | None:
        """One redis-server on a free port, or None if that port went to someone else first: between
        _free_port() closing its socket and redis binding it, another worker can take it, and a ping
        would then reach *that* worker's redis (its kill switch in our pre-flight). Ours is the one
        whose `dir` is our own temp dir."""
        port, workdir = _free_port(), tmp_path_factory.mktemp("redis")
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        for _ in range(100):
            if proc.poll() is not None:  # could not bind: the port is taken
                return None
            try:
                if os.path.realpath(client.config_get("dir").get("dir", "")) == os.path.realpath(workdir):
                    return proc, client
                break  # someone else's redis answers on this port
            except redis.ConnectionError:
                time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
        return None

    for _ in range(5):
        started = start()
        if started:
            break
    else:
        pytest.fail("redis-server did not start on a port of its own")
    proc, client = started
    port = client.connection_pool.connection_kwargs["port"]
    os.environ[ENV.conn_var(ENV.redis_conn_id)] = f"redis://127.0.0.1:{port}/0"
    yield client
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_db(redis_server):
    """The session's redis-server, emptied."""
    redis_server.flushall()
    return redis_server
