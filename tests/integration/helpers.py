"""Helpers for integration tests: this worker's environment (LocalEnv, image, history); running a DAG
(harness/dag_runs.py) and looking at an environment (harness/local_env.py) are shared with the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.dag_runs import (  # noqa: F401 - re-exported: the tests' one place to run a DAG
    DAG_TEST_POLL_SECONDS,
    quick_dag_test_polls,
    quick_dag_test_syncs,
    quick_param_schema_checks,
    run_dag,
    run_dag_run,
    xcom,
)
from harness.local_env import LocalEnv as _LocalEnv
from tests.envs import ECR_HOST, ENV, EnvNames  # noqa: F401 - ECR_HOST re-exported for tests


@dataclass
class LocalEnv(_LocalEnv):
    """This worker's environment of the session's local stack (tests/envs.py), unless told another."""

    names: EnvNames = field(default_factory=lambda: ENV)


def image(tag: str) -> str:
    """The image of `tag` in this worker's environment's ECR repository (tests/envs.py)."""
    return ENV.image(tag)


def history(limit: int | None = None) -> list:
    """This worker's environment's deployment history, newest first, read the way the product reads it."""
    from latticedb_deploy.aws.history import HistoryStore
    from latticedb_deploy.config import load_config
    from tests.envs import ENV

    return HistoryStore(load_config().environment(ENV.name)).query(limit=limit)
