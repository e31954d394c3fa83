"""The deployment history in DynamoDB: one item per deployment or emergency-rollback run.

It outlives Airflow's metadata cleanup (`airflow db clean`), which is why it is not read from
Airflow's own tables. Partition key `environment` (the environment's name: the IAM policy lets
a deployer write and read its own environment's items only, `dynamodb:LeadingKeys`), sort key
`run_key` = `<started ISO-8601>#<dag_id>/<run_id>`: a run's tasks all write the same item (the
last word wins: a rollback that fails after "rolled back" was written turns it into
"rollback_failed"), and a Query reads an environment's runs in time order.
"""

from __future__ import annotations

from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment
from latticedb_deploy.history import DeploymentRecord


class HistoryStore:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "dynamodb")

    def put(self, record: DeploymentRecord) -> None:
        if record.environment != self.env.name:
            raise ValueError(f"record for {record.environment!r} written through {self.env.name!r}'s store")
        self.client.put_item(TableName=self.env.history_table, Item=record.to_item())

    def query(self, *, since: str | None = None, limit: int | None = None, newest_first: bool = True) -> list[DeploymentRecord]:
        """This environment's records (started at or after `since`, an ISO time), newest first by default."""
        condition = "environment = :e"
        values: dict[str, dict] = {":e": {"S": self.env.name}}
        if since:
            condition += " AND run_key >= :since"
            values[":since"] = {"S": since}
        kwargs: dict[str, Any] = {
            "TableName": self.env.history_table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        records: list[DeploymentRecord] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(records)
            resp = self.client.query(**kwargs)
            records.extend(DeploymentRecord.from_item(i) for i in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last or (limit is not None and len(records) >= limit):
                return records
            kwargs["ExclusiveStartKey"] = last
