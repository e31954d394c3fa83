"""Thin clients over the Amazon provider's AwsBaseHook: one AWS concept per module.

Each client takes an `Environment` (names, region, connection id) and hides the
boto3 call shapes, so operators and checks read as deployment steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment


def boto_client(env: Environment, service: str) -> Any:
    """A boto3 client for `service` built from the environment's Airflow AWS connection."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=env.aws_conn_id, client_type=service, region_name=env.region).conn
