"""The AWS fault toggles themselves (so a fault test cannot pass because its fault never fired)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.faults.driver import aws_stats, faults

pytestmark = pytest.mark.integration
ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def _client(local, service):
    return boto3.client(service, region_name="us-east-1", endpoint_url=local.moto_url, config=ONE_TRY,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_throttle_answers_throttling_in_each_protocol_then_lets_through(local):
    faults(local, throttle={"operations": ["DescribeServices", "DescribeLoadBalancers", "GetMetricData"], "count": 1})
    now = datetime.now(UTC)
    calls = {
        "ecs (json)": lambda: _client(local, "ecs").describe_services(cluster="latticedb-local", services=["x"]),
        "elbv2 (query)": lambda: _client(local, "elbv2").describe_load_balancers(),
        "cloudwatch (cbor)": lambda: _client(local, "cloudwatch").get_metric_data(
            MetricDataQueries=[{"Id": "a", "MetricStat": {"Metric": {"Namespace": "n", "MetricName": "m"},
                                                           "Period": 60, "Stat": "Sum"}}],
            StartTime=now - timedelta(minutes=1), EndTime=now),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] in ("ThrottlingException", "Throttling"), name
        call()  # count 1: the second call goes through
    assert aws_stats(local)["throttled"] == {"DescribeServices": 1, "DescribeLoadBalancers": 1, "GetMetricData": 1}


def test_moto_down_drops_connections_keeps_state_and_comes_back(local):
    before = local.weights()
    faults(local, moto_down=1.5)
    with pytest.raises(ConnectionClosedError):
        _client(local, "elbv2").describe_load_balancers()
    time.sleep(1.6)
    assert local.weights() == before
    assert aws_stats(local)["dropped"] >= 1
    assert requests.get(f"{local.service_url}/_local/status", timeout=5).json()["ready"]  # the env itself unaffected


def test_bad_fault_values_are_refused(local):
    for bad in ({"moto_down": True}, {"moto_down": {"seconds": 0}}, {"throttle": {"operations": []}},
                {"throttle": {"operations": ["X"], "count": 0}}):
        assert requests.post(f"{local.service_url}/_local/faults", json=bad, timeout=5).status_code == 400, bad
