"""Static checks of docker-compose.yaml and Dockerfile (no Docker engine on the build machines).

The file must parse, name the same Airflow version as requirements.txt and the Dockerfile, and be
internally consistent: every command is an Airflow component the image can run, every dependency
and shared network namespace names a service that exists (and is started in the same profiles),
every bind mount exists in the repo, every named volume is declared, and the connections point
where the `local` profile listens.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    # `airflow dag-processor` with this package preloaded (latticedb_deploy/dag_processor_preload.py).
    "airflow-dag-processor": "python -P -m latticedb_deploy.dag_processor_preload",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
REQUIRED = {"postgres", "redis", "airflow-init", *AIRFLOW_COMMANDS}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `$NAME` and the escape `$$`.
_INTERP = re.compile(r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}|\$[A-Za-z_][A-Za-z0-9_]*")


def _interpolate(text: str) -> str:
    """Compose's interpolation with every variable unset (defaults used); `$$` becomes `$`."""

    def sub(m: re.Match) -> str:
        tok = m.group(0)
        if tok == "$$":
            return "$"
        if tok.startswith("${") and (":-" in tok or "-" in tok.split(":")[0][2:]):
            return tok[2:-1].split("-", 1)[1]
        return ""

    return _INTERP.sub(sub, text)


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(_interpolate(raw))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _airflow_version_from_requirements() -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^apache-airflow==([\w.]+)\s*$", line.strip())
        if m:
            return m.group(1)
    raise AssertionError("requirements.txt pins no apache-airflow==X")


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _profiles(service: dict) -> set[str]:
    return set(service.get("profiles") or [])


def _command(service: dict) -> str:
    cmd = service.get("command")
    return " ".join(cmd) if isinstance(cmd, list) else (cmd or "")


def test_every_dollar_is_valid_interpolation(raw):
    leftovers = [line for line in _INTERP.sub("", raw).splitlines() if "$" in line]
    assert not leftovers, f"unescaped `$` (write `$$` for a literal one): {leftovers}"


def test_parses_with_the_official_shape(compose, services):
    assert REQUIRED <= set(services), f"missing services: {REQUIRED - set(services)}"
    assert "x-airflow-common" in compose
    common = compose["x-airflow-common"]
    for name in {*AIRFLOW_COMMANDS, "airflow-init"}:
        svc = services[name]
        assert svc["image"] == common["image"], name
        assert svc["build"] == common["build"], name
        assert _env(svc)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_airflow_version_matches_requirements_and_dockerfile():
    version = _airflow_version_from_requirements()
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert froms, "Dockerfile has no FROM"
    image, _, tag = froms[0].partition(":")
    assert image == "apache/airflow"
    assert tag.split("-")[0] == version, f"Dockerfile FROM {froms[0]} vs requirements.txt apache-airflow=={version}"
    assert version in COMPOSE.read_text(), "docker-compose.yaml names a different Airflow version"


def test_dockerfile_copies_and_installs_files_that_exist(services):
    text = DOCKERFILE.read_text()
    for copy in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", text, flags=re.M):
        for src in copy.split()[:-1]:
            assert (ROOT / src).is_file(), f"Dockerfile copies missing {src}"
    default = re.search(r"^ARG REQUIREMENTS=(\S+)", text, flags=re.M).group(1)
    assert (ROOT / default).is_file()
    for name, svc in services.items():
        build = svc.get("build")
        if not build:
            continue
        ctx = ROOT / (build.get("context", ".") if isinstance(build, dict) else build)
        assert ctx.is_dir(), name
        assert (ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")).is_file()
        for value in (build.get("args") or {}).values() if isinstance(build, dict) else ():
            assert (ROOT / value).is_file(), f"{name}: build arg names missing file {value}"


def test_airflow_components_run_the_right_commands(services):
    for name, command in AIRFLOW_COMMANDS.items():
        assert _command(services[name]) == command, name
    init = _command(services["airflow-init"])
    assert "airflow db migrate" in init
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in init


def test_airflow_cli_knows_every_command():
    """Every compose command is a real subcommand of this Airflow (core + celery provider)."""
    from airflow.cli.cli_config import core_commands

    names = {c.name for c in core_commands}
    for command in AIRFLOW_COMMANDS.values():
        head = command.split()[0]
        assert head in names or head in ("celery", "python"), command


def test_the_dag_processor_command_runs_airflows_dag_processor():
    """The compose file's command preloads the package (its log line), then is `airflow dag-processor` (its --help)."""
    python, *args = AIRFLOW_COMMANDS["airflow-dag-processor"].split()
    assert python == "python"
    out = subprocess.run([sys.executable, *args, "--help"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: airflow dag-processor" in out.stdout.lower()
    assert "latticedb dag-processor preload: " in out.stdout + out.stderr, (out.stdout + out.stderr)[-2000:]


def test_dependencies_exist_and_are_consistent(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            cond = spec.get("condition", "service_started")
            assert cond in CONDITIONS, f"{name} -> {dep}: {cond}"
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} healthy, which has no healthcheck"
            if cond == "service_completed_successfully":
                assert services[dep].get("restart") in (None, "no"), f"{dep} restarts, so never completes"
            # A service that always starts cannot depend on one that only starts in a profile.
            if _profiles(services[dep]):
                assert _profiles(svc) and _profiles(svc) <= _profiles(services[dep]), f"{name} -> {dep}"


def test_no_dependency_cycles(services):
    def deps(name):
        d = services[name].get("depends_on") or {}
        mode = services[name].get("network_mode", "")
        return set(d) | ({mode.split(":", 1)[1]} if mode.startswith("service:") else set())

    state: dict[str, str] = {}

    def visit(n, path):
        if state.get(n) == "done":
            return
        assert state.get(n) != "visiting", f"dependency cycle: {' -> '.join([*path, n])}"
        state[n] = "visiting"
        for d in deps(n):
            visit(d, [*path, n])
        state[n] = "done"

    for n in services:
        visit(n, [])


def test_shared_network_namespaces(services):
    for name, svc in services.items():
        mode = svc.get("network_mode")
        if not mode:
            continue
        assert mode.startswith("service:"), name
        target = mode.split(":", 1)[1]
        assert target in services, f"{name} joins unknown {target}"
        assert not _profiles(services[target]), f"{target} only runs in a profile"
        assert "network_mode" not in services[target], "namespace chains are not allowed"
        assert target in (svc.get("depends_on") or {}), f"{name} must start after {target}"
        assert "ports" not in svc, f"{name} cannot publish ports in another service's namespace"


def test_volumes_exist_and_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            src, target = vol.split(":")[:2]
            assert target.startswith("/"), f"{name}: {vol}"
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name}: bind mount source {src} does not exist"
            else:
                assert src in declared, f"{name}: named volume {src} not declared"
                used.add(src)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_package_is_mounted_where_airflow_looks(services):
    for name in {*AIRFLOW_COMMANDS, "airflow-init"}:
        svc = services[name]
        mounts = dict(v.split(":")[:2][::-1] for v in svc["volumes"])
        env = _env(svc)
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags", name
        assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins", name
        # latticedb_deploy.config finds include/config/latticedb.yaml beside plugins/.
        assert mounts[str(Path(env["AIRFLOW__CORE__PLUGINS_FOLDER"]).parent / "include")] == "./include", name
    assert (ROOT / "include" / "config" / "latticedb.yaml").is_file()


def test_metadata_db_broker_and_execution_api_point_at_services(services):
    env = _env(services["airflow-scheduler"])
    assert urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname in services
    assert urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname in services
    api = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    assert any(p.split(":")[-1] == str(api.port) for p in services["airflow-apiserver"]["ports"])


def test_connections_are_set_from_env_and_reach_the_local_profile(services):
    from latticedb_deploy.config import load_config

    env = _env(services["airflow-worker"])
    local_cfg = load_config().environment("local")
    conns = {k[len("AIRFLOW_CONN_"):].lower(): v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert local_cfg.aws_conn_id in conns
    aws = json.loads(conns[local_cfg.aws_conn_id])
    slack = json.loads(conns["latticedb_local_slack"])
    assert aws["conn_type"] == "aws" and slack["conn_type"] == "slackwebhook"

    local = services["latticedb-local"]
    assert _profiles(local) == {"local"}
    lenv = _env(local)
    assert urlparse(aws["extra"]["endpoint_url"]).port == int(lenv["LATTICEDB_LOCAL_MOTO_PORT"])
    assert urlparse(aws["extra"]["service_config"]["sts"]["endpoint_url"]).port == int(lenv["LATTICEDB_LOCAL_MOTO_PORT"])
    assert urlparse(slack["password"]).port == int(lenv["LATTICEDB_LOCAL_SLACK_PORT"])
    # The local environment binds 127.0.0.1: whoever calls it must share its network namespace.
    assert local["network_mode"] == "service:airflow-worker"
    for caller in ("airflow-triggerer", "airflow-dag-processor"):
        assert services[caller]["network_mode"] == "service:airflow-worker", caller


def test_local_profile_runs_the_local_server(services):
    local = services["latticedb-local"]
    entry = local["entrypoint"]
    script = next(part for part in entry if part.endswith(".py"))
    mounts = dict(v.split(":")[:2][::-1] for v in local["volumes"])
    host = next(
        src + script[len(target):] for target, src in mounts.items() if script.startswith(target + "/")
    )
    assert (ROOT / host).is_file(), host
    assert local["build"]["args"]["REQUIREMENTS"] == "requirements-dev.txt"
    assert "moto[server]" in (ROOT / "requirements-dev.txt").read_text()
    assert "8081" in " ".join(local["healthcheck"]["test"])


# --- Secrets: generated on first start, never shipped -------------------------------------------------

SECRET_FILES = {"AIRFLOW__CORE__FERNET_KEY_CMD": "fernet_key", "AIRFLOW__API_AUTH__JWT_SECRET_CMD": "jwt_secret"}


def _secrets_script(services) -> str:
    """The Python the init runs between `<<'SECRETS'` and `SECRETS` (compose's `$$` already undone)."""
    init = _command(services["airflow-init"])
    m = re.search(r"python - <<'SECRETS'\n(.*?)\n\s*SECRETS\n", init, flags=re.S)
    assert m, "airflow-init does not generate the secrets"
    lines = m.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def test_published_ports_listen_on_loopback_by_default(raw, services):
    """The api-server's admin login defaults to airflow / airflow: by default only this host reaches it."""
    published = [(name, str(p)) for name, svc in services.items() for p in svc.get("ports") or []]
    assert ("airflow-apiserver", "127.0.0.1:8080:8080") in published, published
    for name, port in published:  # with every variable unset (compose's defaults)
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert '"${AIRFLOW_BIND:-127.0.0.1}:8080:8080"' in raw  # and the bind address can be moved deliberately


def test_no_secret_value_is_shipped(raw, services):
    assert "latticedb-local-change-me" not in raw
    for name, svc in services.items():
        env = _env(svc)
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert key not in env, f"{name} sets {key} to a value in the file"
        for key in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"):
            assert (svc.get("environment") or {}).get(key) in (None, ""), f"{name}: {key} must default to empty (then it is generated)"


def test_every_airflow_component_reads_the_generated_secrets(compose, services):
    for name in {*AIRFLOW_COMMANDS, "airflow-init"}:
        svc = services[name]
        env = _env(svc)
        mounts = {v.split(":")[1]: v for v in svc["volumes"]}
        for key, filename in SECRET_FILES.items():
            assert env[key] == f"cat /opt/airflow/secrets/{filename}", (name, key)
        assert mounts["/opt/airflow/secrets"].startswith("airflow-secrets:"), name
        if name != "airflow-init":
            assert mounts["/opt/airflow/secrets"].endswith(":ro"), f"{name} must not be able to change the secrets"
            assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    init_mounts = {v.split(":")[1]: v for v in services["airflow-init"]["volumes"]}
    assert not init_mounts["/opt/airflow/secrets"].endswith(":ro"), "airflow-init writes them"
    init = _command(services["airflow-init"])
    assert init.index("<<'SECRETS'") < init.index("airflow db migrate"), "secrets before anything reads the config"


def test_the_init_generates_once_keeps_them_and_takes_given_ones(services, tmp_path):
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    script = _secrets_script(services)

    def run(folder, **env):
        folder.mkdir(exist_ok=True)
        clean = {k: v for k, v in __import__("os").environ.items() if k not in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET")}
        subprocess.run([sys.executable, "-c", script], env={**clean, "LATTICEDB_SECRETS_DIR": str(folder), **env},
                       check=True, capture_output=True, text=True)
        return {n: (folder / n).read_text() for n in SECRET_FILES.values()}

    first = run(tmp_path / "a")
    Fernet(first["fernet_key"].encode())  # a valid Fernet key
    assert len(first["jwt_secret"]) >= 48
    assert all(((tmp_path / "a" / n).stat().st_mode & 0o777) == 0o440 for n in SECRET_FILES.values())
    assert run(tmp_path / "a") == first, "a restart must keep the keys (the DB is encrypted with them)"
    other = run(tmp_path / "b")
    assert other["fernet_key"] != first["fernet_key"] and other["jwt_secret"] != first["jwt_secret"]
    given = Fernet.generate_key().decode()
    assert run(tmp_path / "c", AIRFLOW_FERNET_KEY=given, AIRFLOW_JWT_SECRET="j" * 64) == {"fernet_key": given, "jwt_secret": "j" * 64}
    bad = subprocess.run([sys.executable, "-c", script], env={"LATTICEDB_SECRETS_DIR": str(tmp_path / "c"), "AIRFLOW_FERNET_KEY": "nope",
                         "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert bad.returncode != 0 and (tmp_path / "c" / "fernet_key").read_text() == given, "a malformed key is refused, the old one kept"


def test_airflow_reads_the_keys_through_the_cmd_settings(services, tmp_path):
    """What every component does at start: Airflow runs the _CMD and uses its output."""
    import os
    import subprocess
    import sys

    (tmp_path / "fernet_key").write_text("x" * 43 + "=")
    (tmp_path / "jwt_secret").write_text("jwt-from-file")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__CORE__FERNET", "AIRFLOW__API_AUTH__JWT"))}
    for key in SECRET_FILES:
        env[key] = _env(services["airflow-scheduler"])[key].replace("/opt/airflow/secrets", str(tmp_path))
    code = "from airflow.configuration import conf; print(conf.get('core','fernet_key')); print(conf.get('api_auth','jwt_secret'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[-2:] == ["x" * 43 + "=", "jwt-from-file"]


def test_the_worker_preloads_and_the_scheduler_idles_as_the_e2e_stack_measured_them(compose):
    """The settings `make e2e` and `make bench` run with are the ones the compose file ships."""
    from harness.airflow_stack import SCHEDULER_IDLE_SLEEP
    from latticedb_deploy.worker_preload import CELERY_CONFIG

    env = compose["x-airflow-common-env"]
    assert json.loads(env["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]) == json.loads(CELERY_CONFIG)
    assert json.loads(CELERY_CONFIG) == {"imports": ["latticedb_deploy.worker_warmup"]}
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == SCHEDULER_IDLE_SLEEP
    stack = (ROOT / "harness" / "airflow_stack.py").read_text()
    assert '"AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": CELERY_CONFIG' in stack
    standalone = (ROOT / "scripts" / "standalone.sh").read_text()  # make up
    assert f"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-{SCHEDULER_IDLE_SLEEP}}}" in standalone


def test_the_e2e_stack_runs_the_dag_processor_as_the_compose_file_does():
    """`python -m latticedb_deploy.dag_processor_preload` (the compose file's, checked above) in the e2e/bench stack."""
    stack = (ROOT / "harness" / "airflow_stack.py").read_text()
    assert '[PY, "-P", "-m", "latticedb_deploy.dag_processor_preload"]' in stack
