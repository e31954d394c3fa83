"""latticedb_post_deployment_watch (Airflow DAG): the runbook's "monitor for 24 hours".

Follow-up SLO checks of a deployment at 1 h, 6 h and 24 h (`offsets_seconds`, compressed in
tests): each task defers until its moment (no worker held), judges the live slot over the last
window against every SLO metric, posts a short verdict; a breach posts an alert naming the
deployment and offering latticedb_rollback, and fails that check. Triggered, without waiting, by
every successful deployment to an environment whose `post_deployment.watch_offsets_seconds` asks
for it (production by default), through the deployment's schedule_post_deployment_watch task;
also by hand (conf: environment, deployment, version, deployed_at).
"""

from airflow.sdk import DAG, Param

from latticedb_deploy.callbacks import notify_dag_failure
from latticedb_deploy.factory import DEFAULT_ARGS, environment_param, params_copied_once
from latticedb_deploy.operators.watch import DEFAULT_OFFSETS, LABELS, SloWatchOperator

# Not operations_dag(): that allows one active run, and a watch lasts 24 h; two deployments a day
# must both be watched.
with DAG(
    dag_id="latticedb_post_deployment_watch",
    description="Follow-up SLO checks 1 h, 6 h and 24 h after a deployment; a breach offers the rollback.",
    doc_md=__doc__,
    schedule=None,
    catchup=False,
    max_active_runs=16,
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_dag_failure,
    tags=["latticedb", "operations", "watch"],
    params={
        "environment": environment_param("The environment that was deployed to."),
        # A default, so a failed run's DAG-level callbacks can still resolve the params; empty is refused
        # by the checks themselves.
        "deployment": Param("", type="string", title="Deployment",
                            description="The deployment watched (the deployment run's dag_id/run_id); required."),
        "version": Param(None, type=["null", "string"], title="Version", description="The version deployed."),
        "image": Param(None, type=["null", "string"], title="Image", description="The image deployed (digest-pinned)."),
        "revision": Param(None, type=["null", "string"], title="Revision",
                          description="The task definition revision deployed, e.g. latticedb-task-production:42."),
        "deployment_url": Param(None, type=["null", "string"], title="Deployment run link",
                                description="The deployment run's page in Airflow."),
        "deployed_at": Param(None, type=["null", "string"], title="Deployed at",
                             description="ISO time the deployment finished; empty: when this run started."),
        "offsets_seconds": Param(list(DEFAULT_OFFSETS), type="array", minItems=3, maxItems=3,
                                 items={"type": "number", "minimum": 0}, title="Offsets (s)",
                                 description="When to check, after deployed_at (default 1 h, 6 h, 24 h)."),
        "window_seconds": Param(None, type=["null", "integer"], minimum=10, title="Window (s)",
                                description="Metrics window judged at each check (default post_deployment.window_seconds)."),
        "notify": Param(True, type="boolean", title="Notify", description="Post each verdict to Slack."),
    },
) as dag, params_copied_once(dag):
    for i, label in enumerate(LABELS):
        SloWatchOperator(task_id=f"watch_{label}", index=i, retries=1)
