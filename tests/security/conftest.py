"""Security suite: the local environment fixtures of tests/integration, imported by name (as tests/faults does)."""

from __future__ import annotations

from tests.integration.conftest import dagbag, local, local_env, redis_db, redis_server  # noqa: F401
