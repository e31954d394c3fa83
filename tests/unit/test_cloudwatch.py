from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from latticedb_deploy.aws.cloudwatch import MetricsClient, load_balancer_dimension, target_group_dimension
from latticedb_deploy.config import load_config

REGION = "us-east-1"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/latticedb-local-alb/50dc6c495c0c9188"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/latticedb-local-green/73e2d6bc24d8a067"
OTHER_TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/latticedb-local-blue/0f1e2d3c4b5a6978"
TG_DIM = "targetgroup/latticedb-local-green/73e2d6bc24d8a067"
LB_DIM = "app/latticedb-local-alb/50dc6c495c0c9188"


@pytest.fixture
def env():
    return load_config().environment("local")


def cloudwatch():
    return boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def test_dimensions_from_arns():
    assert target_group_dimension(TG_ARN) == TG_DIM
    assert load_balancer_dimension(LB_ARN) == LB_DIM
    with pytest.raises(ValueError, match="targetgroup ARN"):
        target_group_dimension(LB_ARN)
    with pytest.raises(ValueError, match="loadbalancer ARN"):
        load_balancer_dimension("app/latticedb-local-alb/50dc6c495c0c9188")


def expected_request(start, end, stat, period, token=None):
    dims = [{"Name": "LoadBalancer", "Value": LB_DIM}, {"Name": "TargetGroup", "Value": TG_DIM}]

    def query(qid, name, s):
        metric = {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims}
        return {"Id": qid, "MetricStat": {"Metric": metric, "Period": period, "Stat": s}}

    params = {
        "MetricDataQueries": [
            query("requests", "RequestCount", "Sum"),
            query("errors", "HTTPCode_Target_5XX_Count", "Sum"),
            query("latency", "TargetResponseTime", stat),
        ],
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    if token:
        params["NextToken"] = token
    return params


def test_p95_query_shape_and_pagination_with_stubber(env):
    client = cloudwatch()
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    end = start + timedelta(minutes=5)
    t1, t2 = start + timedelta(minutes=1), start + timedelta(minutes=2)
    page1 = {
        "MetricDataResults": [
            {"Id": "requests", "Label": "RequestCount", "Timestamps": [t1, t2], "Values": [400.0, 412.0],
             "StatusCode": "PartialData"},
            {"Id": "errors", "Label": "HTTPCode_Target_5XX_Count", "Timestamps": [t1], "Values": [3.0],
             "StatusCode": "PartialData"},
            {"Id": "latency", "Label": "TargetResponseTime", "Timestamps": [t1], "Values": [0.120],
             "StatusCode": "PartialData"},
        ],
        "NextToken": "page-2",
    }
    page2 = {
        "MetricDataResults": [
            {"Id": "errors", "Label": "HTTPCode_Target_5XX_Count", "Timestamps": [t2], "Values": [2.0],
             "StatusCode": "Complete"},
            {"Id": "latency", "Label": "TargetResponseTime", "Timestamps": [t2], "Values": [0.140],
             "StatusCode": "Complete"},
        ],
    }
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", page1, expected_request(start, end, "p95", 60))
        stub.add_response("get_metric_data", page2, expected_request(start, end, "p95", 60, token="page-2"))
        window = MetricsClient(env, client=client).target_group_window(
            target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end, statistic="p95", period=60
        )
        stub.assert_no_pending_responses()
    assert (window.start, window.end) == ("2025-01-01T12:00:00Z", "2025-01-01T12:05:00Z")
    assert (window.requests, window.errors_5xx) == (812.0, 5.0)
    assert window.latency_ms == pytest.approx(140.0)


def test_naive_datetimes_are_taken_as_utc_and_empty_latency_is_none(env):
    client = cloudwatch()
    start, end = datetime(2025, 1, 1, 12, 0), datetime(2025, 1, 1, 12, 5)
    aware = [t.replace(tzinfo=UTC) for t in (start, end)]
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": []}, expected_request(*aware, "Maximum", 10))
        window = MetricsClient(env, client=client).target_group_window(
            target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end, statistic="Maximum", period=10
        )
    assert (window.requests, window.errors_5xx, window.latency_ms) == (0.0, 0.0, None)


@mock_aws
def test_moto_round_trip_reads_only_the_target_group(env):
    client = cloudwatch()
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=5)

    def put(tg_arn, name, values, unit):
        dims = [{"Name": "LoadBalancer", "Value": LB_DIM},
                {"Name": "TargetGroup", "Value": target_group_dimension(tg_arn)}]
        client.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {"MetricName": name, "Dimensions": dims, "Timestamp": start + timedelta(seconds=30 + 40 * i),
                 "Value": v, "Unit": unit}
                for i, v in enumerate(values)
            ],
        )

    put(TG_ARN, "RequestCount", [100, 120, 80], "Count")
    put(TG_ARN, "HTTPCode_Target_5XX_Count", [1, 2], "Count")
    put(TG_ARN, "TargetResponseTime", [0.05, 0.25, 0.10], "Seconds")
    put(OTHER_TG_ARN, "RequestCount", [5000], "Count")
    put(OTHER_TG_ARN, "HTTPCode_Target_5XX_Count", [900], "Count")
    put(OTHER_TG_ARN, "TargetResponseTime", [9.0], "Seconds")

    window = MetricsClient(env, client=client).target_group_window(
        target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=now,
        statistic=env.metrics.latency_statistic, period=env.metrics.period_seconds,
    )
    assert env.metrics.latency_statistic == "Maximum"
    assert (window.requests, window.errors_5xx) == (300.0, 3.0)
    assert window.latency_ms == pytest.approx(250.0)


@mock_aws
def test_alarms_in_alarm_by_prefix(env):
    client = cloudwatch()
    for name in ("latticedb-local-5xx", "latticedb-local-latency", "latticedb-local-cpu", "other-local-5xx"):
        client.put_metric_alarm(
            AlarmName=name, Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold",
        )
    client.set_alarm_state(AlarmName="latticedb-local-5xx", StateValue="ALARM", StateReason="test")
    client.set_alarm_state(AlarmName="latticedb-local-latency", StateValue="ALARM", StateReason="test")
    client.set_alarm_state(AlarmName="latticedb-local-cpu", StateValue="OK", StateReason="test")
    client.set_alarm_state(AlarmName="other-local-5xx", StateValue="ALARM", StateReason="test")

    metrics = MetricsClient(env, client=client)
    assert metrics.alarms_in_alarm(env.alarm_prefix) == ["latticedb-local-5xx", "latticedb-local-latency"]
    assert metrics.alarms_in_alarm("latticedb-staging-") == []
    assert metrics.alarms_in_alarm("") == ["latticedb-local-5xx", "latticedb-local-latency", "other-local-5xx"]
    client.set_alarm_state(AlarmName="latticedb-local-5xx", StateValue="OK", StateReason="recovered")
    assert metrics.alarms_in_alarm(env.alarm_prefix) == ["latticedb-local-latency"]
