"""Run a piece of work in a child forked from this process, as Airflow forks a DAG parser from its
dag-processor and a task from its Celery worker, and get back what it reports (JSON).

Imported by the scripts the preload tests run in a fresh process (tests/unit/test_*_preload.py): they set
a process up as the real one is before it forks, then call `in_a_fork`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable


def in_a_fork(work: Callable[[], dict]) -> dict:
    """`work()` in a forked child; its dict, or {"crash": repr(exception)} if it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
            result = {"crash": repr(exc)}
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f:
        return json.loads(f.read().decode())
