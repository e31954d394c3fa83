"""The run's config: the file as it was when the run started, so an edit mid-run cannot break the run.

A canary can run for an hour. If someone saves a half-edited `latticedb.yaml` meanwhile, every later
task that read the file would fail on it, the rollback included, and production would stay half
shifted. So the run's first task (`notify_start`) keeps the file's text in its XCom (the text as
written: `${VAR}` references are expanded when read, so no value from the environment is stored),
and every later task of the run, and every trigger it defers to, reads that text instead of the
file. A run whose DAG has no such task, or a task run alone, reads the file.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latticedb_deploy.config import DeployConfig, Environment

SNAPSHOT_TASK_ID = "notify_start"
SNAPSHOT_KEY = "config_snapshot"


def take() -> dict[str, str]:
    """The config file as it is now, validated: {"path", "sha256", "text"}. Raises ConfigError if invalid."""
    from latticedb_deploy.config import config_from_text, config_path

    path = config_path()
    try:
        text = path.read_text()
    except OSError:
        from latticedb_deploy.config import load_config

        load_config(path)  # raises the file's own error
        raise
    config_from_text(path, text)
    return {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text}


def config(snapshot: dict | None) -> DeployConfig:
    """The config a snapshot holds; None (no snapshot): the file as it is now."""
    from latticedb_deploy.config import config_from_text, load_config

    if not snapshot:
        return load_config()
    return config_from_text(snapshot["path"], snapshot["text"])


def environment(name: str, snapshot: dict | None) -> Environment:
    return config(snapshot).environment(name)


def for_task(task: Any, context: Any) -> dict | None:
    """The snapshot the task `task` of this run reads: taken (and kept in XCom) by the snapshot task itself,
    pulled by every other task of a DAG that has one (from this host's copy when a task of the same run
    incarnation already pulled it here: latticedb_deploy.snapshot_cache), None otherwise."""
    ti = context["ti"]
    if task.task_id == SNAPSHOT_TASK_ID:
        snapshot = take()
        ti.xcom_push(key=SNAPSHOT_KEY, value=snapshot)
        _log_source(task, snapshot, "taken now: the run's snapshot")
        return snapshot
    dag = getattr(task, "dag", None)
    if dag is None or not dag.has_task(SNAPSHOT_TASK_ID):
        return None
    from latticedb_deploy import snapshot_cache

    run = snapshot_cache.incarnation(context)
    snapshot, source = snapshot_cache.read(run), "this host's copy"
    if snapshot is None:
        snapshot, source = ti.xcom_pull(task_ids=SNAPSHOT_TASK_ID, key=SNAPSHOT_KEY), "XCom"
        snapshot_cache.write(run, snapshot)
    _log_source(task, snapshot, f"read from {source}")
    return snapshot


def _log_source(task: Any, snapshot: dict | None, how: str) -> None:
    """Say in the task's log which config the task runs on, and where it came from."""
    log = getattr(task, "log", None)
    if snapshot and log is not None:
        log.info("run config: %s as of the run's start (sha256 %s, %s)",
                 snapshot.get("path"), str(snapshot.get("sha256"))[:12], how)
