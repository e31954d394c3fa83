"""latticedb_rollback (Airflow DAG): the runbook's emergency rollback (`manage-service.sh rollback -e <env>`).

The default target is what served before the deployment it pre-empts (that run's baseline, kept
on its lease), else the previous good revision. If a slot still runs the target warm, the listener
switches to it in one call (seconds); otherwise the live service returns to the target revision
with the ECS circuit breaker on, and the run waits, deferrably, until it is stable.

It takes the environment's lease by force first (take_environment, recording this run and the
reason): a deployment in flight sees that at its next step or poll and stops without touching
traffic. release_environment gives the environment back at the end, unless the rollback itself
failed: then it stays locked until a person clears it (latticedb_unlock). Rollbacks of different
environments run at once; a second one for the same environment is refused while the first holds it.
"""

from airflow.sdk import Param, chain

from latticedb_deploy.factory import RUNS_ACROSS_ENVIRONMENTS, environment_param, operations_dag
from latticedb_deploy.incidents import EMERGENCY_ROLLBACK_TASKS
from latticedb_deploy.operators.emergency import (
    PlanRollbackOperator,
    RollbackServiceOperator,
    SwitchListenerBackOperator,
    VerifyRollbackOperator,
)
from latticedb_deploy.operators.locks import ReleaseEnvironmentOperator, TakeEnvironmentOperator
from latticedb_deploy.sensors.ecs_rollout import EcsRolloutSensor

with operations_dag(
    "latticedb_rollback",
    description="Emergency rollback: switch back to the warm old colour, or the live service to the previous revision.",
    doc_md=__doc__,
    tags=["operations", "rollback"],
    max_active_runs=RUNS_ACROSS_ENVIRONMENTS,  # one per environment: its lease serializes them
    params={
        "environment": environment_param("Where to roll back (from include/config/latticedb.yaml)."),
        "target_revision": Param(
            None, type=["null", "string"], title="Target revision",
            description="Task definition to return to: ARN, family:revision or a revision number. "
            "Empty: what served before the deployment in flight, if one is pre-empted; else the warm old "
            "colour's revision; else the newest ACTIVE revision older than the one in service, not known bad.",
        ),
        "reason": Param(
            type="string", minLength=3, title="Reason",
            description="Why you are rolling back (incident id, symptom); goes into the notifications.",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send Slack notifications (start and finish)."),
    },
) as dag:
    take = TakeEnvironmentOperator(task_id="take_environment")  # by force: pre-empts a deployment in flight
    plan = PlanRollbackOperator(task_id="plan", taken=take.output)
    switch = SwitchListenerBackOperator(task_id="switch_listener", plan=plan.output)
    update = RollbackServiceOperator(task_id="update_service", plan=plan.output)
    wait = EcsRolloutSensor(task_id="wait_for_rollout", rollout=update.output, image_uri="")
    verify = VerifyRollbackOperator(task_id="verify", trigger_rule="none_failed", plan=plan.output)
    release = ReleaseEnvironmentOperator(
        task_id="release_environment", rollback_task_ids=list(EMERGENCY_ROLLBACK_TASKS)
    ).as_teardown(setups=take)
    chain(take, plan, [switch, update])
    chain(update, wait)
    chain([switch, wait], verify, release)
