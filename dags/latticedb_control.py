"""latticedb_control (Airflow DAG): act on the deployment in flight in an environment.

- `promote`: a canary goes to 100 % at once, its remaining shifts and gates skip ("promoted by
  <user>: <reason>"), then verify and cleanup run as usual; a blue/green bake ends.
- `pause`: traffic stays and is still judged (a failure still rolls back); the gate does not pass, nor
  the next shift start, until `resume`; it stays deferred and keeps the lease renewed.
- `resume`: lifts a pause.
- `abort`: the gate (or the next step) fails with the reason and the run's usual rollback runs.

The action is written on the environment's lease item, which the deployment reads at every gate
poll and before every change: it takes effect within one poll interval plus a few seconds. With no
deployment in flight the run fails saying so, and nothing changes. A rolling deployment takes
only `abort` (it has no steps to skip or hold).

`deployment` names the run meant (`<dag_id>/<run_id>`, as the Slack message's control link names it, or
the run id alone): if another run holds the environment now, the control run fails naming it and
nothing changes. Empty: whichever deployment holds the environment (the log says which).
In verify (smoke tests, post-deployment checks) only `abort` applies (the checks fail, the rollback
runs); past verify (cleanup, record) every action is refused: use `latticedb_rollback`.
"""

from airflow.sdk import Param

from latticedb_deploy.control import ACTIONS, TARGET_PATTERN
from latticedb_deploy.factory import environment_param, operations_dag
from latticedb_deploy.operators.control import ControlDeploymentOperator

with operations_dag(
    "latticedb_control",
    description="Promote, pause, resume or abort the deployment in flight in an environment.",
    doc_md=__doc__,
    tags=["operations", "control"],
    params={
        "environment": environment_param("Whose deployment in flight to act on (from include/config/latticedb.yaml)."),
        "deployment": Param(
            None, type=["null", "string"], pattern=TARGET_PATTERN, maxLength=501, title="Deployment run",
            description="The deployment run to act on: <dag_id>/<run_id> (the Slack message's control link names it) "
            "or its run id alone. If another run holds the environment now, nothing changes and the control run fails "
            "naming it. Empty: whichever deployment holds the environment.",
        ),
        "action": Param(
            type="string", enum=list(ACTIONS), title="Action",
            description="promote (100 % now, skip the rest), pause (hold at the current weight), resume, "
            "or abort (roll back now).",
        ),
        "reason": Param(
            type="string", minLength=3, maxLength=500, title="Reason",
            description="Why (incident id, what you saw); goes into every message and the deployment log.",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send a Slack notification."),
    },
) as dag:
    ControlDeploymentOperator(task_id="apply")
