"""The distributed Airflow topology of docker-compose.yaml, started from packages on 127.0.0.1.

PostgreSQL (Debian package, a throwaway cluster on a free port), Redis (Debian package), the
`local` environment (include/local/ctl.py), then Airflow's api-server, scheduler, dag-processor,
triggerer and a Celery worker as separate processes with CeleryExecutor. Every process writes
its log under the artifacts dir; `Stack.stop()` ends exactly the processes it started.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness import airflow_connections

ROOT = Path(__file__).resolve().parents[1]
CTL = ROOT / "include" / "local" / "ctl.py"
PY = sys.executable
ADMIN = ("admin", "admin")
JWT_SECRET = "latticedb-e2e-jwt-secret-not-for-production"
# Seconds the scheduler sleeps after a loop with nothing to do (Airflow: 1); docker-compose.yaml ships the same.
SCHEDULER_IDLE_SLEEP = "0.25"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessDied(RuntimeError):
    """A process of the stack exited: waiting any longer is pointless."""


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except ProcessDied:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_exc!r})")


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<{exc}>"


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


@dataclass
class Stack:
    artifacts: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _pg_data: Path | None = None
    _pg_user: str | None = None
    _local_env: dict[str, str] | None = None

    @property
    def logs(self) -> Path:
        return self.artifacts / "logs"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['moto']}"

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['service']}"

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['slack']}"

    # ---------------------------------------------------------------- processes
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env if env is not None else self.env, cwd=str(ROOT), start_new_session=True, **kw,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ProcessDied(f"{name} exited with {proc.returncode}:\n{tail(self.logs / f'{name}.log')}")

    def _stop_proc(self, name: str, proc: subprocess.Popen, timeout: float = 20) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the process and its children
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    # ---------------------------------------------------------------- services
    def _as_pg_user(self, argv: list[str]) -> list[str]:
        if self._pg_user is None:
            return argv
        return ["runuser", "-u", self._pg_user, "--", *argv]

    def start_postgres(self) -> None:
        bindir = _pg_bindir()
        port = self.ports["postgres"] = free_port()
        base = Path(tempfile.mkdtemp(prefix="latticedb-e2e-pg-"))
        self._pg_data = base / "data"
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._pg_user = "postgres"
            pw = pwd.getpwnam(self._pg_user)
            os.chown(base, pw.pw_uid, pw.pw_gid)
            base.chmod(0o700)
        run = lambda argv: subprocess.run(  # noqa: E731
            self._as_pg_user(argv), check=True, capture_output=True, text=True, cwd=str(base)
        )
        run([str(bindir / "initdb"), "-D", str(self._pg_data), "-U", "airflow", "--auth=trust", "-E", "UTF8"])
        log = self.logs / "postgres.log"
        log.touch()
        if self._pg_user:
            pw = pwd.getpwnam(self._pg_user)
            os.chown(log, pw.pw_uid, pw.pw_gid)
        opts = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off -c max_connections=300"
        run([str(bindir / "pg_ctl"), "-D", str(self._pg_data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"])
        run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"])

    def stop_postgres(self) -> None:
        if self._pg_data and self._pg_data.exists():
            subprocess.run(
                self._as_pg_user([str(_pg_bindir() / "pg_ctl"), "-D", str(self._pg_data), "-m", "fast", "-w", "stop"]),
                capture_output=True, cwd="/",
            )
            shutil.rmtree(self._pg_data.parent, ignore_errors=True)

    def start_redis(self) -> None:
        port = self.ports["redis"] = free_port()
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._spawn("redis", [redis, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                    env=dict(os.environ))

        def ping():
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        wait_for(ping, 20, "redis")

    def start_local(self) -> None:
        for name in ("moto", "service", "slack", "test"):
            self.ports[name] = free_port()
        env = dict(os.environ)
        env.update({f"LATTICEDB_LOCAL_{n.upper()}_PORT": str(self.ports[n]) for n in ("moto", "service", "slack", "test")})
        env["LATTICEDB_LOCAL_STATE_DIR"] = str(self.artifacts / "local")
        self._local_env = env
        up = subprocess.run([PY, str(CTL), "up"], capture_output=True, text=True, env=env, cwd=str(ROOT))
        (self.logs / "local-ctl.log").write_text(up.stdout + up.stderr)
        if up.returncode != 0:
            raise RuntimeError(f"local environment did not start:\n{up.stdout}\n{up.stderr}")

    def stop_local(self) -> None:
        if self._local_env is not None:
            subprocess.run([PY, str(CTL), "down"], capture_output=True, env=self._local_env, cwd=str(ROOT))

    # ---------------------------------------------------------------- airflow
    def airflow_env(self) -> dict[str, str]:
        from latticedb_deploy.worker_preload import CELERY_CONFIG

        home = self.artifacts / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
        pg = f"airflow@127.0.0.1:{self.ports['postgres']}/airflow"
        api = self.api_url
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            # The worker loads the product's modules and AWS models once, before its pool forks
            # (latticedb_deploy/worker_preload.py), as docker-compose.yaml's worker does.
            "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": CELERY_CONFIG,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "2",
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.artifacts / "task-logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Fast DAG discovery and scheduling for a test: parse at once, heartbeat often.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            # The scheduler sleeps this long after a loop that had nothing to do (Airflow's default
            # 1 s): a task that ends waits on average half of it before its successor is queued, once
            # per step of a deployment. docker-compose.yaml ships the same value; the benchmark
            # canary_wall measures what it costs while idle (LATTICEDB_E2E_SCHEDULER_IDLE_SLEEP to compare).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": os.environ.get("LATTICEDB_E2E_SCHEDULER_IDLE_SLEEP",
                                                                            SCHEDULER_IDLE_SLEEP),
            # The task supervisor notices its task's exit only between heartbeats (default every 5 s):
            # with ~50 short tasks per canary run that is minutes of idle time in a test.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "PYTHONPATH": str(ROOT / "plugins"),
            "LATTICEDB_REPORT_DIR": str(self.artifacts / "reports"),
        })
        from latticedb_deploy.config import load_config

        env.update(airflow_connections(load_config().environment("local"), self.moto_url, self.slack_url,
                                       redis_url=f"redis://127.0.0.1:{self.ports['redis']}/1", label="E2E"))
        for name in ("moto", "service", "slack", "test"):
            env[f"LATTICEDB_LOCAL_{name.upper()}_PORT"] = str(self.ports[name])
        return env

    def start_airflow(self) -> None:
        self.ports["api"] = free_port()
        self.env = self.airflow_env()
        t = time.monotonic()
        migrate = subprocess.run([PY, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                                 env=self.env, cwd=str(ROOT))
        (self.logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{tail(self.logs / 'db-migrate.log')}")
        self.timings["db_migrate"] = time.monotonic() - t
        af = [PY, "-m", "airflow"]
        self._spawn("api-server", [*af, "api-server", "--host", "127.0.0.1", "--port", str(self.ports["api"])])
        self._spawn("scheduler", [*af, "scheduler"])
        # The dag-processor with this package preloaded before it forks its parsers
        # (latticedb_deploy/dag_processor_preload.py), as docker-compose.yaml's dag-processor runs.
        self._spawn("dag-processor", [PY, "-P", "-m", "latticedb_deploy.dag_processor_preload"])
        self._spawn("triggerer", [*af, "triggerer", "--skip-serve-logs"])
        self._spawn("celery-worker", [*af, "celery", "worker", "--skip-serve-logs", "--concurrency", "8"])

        def api_up():
            self._check_alive()
            return requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=3).status_code == 200

        wait_for(api_up, 120, "the api-server")
        self.timings["api_ready"] = time.monotonic() - t

    def wait_for_components(self, client, dag_ids: list[str], timeout: float = 180) -> None:
        """Scheduler, triggerer and dag-processor healthy, the worker answering, the DAGs parsed."""
        t = time.monotonic()

        def healthy():
            self._check_alive()
            h = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((h.get(p) or {}).get("status") == "healthy" for p in parts)

        wait_for(healthy, timeout, "scheduler, triggerer and dag-processor to report healthy", interval=1)

        def parsed():
            self._check_alive()
            return all(client.get(f"/dags/{d}").status_code == 200 for d in dag_ids)

        wait_for(parsed, timeout, f"DAGs {dag_ids} to be parsed", interval=1)

        def worker_ready():
            self._check_alive()
            return "ready" in (self.logs / "celery-worker.log").read_text(errors="replace")

        wait_for(worker_ready, timeout, "the Celery worker", interval=1)
        self.timings["components_ready"] = time.monotonic() - t

    # ---------------------------------------------------------------- all
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        steps = (("postgres", self.start_postgres), ("redis", self.start_redis), ("local", self.start_local),
                 ("airflow", self.start_airflow))
        for name, step in steps:
            t = time.monotonic()
            step()
            self.timings[f"start_{name}"] = time.monotonic() - t

    def stop(self) -> None:
        # Airflow first (workers may still talk to AWS/DB), then the local environment, then storage.
        for name in ("celery-worker", "triggerer", "scheduler", "dag-processor", "api-server"):
            if name in self.procs:
                self._stop_proc(name, self.procs[name])
        self.stop_local()
        if "redis" in self.procs:
            self._stop_proc("redis", self.procs["redis"])
        self.stop_postgres()

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"===== {path.name} (last {lines} lines) =====\n{tail(path, lines)}")
        server_log = self.artifacts / "local" / "server.log"
        if server_log.exists():
            out.append(f"===== local/server.log =====\n{tail(server_log, lines)}")
        return "\n".join(out)
