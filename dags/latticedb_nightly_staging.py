"""latticedb_nightly_staging (Airflow DAG): redeploy staging with the newest matching image every night.

resolve_image finds the newest ECR image whose tag matches `nightly.tag_pattern` (none: NOT deployed,
the summary says why); when that digest already runs in the environment's live service the run ends
with everything skipped. Otherwise
wait_for_environment waits (deferred) while another deployment holds the environment, up to
`nightly.wait_for_environment_seconds`; then it triggers `latticedb_deploy_<nightly.strategy>`, waits
for it deferrably, and sends a summary (NOT deployed, and why, when the environment stayed held).
Schedule, environment, strategy and pattern: `nightly` in include/config/latticedb.yaml.
"""

from datetime import UTC, datetime

from airflow.sdk import chain

from latticedb_deploy.config import load_config
from latticedb_deploy.factory import operations_dag
from latticedb_deploy.operators.nightly import (
    NightlySummaryOperator,
    ResolveNightlyImageOperator,
    WaitForEnvironmentOperator,
)
from latticedb_deploy.operators.strategy_run import StrategyRunOperator

nightly = load_config().nightly
_resolved = "ti.xcom_pull(task_ids='resolve_image')"

with operations_dag(
    "latticedb_nightly_staging",
    description=f"Nightly ({nightly.schedule} UTC): newest image matching {nightly.tag_pattern} to "
    f"{nightly.environment} with {nightly.strategy}; skipped when it already runs.",
    doc_md=__doc__,
    schedule=nightly.schedule,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    tags=["operations", "nightly"],
    failure_told_by="summary",
) as dag:
    resolve = ResolveNightlyImageOperator(task_id="resolve_image")
    wait = WaitForEnvironmentOperator(task_id="wait_for_environment")
    deploy = StrategyRunOperator(
        task_id="deploy",
        failure_told_by_summary=True,  # the deployment's own messages and the summary tell it
        trigger_dag_id="{{ " + _resolved + "['dag_id'] }}",
        conf={"image_uri": "{{ " + _resolved + "['image_uri'] }}", "environment": "{{ " + _resolved + "['environment'] }}"},
    )
    summary = NightlySummaryOperator(task_id="summary", trigger_rule="none_skipped")
    chain(resolve, wait, deploy, summary)
