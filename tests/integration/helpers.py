"""Helpers for integration tests: this worker's environment (LocalEnv, image, history); running a DAG
(harness/dag_runs.py) and looking at an environment (harness/local_env.py) are shared with the benchmarks."""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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


@contextmanager
def run_values_as_param_defaults(dagbag, dag_id: str, conf: dict):
    """For a dag.test() of a DAG with required params (a `reason`): the DAG's params take the run's values as
    defaults while it runs, and get their own back afterwards. Under dag.test() (Airflow 3.3) the DAG-level
    failure callback's context validates the DAG's params without the run's conf, so a required param would
    raise there when the run fails."""
    dag = dagbag.dags[dag_id]
    original = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            dag.params[key] = value
        yield
    finally:
        dag.params = original


def image(tag: str) -> str:
    """The image of `tag` in this worker's environment's ECR repository (tests/envs.py)."""
    return ENV.image(tag)


def history(limit: int | None = None) -> list:
    """This worker's environment's deployment history, newest first, read the way the product reads it."""
    from latticedb_deploy.aws.history import HistoryStore
    from latticedb_deploy.config import load_config
    from tests.envs import ENV

    return HistoryStore(load_config().environment(ENV.name)).query(limit=limit)


class EditWhenProductionChanges(threading.Thread):
    """Saves `edit` over the config file the moment production first changes (the listener leaves
    100 % blue, or the live service gets a new revision): after the run took its config snapshot."""

    def __init__(self, local, path: Path, edit, live_revision: str):
        super().__init__(daemon=True)
        self.local, self.path, self.edit, self.live_revision = local, path, edit, live_revision
        self.edited = threading.Event()
        self._halt = threading.Event()

    def _changed(self) -> bool:
        weights = self.local.weights()
        return weights.get(ENV.green_tg, 0) > 0 or self.local.service(ENV.service)["taskDefinition"] != self.live_revision

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self._changed():
                    self.path.write_text(self.edit(self.path.read_text()))
                    self.edited.set()
                    return
            except Exception:  # noqa: BLE001 - the stand-in busy: look again
                pass
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
