"""The AWS fault toggles themselves (so a fault test cannot pass because its fault never fired)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from harness.background import wait_until
from tests.envs import ENV
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
        "ecs (json)": lambda: _client(local, "ecs").describe_services(cluster=ENV.cluster, services=["x"]),
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
    elbv2 = _client(local, "elbv2")  # built first: the outage is for the call, not the client's start-up
    faults(local, moto_down=3)
    with pytest.raises(ConnectionClosedError):
        elbv2.describe_load_balancers()
    # It comes back by itself: a call after the outage is served.
    wait_until(elbv2.describe_load_balancers, 30, "moto back after its 3 s outage", interval=0.5)
    assert local.weights() == before
    assert aws_stats(local)["dropped"] >= 1
    assert requests.get(f"{local.service_url}/_local/status", timeout=5).json()["ready"]  # the env itself unaffected


def test_bad_fault_values_are_refused(local):
    for bad in ({"moto_down": True}, {"moto_down": {"seconds": 0}}, {"throttle": {"operations": []}},
                {"throttle": {"operations": ["X"], "count": 0}}, {"deny": {"operation": "X", "nth": 0}},
                {"deny": "ModifyListener"}, {"slot_errors": {ENV.green_tg: 2}},
                {"arm": {"on": "X", "set": {"nope": True}}}, {"arm": {"on": "X", "set": {"arm": None}}}):
        assert requests.post(f"{local.service_url}/_local/faults", json=bad, timeout=5).status_code == 400, bad


def test_deny_answers_access_denied_from_the_nth_call_until_cleared(local):
    faults(local, deny={"operation": "DescribeLoadBalancers", "nth": 2})
    elb = _client(local, "elbv2")
    elb.describe_load_balancers()  # the 1st call is served
    for _ in range(2):
        with pytest.raises(ClientError) as err:
            elb.describe_load_balancers()
        assert err.value.response["Error"]["Code"] == "AccessDenied"
    _client(local, "ecs").describe_services(cluster=ENV.cluster, services=["x"])  # other operations pass
    faults(local, deny=None)
    elb.describe_load_balancers()


def test_arm_sets_faults_when_the_deployment_makes_its_nth_call(local):
    faults(local, arm={"on": "DescribeLoadBalancers", "nth": 2, "set": {"health_down": True}})
    elb = _client(local, "elbv2")
    elb.describe_load_balancers()
    assert requests.get(f"{local.service_url}/health", timeout=5).status_code == 200
    elb.describe_load_balancers()  # the 2nd call is served, and arms health_down
    assert requests.get(f"{local.service_url}/health", timeout=5).status_code == 503
    faults(local, health_down=False)


def test_slot_errors_make_one_target_group_answer_5xx(local):
    from datetime import UTC, datetime, timedelta

    faults(local, slot_errors={ENV.blue_tg: 0.5})
    time.sleep(3)
    cw = _client(local, "cloudwatch")
    elb = _client(local, "elbv2")
    lb = elb.describe_load_balancers(Names=[ENV.alb])["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.describe_target_groups(Names=[ENV.blue_tg])["TargetGroups"][0]["TargetGroupArn"]
    dims = [{"Name": "LoadBalancer", "Value": lb.split(":loadbalancer/")[1]},
            {"Name": "TargetGroup", "Value": tg.split(":")[-1]}]
    now = datetime.now(UTC)

    def total(metric):
        resp = cw.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName=metric, Dimensions=dims,
                                        StartTime=now - timedelta(seconds=3), EndTime=now, Period=60, Statistics=["Sum"])
        return sum(d["Sum"] for d in resp["Datapoints"])

    requests_, errors = total("RequestCount"), total("HTTPCode_Target_5XX_Count")
    assert requests_ > 0 and 0.3 < errors / requests_ < 0.7, (requests_, errors)
