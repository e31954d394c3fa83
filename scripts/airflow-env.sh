# Source me: the Airflow settings and connections that point this package at the local environment.
# Every value can be overridden from the calling shell.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_root/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$_root/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$_root/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export PYTHONPATH="$_root/plugins${PYTHONPATH:+:$PYTHONPATH}"
export LATTICEDB_REPORT_DIR="${LATTICEDB_REPORT_DIR:-$_root/.local/reports}"
_moto_port="${LATTICEDB_LOCAL_MOTO_PORT:-5000}"
_slack_port="${LATTICEDB_LOCAL_SLACK_PORT:-8082}"
# Dummy credentials: moto accepts any; a real account uses its own connection (see README). The same JSON as
# include/local/latticedb_local/connections.py (tests/unit/test_local_connections.py checks they agree).
export AIRFLOW_CONN_LATTICEDB_LOCAL_AWS="${AIRFLOW_CONN_LATTICEDB_LOCAL_AWS:-{\"conn_type\": \"aws\", \"login\": \"testing\", \"password\": \"testing\", \"extra\": {\"region_name\": \"us-east-1\", \"endpoint_url\": \"http://127.0.0.1:$_moto_port\", \"service_config\": {\"sts\": {\"endpoint_url\": \"http://127.0.0.1:$_moto_port\"}}}}}"
export AIRFLOW_CONN_LATTICEDB_LOCAL_SLACK="${AIRFLOW_CONN_LATTICEDB_LOCAL_SLACK:-{\"conn_type\": \"slackwebhook\", \"password\": \"http://127.0.0.1:$_slack_port/services/T000/B000/LOCAL\"}}"
export AIRFLOW_CONN_LATTICEDB_LOCAL_REDIS="${AIRFLOW_CONN_LATTICEDB_LOCAL_REDIS:-redis://127.0.0.1:6379/0}"
unset _root _moto_port _slack_port
