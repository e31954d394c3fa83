"""Fixtures shared by unit tests."""

import boto3
import pytest
from moto import mock_aws

from latticedb_deploy.aws.locks import EnvironmentLock
from latticedb_deploy.config import load_config


@pytest.fixture
def lock():
    """`local`'s environment lease on an in-memory (decorator-mode moto) lock table."""
    with mock_aws():
        env = load_config().environment("local")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName=env.lock_table,
            KeySchema=[{"AttributeName": "environment", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "environment", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield EnvironmentLock(env, client=ddb)
