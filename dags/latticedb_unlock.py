"""latticedb_unlock (Airflow DAG): clear an environment's lease by hand.

An environment stays locked after a rollback failed ("ROLLBACK FAILED: manual action needed"):
nothing deploys there until a person has checked production (listener weights, each slot's
revision and running tasks) and clears the lock here, with a reason. An expired lease of a crashed
run is cleared too; a lease a deployment in progress still renews needs `force`.
"""

from airflow.sdk import Param

from latticedb_deploy.factory import environment_param, operations_dag
from latticedb_deploy.operators.locks import UnlockEnvironmentOperator

with operations_dag(
    "latticedb_unlock",
    description="Clear an environment's lease by hand: after a failed rollback was dealt with, or a crashed run.",
    doc_md=__doc__,
    tags=["operations", "lock"],
    params={
        "environment": environment_param("Which environment to unlock (from include/config/latticedb.yaml)."),
        "reason": Param(
            type="string", minLength=3, title="Reason",
            description="What you checked or fixed (incident id); goes into the log and the notification.",
        ),
        "force": Param(
            False, type="boolean", title="Force",
            description="Also clear a lease that a running deployment still holds (only if you are sure it is gone).",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send a Slack notification."),
    },
) as dag:
    UnlockEnvironmentOperator(task_id="unlock_environment")
