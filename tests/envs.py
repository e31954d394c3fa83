"""Which local environment this pytest process deploys to, and its names.

Tests run in parallel (pytest-xdist), every worker in its own environment of one shared local stack
(tests/stack.py): worker gwN uses `local-<N+2>` (local-2, local-3, ...; copies of `local` declared
under `local_copies` in include/config/latticedb.yaml), a run without xdist uses local-2. `local`
itself stays the user's (make demo) and tests/local's own stack. LATTICEDB_TEST_ENVIRONMENT overrides.

Names come from the config, never spelled out in tests: ENV.service, ENV.green_tg, ENV.image(tag), ...
Subprocesses a test starts inherit PYTEST_XDIST_WORKER (or LATTICEDB_TEST_ENVIRONMENT), so they agree.
"""

from __future__ import annotations

import os
import re

from harness.names import ECR_HOST, EnvNames  # noqa: F401 - ECR_HOST, EnvNames re-exported for tests

MAX_WORKERS = 9  # local-2 ... local-10


def worker_environment() -> str:
    explicit = os.environ.get("LATTICEDB_TEST_ENVIRONMENT")
    if explicit:
        return explicit
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    m = re.fullmatch(r"gw(\d+)", worker)
    n = int(m.group(1)) if m else 0
    if n >= MAX_WORKERS:
        raise RuntimeError(f"at most {MAX_WORKERS} test workers (local-2 ... local-{MAX_WORKERS + 1} in the config)")
    return f"local-{n + 2}"


def environment_names(workers: int) -> list[str]:
    """The environments a session of `workers` xdist workers (0: no xdist) uses."""
    return [f"local-{n + 2}" for n in range(max(1, workers))]


ENV = EnvNames(worker_environment())
