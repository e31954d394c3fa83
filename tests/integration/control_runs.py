"""latticedb_control in the integration tests: a control run, a lease held as a deployment leaves it, a refusal."""

from __future__ import annotations

import time

from tests.envs import ENV
from tests.integration.helpers import run_dag_run, run_values_as_param_defaults

CONTROL = "latticedb_control"


def _states(dr) -> dict:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def control_run(dagbag, action: str, reason: str, deployment: str | None = None):
    """A latticedb_control run (its required params set for the run: helpers.run_values_as_param_defaults)."""
    conf = {"environment": ENV.name, "action": action, "reason": reason}
    if deployment is not None:
        conf["deployment"] = deployment
    with run_values_as_param_defaults(dagbag, CONTROL, conf):
        return run_dag_run(dagbag, CONTROL, conf)


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
