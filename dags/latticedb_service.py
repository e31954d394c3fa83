"""latticedb_service (Airflow DAG): the operations commands of `manage-service.sh`.

- `status`: services, revisions, running/desired, listener weights, target health and the
  deployment log's last entry, posted to Slack and returned in XCom (task `status`). Changes nothing.
- `scale`: the live slot's desired count (`desired_count`), checked against the environment's
  capacity (`capacity.max_tasks`, else the Fargate quota) before any change, then waited for
  (deferred) until that many tasks run.
- `restart`: a forced new deployment of the revision in service (fresh tasks, same revision),
  waited for (deferred) until it has replaced the old one.

scale and restart hold the environment's lease (the same one deployments take) for the length of
the run and notify at the start and the end; a refused request changes nothing.
"""

from airflow.sdk import Param, chain

from latticedb_deploy.factory import RUNS_ACROSS_ENVIRONMENTS, environment_param, operations_dag
from latticedb_deploy.operators.locks import ReleaseEnvironmentOperator
from latticedb_deploy.operators.service import (
    AcquireForChangeOperator,
    CheckServiceRequestOperator,
    ServiceReportOperator,
    ServiceStatusOperator,
    UpdateServiceForActionOperator,
    WaitForServiceSensor,
)
from latticedb_deploy.service_ops import ACTIONS, MAX_DESIRED

with operations_dag(
    "latticedb_service",
    description="manage-service.sh status / scale / restart: the service's state, its size, fresh tasks.",
    doc_md=__doc__,
    tags=["operations", "service"],
    max_active_runs=RUNS_ACROSS_ENVIRONMENTS,  # one per environment: its lease serializes them
    params={
        "environment": environment_param("Which environment's service (from include/config/latticedb.yaml)."),
        "action": Param("status", type="string", enum=list(ACTIONS), title="Action",
                        description="status (read only), scale (desired count of the live slot) or restart "
                        "(force a new deployment of the same revision)."),
        "desired_count": Param(None, type=["null", "integer"], minimum=1, maximum=MAX_DESIRED, title="Desired count",
                               description="For scale: tasks the live slot should run (checked against capacity)."),
        "reason": Param(None, type=["null", "string"], maxLength=500, title="Reason",
                        description="Why (incident id, load); required for scale and restart, goes into the notifications."),
        "notify": Param(True, type="boolean", title="Notify", description="Send Slack notifications."),
    },
) as dag:
    check = CheckServiceRequestOperator(task_id="check_request")
    status = ServiceStatusOperator(task_id="status")
    hold = AcquireForChangeOperator(task_id="acquire_environment")
    update = UpdateServiceForActionOperator(task_id="update_service", plan=check.output)
    wait = WaitForServiceSensor(task_id="wait_for_service", rollout=update.output)
    report = ServiceReportOperator(task_id="report", plan=check.output, change=update.output)
    release = ReleaseEnvironmentOperator(task_id="release_environment").as_teardown(setups=hold)
    chain(check, [status, hold])
    chain(hold, update, wait, report, release)
