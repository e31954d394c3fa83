"""latticedb_progressive_delivery (Airflow DAG): the runbook's standard production deployment as stages.

Stages come from `progressive_delivery.stages` in include/config/latticedb.yaml (default: staging
with rolling, then approval in the UI, then production with canary). Each stage triggers its
strategy DAG and waits for it deferrably; a failed stage stops promotion; every stage notifies.
"""

from airflow.sdk import Param

from latticedb_deploy.config import load_config
from latticedb_deploy.factory import operations_dag
from latticedb_deploy.images import IMAGE_URI_PATTERN
from latticedb_deploy.operators.progressive import build_stages

config = load_config()
route = " -> ".join(f"{s.environment} ({s.strategy}{', approval' if s.require_approval else ''})" for s in config.progressive_delivery.stages)

with operations_dag(
    "latticedb_progressive_delivery",
    description=f"Progressive delivery: {route}.",
    doc_md=__doc__,
    tags=["deployment", "progressive"],
    params={
        "image_uri": Param(
            type="string", pattern=IMAGE_URI_PATTERN, title="Image URI",
            description="Fully qualified image with tag or digest, deployed stage by stage, e.g. "
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0",
        ),
        "notify": Param(True, type="boolean", title="Notify", description="Send Slack notifications for every stage."),
    },
) as dag:
    build_stages(config.progressive_delivery.stages)
