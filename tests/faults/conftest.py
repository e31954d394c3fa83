"""Fault-injection suite: the fixtures of tests/integration (local environment on free ports, DagBag).

pytest loads conftest.py only from a test's parent directories, so tests/integration's fixtures are
imported here by name.
"""

from __future__ import annotations

from tests.integration.conftest import dagbag, local, local_env, redis_db, redis_server  # noqa: F401
