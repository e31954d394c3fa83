"""The environment lease: one holder at a time, renewable by its owner, expiring after a crash."""

import boto3
import pytest
from moto import mock_aws

from latticedb_deploy.aws.locks import EnvironmentLock
from latticedb_deploy.config import load_config


@pytest.fixture
def lock():
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


def test_second_owner_is_told_who_holds_it(lock):
    assert lock.acquire("canary/run-1", ttl_seconds=60, now=1000) is None
    holder = lock.acquire("rolling/run-2", ttl_seconds=60, now=1010)
    assert holder is not None and holder.owner == "canary/run-1" and holder.expires_at == 1060


def test_owner_may_renew_and_release(lock):
    assert lock.acquire("a/1", ttl_seconds=60, now=1000) is None
    assert lock.acquire("a/1", ttl_seconds=60, now=1030) is None  # a retried task converges
    assert lock.release("b/2") is False
    assert lock.release("a/1") is True
    assert lock.holder() is None
    assert lock.acquire("b/2", ttl_seconds=60, now=1031) is None


def test_a_crashed_holder_expires(lock):
    assert lock.acquire("crashed/1", ttl_seconds=60, now=1000) is None
    assert lock.acquire("next/2", ttl_seconds=60, now=1059) is not None
    assert lock.acquire("next/2", ttl_seconds=60, now=1061) is None
    assert lock.holder().owner == "next/2"
