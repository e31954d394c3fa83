"""This host's copy of each run's config snapshot, so a task reads it from disk instead of asking the API server.

Every task of a deployment reads the run's config snapshot (latticedb_deploy.run_config), one XCom
read each: a request to the API server, 25 of them in a rolling deploy. The snapshot never changes
while a run incarnation lasts (the snapshot task runs once, before every other task; a clear, which
is what re-runs it, bumps the run's `clear_number` and a finished run's `start_date`), so the first
task of a run on a host keeps what it read in a file, and the run's later tasks on that host read
the file. A worker per task (KubernetesExecutor) gains nothing and loses nothing.

The file is trusted only when it is this user's, in a directory only this user can open, names the
same run incarnation, and its text matches its own sha256; anything else is a miss (the XCom read),
never an error. The snapshot task itself never writes it: a retry of that task takes a new snapshot.
`LATTICEDB_RUN_CONFIG_CACHE`: the directory (default `<tmp>/latticedb-run-config-<uid>`), or `off`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE_ENV_VAR = "LATTICEDB_RUN_CONFIG_CACHE"
KEEP_SECONDS = 3 * 24 * 3600  # files of older runs are removed when a new one is written


def directory() -> Path | None:
    """Where this host keeps snapshots; None when turned off."""
    given = os.environ.get(CACHE_ENV_VAR, "").strip()
    if given.lower() == "off":
        return None
    return Path(given) if given else Path(tempfile.gettempdir()) / f"latticedb-run-config-{os.getuid()}"


def incarnation(context: Any) -> dict | None:
    """What names one incarnation of the run `context` belongs to; None when the context cannot tell."""
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    started = getattr(dag_run, "start_date", None)
    clears = getattr(dag_run, "clear_number", None)
    dag_id, run_id = getattr(dag_run, "dag_id", None), getattr(dag_run, "run_id", None)
    if not (dag_id and run_id and started) or not isinstance(clears, int):
        return None
    return {"dag_id": dag_id, "run_id": run_id, "start_date": started.isoformat(), "clear_number": clears}


def _file(folder: Path, run: dict) -> Path:
    name = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:40]
    return folder / f"{name}.json"


def _private(folder: Path) -> bool:
    """The directory is ours and nobody else's: a file in it was written by this user."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def read(run: dict | None) -> dict | None:
    """The snapshot kept for `run` on this host, or None (nothing kept, or nothing to trust)."""
    folder = directory()
    if run is None or folder is None or not _private(folder):
        return None
    try:
        kept = json.loads(_file(folder, run).read_text())
        snapshot = kept["snapshot"]
        text = snapshot["text"]
        ours = kept["run"] == run and hashlib.sha256(text.encode()).hexdigest() == snapshot["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return snapshot if ours and isinstance(snapshot.get("path"), str) else None


def write(run: dict | None, snapshot: Any) -> None:
    """Keep `snapshot` (as read from XCom) for `run`; best effort, silent: the next task reads XCom instead."""
    folder = directory()
    if run is None or folder is None or not isinstance(snapshot, dict) or "text" not in snapshot:
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder):
            return
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump({"run": run, "snapshot": snapshot}, out)
        os.replace(tmp, _file(folder, run))
        _prune(folder)
    except OSError:
        return


def _prune(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for entry in os.scandir(folder):
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            continue
