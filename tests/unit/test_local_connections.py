"""The local Airflow connections are written once (include/local/latticedb_local/connections.py);
scripts/airflow-env.sh spells the same JSON in shell for `local` on its default ports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness import airflow_connections, conn_var
from latticedb_deploy.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_aws_connection_sends_every_client_and_sts_to_moto():
    env = load_config().environment("local-2")
    conns = airflow_connections(env, "http://127.0.0.1:5001/", "http://127.0.0.1:5002", redis_url="redis://127.0.0.1:1/0")
    aws = json.loads(conns[conn_var(env.aws_conn_id)])
    assert aws["conn_type"] == "aws"
    assert aws["extra"] == {"region_name": env.region, "endpoint_url": "http://127.0.0.1:5001",
                            "service_config": {"sts": {"endpoint_url": "http://127.0.0.1:5001"}}}
    slack = json.loads(conns[conn_var(env.notifications.slack_conn_id)])
    assert slack == {"conn_type": "slackwebhook", "password": "http://127.0.0.1:5002/services/T000/B000/LOCAL"}
    assert conns[conn_var(env.redis_conn_id)] == "redis://127.0.0.1:1/0"
    assert set(conns) == {"AIRFLOW_CONN_LATTICEDB_LOCAL_2_AWS", "AIRFLOW_CONN_LATTICEDB_LOCAL_2_SLACK",
                          "AIRFLOW_CONN_LATTICEDB_LOCAL_2_REDIS"}


def test_airflow_env_sh_writes_the_same_connections():
    script = (f"source {ROOT / 'scripts' / 'airflow-env.sh'}; "
              "printf '%s\\n' \"$AIRFLOW_CONN_LATTICEDB_LOCAL_AWS\" \"$AIRFLOW_CONN_LATTICEDB_LOCAL_SLACK\" "
              "\"$AIRFLOW_CONN_LATTICEDB_LOCAL_REDIS\"")
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", "LATTICEDB_LOCAL_MOTO_PORT": "5100",
                                                      "LATTICEDB_LOCAL_SLACK_PORT": "8182"},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    expected = airflow_connections(load_config().environment("local"), "http://127.0.0.1:5100", "http://127.0.0.1:8182",
                                   redis_url="redis://127.0.0.1:6379/0")
    assert json.loads(out[0]) == json.loads(expected["AIRFLOW_CONN_LATTICEDB_LOCAL_AWS"])
    assert json.loads(out[1]) == json.loads(expected["AIRFLOW_CONN_LATTICEDB_LOCAL_SLACK"])
    assert out[2] == expected["AIRFLOW_CONN_LATTICEDB_LOCAL_REDIS"]
