"""One local stack per test session, shared by every pytest-xdist worker, each in its own environment.

The first process that needs it starts it, under a file lock, with one environment per worker
(local-2 ... local-<workers+1>, tests/envs.py) on free ports, and writes the ports to a state file;
the others read that file (the pattern pytest-xdist documents for session fixtures:
https://pytest-xdist.readthedocs.io/en/stable/how-to.html#making-session-scoped-fixtures-execute-only-once).
Both live in the session's base temp dir (the parent of the workers' own base temp dirs). The
controlling process (or the only process, without xdist) stops the stack when the session ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.envs import environment_names
from tests.security.ledger_session import ledger_file

ROOT = Path(__file__).resolve().parents[1]
CTL = ROOT / "include" / "local" / "ctl.py"
KINDS = ("moto", "service", "slack", "test")
STATE = "local-stack.json"


def port_variable(environment: str, kind: str) -> str:
    return f"LATTICEDB_{environment.upper().replace('-', '_')}_{kind.upper()}_PORT"


def session_root(tmp_path_factory) -> Path:
    """The directory every process of this session shares."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


PORT_ATTEMPTS = 3  # starts of the stack on fresh ports when one of them was taken meanwhile


def _free_ports(n: int) -> list[int]:
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


@contextmanager
def _locked(path: Path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stack_env(state: dict) -> dict:
    """The process environment of ctl.py for this session's stack (also what `down` needs)."""
    env = dict(os.environ, LATTICEDB_LOCAL_STATE_DIR=state["state_dir"],
               LATTICEDB_LOCAL_ENVIRONMENTS=" ".join(state["environments"]))
    for name, ports in state["environments"].items():
        env.update({port_variable(name, k): str(p) for k, p in ports.items()})
    env.pop("LATTICEDB_LOCAL_AWS_LEDGER", None)
    if state.get("ledger"):
        env["LATTICEDB_LOCAL_AWS_LEDGER"] = state["ledger"]
    return env


def ensure_stack(tmp_path_factory) -> dict:
    """Start the session's stack if no process did yet; return its state (environment -> ports)."""
    root = session_root(tmp_path_factory)
    with _locked(root / "local-stack.lock"):
        path = root / STATE
        if path.exists():
            state = json.loads(path.read_text())
            if state.get("error"):
                raise RuntimeError(state["error"])
            return state
        names = environment_names(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0))
        for attempt in range(1, PORT_ATTEMPTS + 1):
            ports = iter(_free_ports(len(KINDS) * len(names)))
            state = {
                "state_dir": str(root / "local-stack"),
                "environments": {name: {k: next(ports) for k in KINDS} for name in names},
                "ledger": str(ledger_file()) if os.environ.get("LATTICEDB_AWS_LEDGER_DIR") else None,
            }
            up = subprocess.run([sys.executable, str(CTL), "up"], env=stack_env(state), capture_output=True, text=True)
            if up.returncode == 0 or "is not free" not in up.stdout + up.stderr or attempt == PORT_ATTEMPTS:
                break
            # A port found free was taken before the stack bound it (another process's outgoing connection got it
            # as its ephemeral port): what started is stopped, and the stack starts again on other ports.
            subprocess.run([sys.executable, str(CTL), "down"], env=stack_env(state), capture_output=True, timeout=60)
        if up.returncode != 0:
            state["error"] = f"the local stack did not start:\n{up.stdout}\n{up.stderr}"
        path.write_text(json.dumps(state))
        if up.returncode != 0:
            raise RuntimeError(state["error"])
        return state


def stop_stack(root: Path) -> None:
    path = root / STATE
    if not path.exists():
        return
    state = json.loads(path.read_text())
    subprocess.run([sys.executable, str(CTL), "down"], env=stack_env(state), capture_output=True, timeout=60)
