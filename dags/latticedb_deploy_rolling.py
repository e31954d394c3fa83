"""latticedb_deploy_rolling (Airflow DAG): the runbook's rolling deployment (`manage-service.sh update`)."""

from latticedb_deploy.factory import build_deployment_dag
from latticedb_deploy.strategies import ROLLING

dag = build_deployment_dag(ROLLING)
