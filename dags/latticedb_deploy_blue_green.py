"""latticedb_deploy_blue_green (Airflow DAG): the runbook's blue/green (`blue-green-deploy.sh`).

Deploy the idle colour, validate it through the test listener, ask for approval, switch the
production listener in one call, bake, then scale the old colour down (kept for rollback).
"""

from latticedb_deploy.factory import blue_green_params, build_deployment_dag
from latticedb_deploy.strategies import BLUE_GREEN

dag = build_deployment_dag(BLUE_GREEN, extra_params=blue_green_params())
