"""Per-period samples for the relative judge (issue 16): MetricsClient.target_group_samples on moto (decorator mode)."""

from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from latticedb_deploy.aws.cloudwatch import MetricsClient, target_group_dimension
from latticedb_deploy.config import load_config

LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/latticedb-local-alb/50dc6c495c0c9188"
BASE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/latticedb-local-blue/0f1e2d3c4b5a6978"
CANARY = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/latticedb-local-green/73e2d6bc24d8a067"


def put(cw, tg_arn, ts, requests, errors, latency_s):
    dims = [{"Name": "LoadBalancer", "Value": "app/latticedb-local-alb/50dc6c495c0c9188"},
            {"Name": "TargetGroup", "Value": target_group_dimension(tg_arn)}]
    data = [{"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": ts, "Value": requests, "Unit": "Count"},
            {"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": ts, "Unit": "Seconds",
             "StatisticValues": {"SampleCount": requests, "Sum": requests * latency_s, "Minimum": latency_s,
                                 "Maximum": latency_s}}]
    if errors is not None:
        data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Timestamp": ts,
                     "Value": errors, "Unit": "Count"})
    cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)


@mock_aws
def test_one_sample_per_period_and_target_group():
    env = load_config().environment("local")
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    for i in range(12):
        ts = start + timedelta(seconds=i, milliseconds=500)
        put(cw, BASE, ts, 45.0, 0.09, 0.150)
        put(cw, CANARY, ts, 5.0, 0.03 if i % 2 else None, 0.300 + i / 1000)  # no 5xx datapoint: 0 errors
    samples = MetricsClient(env, client=cw).target_group_samples(
        target_group_arns={"baseline": BASE, "canary": CANARY}, load_balancer_arn=LB_ARN,
        start=start, end=start + timedelta(seconds=12), statistic="Maximum", period=env.judge_period_seconds,
    )
    base, canary = samples["baseline"], samples["canary"]
    assert len(base["error_rate"]) == len(canary["error_rate"]) == 12
    assert all(abs(r - 0.002) < 1e-9 for r in base["error_rate"])
    assert canary["error_rate"][:2] == [0.0, 0.006] and abs(canary["success_rate"][1] - 0.994) < 1e-9
    assert base["latency"] == [150.0] * 12 and round(canary["latency"][11], 6) == 311.0
