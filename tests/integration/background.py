"""What a user sees of this worker's environment lease; the background run (`airflow dags test` in its own
process and Airflow home) lives in harness/background.py, shared with the benchmarks."""

from __future__ import annotations

from harness.background import (  # noqa: F401 - re-exported for the tests
    MIGRATED_DB_TEMPLATE_VAR,
    BackgroundRun,
    new_airflow_home,
    wait_until,
)
from tests.envs import ENV  # noqa: E402

LOCK_TABLE = "latticedb-deploy-locks"


def lock_item(local, key: str | None = None) -> dict | None:
    """The lease item for `key` as the DynamoDB console shows it (plain values)."""
    item = local.client("dynamodb").get_item(
        TableName=LOCK_TABLE, Key={"environment": {"S": key or ENV.name}}, ConsistentRead=True
    ).get("Item")
    if not item:
        return None
    return {k: (v["S"] if "S" in v else float(v["N"])) for k, v in item.items()}
