"""The Airflow connections that point the deployment DAGs at one environment of the local stack.

The one place their JSON is written: `ctl.py env` prints them, the tests, the benchmarks and the
e2e stack set them (harness/). scripts/airflow-env.sh and docker-compose.yaml spell the same JSON
for `local` on its default ports, in shell and YAML; tests/unit/test_local_connections.py checks
the shell copy against this one.

Standard library only: ctl.py and the test and benchmark processes import it before Airflow.
"""

from __future__ import annotations

import json

# moto accepts any credentials; a real account uses its own connection (see README).
CREDENTIALS = {"login": "testing", "password": "testing"}
WEBHOOK_PATH = "/services/T000/B000/{label}"


def conn_var(conn_id: str) -> str:
    """The environment variable Airflow reads connection `conn_id` from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def airflow_connections(
    environment,
    moto_url: str,
    slack_url: str,
    *,
    redis_url: str | None = None,
    label: str = "LOCAL",
) -> dict[str, str]:
    """AIRFLOW_CONN_* variable -> value for one hosted environment.

    `environment` is the config's Environment (its `aws_conn_id`, `notifications.slack_conn_id`,
    `redis_conn_id`, `region`). The AWS connection sends every client, STS included, to the moto
    server at `moto_url`; the Slack webhook posts to the sink at `slack_url` under
    /services/T000/B000/<label> (the label only tells in the sink who posted); the Redis
    connection is included when `redis_url` is given.
    """
    moto_url, slack_url = moto_url.rstrip("/"), slack_url.rstrip("/")
    aws = {
        "conn_type": "aws",
        **CREDENTIALS,
        "extra": {
            "region_name": environment.region,
            "endpoint_url": moto_url,
            "service_config": {"sts": {"endpoint_url": moto_url}},
        },
    }
    slack = {"conn_type": "slackwebhook", "password": slack_url + WEBHOOK_PATH.format(label=label)}
    conns = {
        conn_var(environment.aws_conn_id): json.dumps(aws),
        conn_var(environment.notifications.slack_conn_id): json.dumps(slack),
    }
    if redis_url is not None:
        conns[conn_var(environment.redis_conn_id)] = redis_url
    return conns
