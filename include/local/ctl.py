"""Start, stop, inspect and reset the embedded local stack (`local` and any copies of it).

    .venv/bin/python include/local/ctl.py up|down|status|reset|env [--environment NAME]

`up` is idempotent (a healthy running stack is left alone), `down` too. The environments it hosts
(LATTICEDB_LOCAL_ENVIRONMENTS, default `local`), their ports and the state directory come from
LATTICEDB_* environment variables (see latticedb_local/settings.py). `reset` and `env` act on one
environment (default: the first hosted); `reset` leaves the others untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latticedb_local.settings import load_settings  # noqa: E402

UP_TIMEOUT = float(os.environ.get("LATTICEDB_LOCAL_UP_TIMEOUT", 60))


def _paths(settings):
    d = settings.state_dir
    return d / "server.pid", d / "server.log", d / "state.json"


def _pid(settings) -> int | None:
    pidfile, _, _ = _paths(settings)
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    try:  # a zombie child of ours is not running
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return None
    except (FileNotFoundError, IndexError):
        pass
    return pid


def _service_url(settings, environment: str | None = None) -> str:
    """The running server's control URL (of `environment`, default the first hosted one): from
    state.json (ports it was started with), else settings."""
    _, _, state = _paths(settings)
    try:
        saved = json.loads(state.read_text())
        return saved["environments"][environment]["service_url"] if environment else saved["service_url"]
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return _ports(settings, environment).service_url


def _ports(settings, environment: str | None):
    for env in settings.environments:
        if environment in (None, env.name):
            return env
    hosted = ", ".join(e.name for e in settings.environments)
    raise SystemExit(f"environment {environment!r} is not hosted by this stack (hosted: {hosted}; LATTICEDB_LOCAL_ENVIRONMENTS)")


def _http(method: str, url: str, timeout: float = 5.0) -> tuple[int, dict | None]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _status(settings) -> dict | None:
    if _pid(settings) is None:
        return None
    code, body = _http("GET", _service_url(settings) + "/_local/status")
    return body if code == 200 and body and body.get("ready") else None


def _print_endpoints(status: dict) -> None:
    for name, url in status["endpoints"].items():
        print(f"  {name:15s} {url}")
    others = [n for n in status.get("environments", {}) if n != status.get("environment")]
    for name in others:
        e = status["environments"][name]
        print(f"  {name}: moto {e['moto_url']}, service {e['service_url']}, test {e['test_url']}, slack {e['slack_url']}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def up(settings) -> int:
    status = _status(settings)
    if status:
        print(f"local environment already running (pid {_pid(settings)}):")
        _print_endpoints(status)
        return 0
    if _pid(settings) is not None:
        print("a local environment process exists but is not healthy; restarting it")
        down(settings)
    pidfile, logfile, state = _paths(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "server.py")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(HERE.parents[1]),
        )
    pidfile.write_text(str(proc.pid))
    state.write_text(json.dumps({
        "pid": proc.pid, "service_url": settings.service_url, "ports": settings.ports,
        "environments": {e.name: e.as_dict() for e in settings.environments},
    }))
    while time.time() - started < UP_TIMEOUT:
        if proc.poll() is not None:
            print(f"local environment exited with code {proc.returncode} during start; log tail ({logfile}):")
            print(_tail(logfile))
            pidfile.unlink(missing_ok=True)
            return 1
        status = _status(settings)
        if status:
            print(f"local environment up in {time.time() - started:.1f}s (pid {proc.pid}, log {logfile}):")
            _print_endpoints(status)
            return 0
        time.sleep(0.2)
    print(f"local environment not ready after {UP_TIMEOUT:.0f}s; log tail ({logfile}):")
    print(_tail(logfile))
    down(settings)
    return 1


def down(settings) -> int:
    pidfile, _, _ = _paths(settings)
    pid = _pid(settings)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        print("local environment is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while time.time() < deadline and _pid(settings) is not None:
        time.sleep(0.1)
    if _pid(settings) is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    pidfile.unlink(missing_ok=True)
    print(f"local environment stopped (pid {pid})")
    return 0


def status_cmd(settings) -> int:
    status = _status(settings)
    if not status:
        print(
            "local environment is not running"
            if _pid(settings) is None
            else "local environment is starting or unhealthy"
        )
        return 1
    print(f"local environment running (pid {_pid(settings)}, up {status['uptime_seconds']}s):")
    _print_endpoints(status)
    faults = {k: v for k, v in status["faults"].items() if v and k != "slack_mode"}
    print(f"  faults          {faults or 'none'}")
    return 0


def reset(settings, environment: str | None = None) -> int:
    if _pid(settings) is None:
        print("local environment is not running (run: ctl.py up)")
        return 1
    code, body = _http("POST", _service_url(settings, environment) + "/_local/reset", timeout=60)
    if code != 200:
        print(f"reset failed (HTTP {code}); see {_paths(settings)[1]}")
        return 1
    print(f"local environment {body.get('environment', '')} reset in {body['seconds']:.2f}s")
    return 0


def connections(ports, environment) -> dict[str, str]:
    """Airflow connection URIs/JSON (AIRFLOW_CONN_* variable -> value) for one hosted environment."""
    from latticedb_local.connections import airflow_connections

    return airflow_connections(environment, ports.moto_url, ports.slack_url, label="XXXX")


def env_cmd(settings, environment: str | None = None) -> int:
    """Print exports for Airflow connections pointing at one environment of the stack."""
    from latticedb_local.settings import local_environment

    ports = _ports(settings, environment)
    for name, value in connections(ports, local_environment(ports.name)).items():
        print(f"export {name}='{value}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "reset", "env"])
    parser.add_argument("--environment", "-e", help="reset/env: this hosted environment (default: the first)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command in ("reset", "env"):
        return {"reset": reset, "env": env_cmd}[args.command](settings, args.environment)
    return {"up": up, "down": down, "status": status_cmd}[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
