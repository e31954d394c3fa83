"""latticedb_control in the integration tests: a control run, a lease held as a deployment leaves it, a refusal."""

from __future__ import annotations

import copy
import time

from tests.envs import ENV
from tests.integration.helpers import run_dag_run

CONTROL = "latticedb_control"


def _states(dr) -> dict:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def control_run(dagbag, action: str, reason: str, deployment: str | None = None):
    """A latticedb_control run. Its required params get the run's values as defaults for the run: under
    dag.test() the DAG-level failure callback validates the DAG's params without the run's conf."""
    conf = {"environment": ENV.name, "action": action, "reason": reason}
    if deployment is not None:
        conf["deployment"] = deployment
    dag = dagbag.dags[CONTROL]
    original = copy.deepcopy(dag.params)
    try:
        for key, value in conf.items():
            dag.params[key] = value
        return run_dag_run(dagbag, CONTROL, conf)
    finally:
        dag.params = original


def held_by(local, owner: str, marker: str | None = None):
    """`owner` holds this worker's environment, as a deployment's pre-flight leaves it (and, with `marker`, as
    its verify left it: the same conditional write as the deployment's)."""
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.config import load_config
    from latticedb_deploy.control import phase_marker

    lock = EnvironmentLock(load_config().environment(ENV.name), client=local.client("dynamodb"))
    assert lock.acquire(owner) is None
    if marker:
        assert lock.signal(owner, phase_marker(marker, None, owner=owner, now=time.time()).to_json(), None)
    return lock


def refused(local, dr, *phrases: str) -> None:
    """The control run `dr` failed at `apply`, and the last refusal posted to Slack says every one of `phrases`."""
    assert dr.state == "failed" and _states(dr)["apply"] == "failed", _states(dr)
    refusals = [t for t in local.message_texts() if "refused" in t]
    assert refusals and all(p in refusals[-1] for p in phrases), (phrases, refusals)
