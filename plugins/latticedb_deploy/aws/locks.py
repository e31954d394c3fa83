"""One deployment per environment: a lease in DynamoDB, taken with a conditional write.

Whichever DAG starts a deployment, it takes the environment's lease first; a second run sees
who holds it. A crashed run's lease expires after `lock_ttl_seconds`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment


@dataclass(frozen=True)
class Holder:
    owner: str
    acquired_at: float
    expires_at: float


class EnvironmentLock:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "dynamodb")

    def acquire(self, owner: str, ttl_seconds: int | None = None, now: float | None = None) -> Holder | None:
        """Take (or renew, for the same owner) the lease. Returns None on success, else who holds it."""
        now = time.time() if now is None else now
        ttl = ttl_seconds or self.env.lock_ttl_seconds
        try:
            self.client.put_item(
                TableName=self.env.lock_table,
                Item={
                    "environment": {"S": self.env.name},
                    "owner": {"S": owner},
                    "acquired_at": {"N": f"{now:.3f}"},
                    "expires_at": {"N": f"{now + ttl:.3f}"},
                },
                ConditionExpression="attribute_not_exists(#env) OR #owner = :owner OR expires_at < :now",
                ExpressionAttributeNames={"#env": "environment", "#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":now": {"N": f"{now:.3f}"}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return self.holder()
        return None

    def holder(self) -> Holder | None:
        item = self.client.get_item(
            TableName=self.env.lock_table, Key={"environment": {"S": self.env.name}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return Holder(item["owner"]["S"], float(item["acquired_at"]["N"]), float(item["expires_at"]["N"]))

    def release(self, owner: str) -> bool:
        """Give the lease back if we still hold it; returns whether we did."""
        try:
            self.client.delete_item(
                TableName=self.env.lock_table,
                Key={"environment": {"S": self.env.name}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
