"""latticedb_feature_flags (Airflow DAG): the runbook's `manage-flags.sh`, kill switch and circuit breaker.

Show, enable or disable a feature flag; turn the bulk kill switch on or off; show or close the
database circuit breaker. Keys live in the environment's Redis (see latticedb_deploy/flags.py).
"""

from airflow.sdk import Param

from latticedb_deploy.factory import environment_param, operations_dag
from latticedb_deploy.flags import ACTIONS, FLAGS
from latticedb_deploy.operators.flags import FeatureFlagOperator

with operations_dag(
    "latticedb_feature_flags",
    description="Show or change LatticeDB feature flags, the kill switch and the circuit breaker (Redis).",
    doc_md=__doc__,
    tags=["operations", "feature-flags"],
    params={
        "action": Param(
            "show", type="string", enum=list(ACTIONS), title="Action",
            description="show: all flags, kill switch, circuit; enable/disable: one flag; kill_switch_on/off: "
            "latticedb:flags:kill_switch:all; circuit_show/circuit_close: latticedb:circuit:database:state.",
        ),
        "flag": Param(
            None, type=["null", "string"], enum=[None, *FLAGS], title="Flag",
            description="The feature flag for enable/disable (key latticedb:flags:<flag>).",
        ),
        "environment": environment_param("Whose Redis (the environment's redis_conn_id in include/config/latticedb.yaml)."),
        "reason": Param(
            "", type="string", title="Reason", description="Why (goes into the Slack notification).",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send a Slack notification when something changes."),
    },
) as dag:
    FeatureFlagOperator(task_id="apply")
