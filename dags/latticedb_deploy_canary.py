"""latticedb_deploy_canary (Airflow DAG): the runbook's canary (`canary-deploy.sh -c 10 -s 10 -t 300`).

Traffic moves to the new revision in steps; each step is gated by CloudWatch metrics and a
failing gate puts 100 % of traffic back on the stable service.
"""

from latticedb_deploy.factory import build_deployment_dag, canary_params
from latticedb_deploy.strategies import CANARY

dag = build_deployment_dag(CANARY, extra_params=canary_params())
