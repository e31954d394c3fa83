"""This host's copy of each run's config snapshot, so a task reads it from disk instead of asking the API server.

Every task of a deployment reads the run's config snapshot (latticedb_deploy.run_config), one XCom
read each: a request to the API server, 25 of them in a rolling deploy. The snapshot never changes
while a run incarnation lasts, so the first task of a run on a host keeps what it read in a file, and
the run's later tasks on that host read the file.

What makes a copy usable, each check a guard against a way the snapshot could differ from the one
the run's `notify_start` pushed:
- the same run incarnation: dag id, run id, the run's start date and `clear_number` (a clear bumps
  it; a finished run cleared restarts with a new start date);
- the config file on this host still holds exactly the copy's text: `notify_start` can be re-run
  without the incarnation changing (a clear with `reset_dag_runs: false`, a `dag.test()` that
  re-creates a run under the same logical date), and when it is re-run after an edit, the file
  differs from the old copy. So after any edit of the file, tasks read XCom, as without a copy;
- a file of this user's, in a directory only this user can open, whose text matches its sha256.
Anything else is a miss (the XCom read), never an error. The snapshot task itself never writes it: a
retry of that task takes a new snapshot. A worker per task (KubernetesExecutor) gains nothing.
`LATTICEDB_RUN_CONFIG_CACHE`: the directory (default `<tmp>/latticedb-run-config-<uid>`), or `off`.
"""

from __future__ import annotations

import contextlib
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
    """Where this host keeps snapshots; None when turned off (or no temporary directory can be found)."""
    given = os.environ.get(CACHE_ENV_VAR, "").strip()
    if given.lower() == "off":
        return None
    try:
        return Path(given) if given else Path(tempfile.gettempdir()) / f"latticedb-run-config-{os.getuid()}"
    except OSError:  # gettempdir: no writable temporary directory on this host
        return None


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
    try:
        folder = directory()
        if run is None or folder is None or not _private(folder):
            return None
        kept = json.loads(_file(folder, run).read_text())
        snapshot = kept["snapshot"]
        text, digest = snapshot["text"], snapshot["sha256"]
        if kept["run"] != run or not isinstance(snapshot["path"], str) or _sha256(text) != digest:
            return None
        if _sha256(Path(snapshot["path"]).read_text()) != digest:  # the file was edited since: ask XCom
            return None
    except Exception:  # noqa: BLE001 - a copy is an optimisation: anything wrong with it is a miss
        return None
    return snapshot


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(run: dict | None, snapshot: Any) -> None:
    """Keep `snapshot` (as read from XCom) for `run`; best effort, silent: the next task reads XCom instead."""
    tmp = None
    try:
        folder = directory()
        if run is None or folder is None or not isinstance(snapshot, dict) or "text" not in snapshot:
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder):
            return
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump({"run": run, "snapshot": snapshot}, out)
        os.replace(tmp, _file(folder, run))
        tmp = None
        _prune(folder)
    except Exception:  # noqa: BLE001 - best effort (disk full, read-only, ...): tasks read XCom instead
        return
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _prune(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for entry in os.scandir(folder):
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            continue
