"""Issue 15, production SLO with P99: gate/bake and post-deployment criteria from known numbers,
and the P99 query CloudWatch is asked (botocore Stubber)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from latticedb_deploy.aws.cloudwatch import MetricsClient
from latticedb_deploy.config import Slo, load_config
from latticedb_deploy.judge import FAIL, INCONCLUSIVE, PASS, GateCriteria, MetricWindow, evaluate, with_slo

LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/latticedb-production-alb/50dc6c495c0c9188"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/latticedb-production-green/73e2d6bc24d8a067"
SLO = Slo(max_error_rate=0.01, max_p95_ms=500, max_p99_ms=1000, min_availability=0.999)


def window(requests=10_000, errors=0, p95=100.0, p99=200.0):
    return MetricWindow("2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z", requests, errors, p95, p99)


@pytest.fixture
def prod():
    return load_config().environment("production")


def test_production_gates_use_the_stricter_of_thresholds_and_slo(prod):
    gate = GateCriteria.for_gate(prod, tolerated_failures=1)
    assert (gate.max_error_rate, gate.max_latency_ms, gate.min_success_rate, gate.max_p99_ms) == (0.01, 500, 0.999, 1000)
    assert (gate.latency_statistic, gate.p99_statistic, gate.tolerated_failures) == ("p95", "p99", 1)
    assert GateCriteria.for_post_deployment(prod) == replace(gate, tolerated_failures=0)


def test_an_slo_looser_than_a_threshold_never_loosens_it():
    thresholds = GateCriteria(max_error_rate=0.005, max_latency_ms=300, min_success_rate=0.9999, min_requests=50)
    merged = with_slo(thresholds, SLO)
    assert (merged.max_error_rate, merged.max_latency_ms, merged.min_success_rate, merged.max_p99_ms) == (
        0.005, 300, 0.9999, 1000,
    )


def test_enforce_in_gates_false_keeps_gates_on_thresholds_but_post_deployment_on_the_slo(prod):
    relaxed = replace(prod, slo=replace(prod.slo, enforce_in_gates=False))
    gate = GateCriteria.for_gate(relaxed)
    assert (gate.max_error_rate, gate.max_latency_ms, gate.min_success_rate, gate.max_p99_ms) == (0.05, 1000, 0.95, None)
    assert GateCriteria.for_post_deployment(relaxed).max_p99_ms == 1000


def test_environments_without_an_slo_judge_thresholds_only():
    local = load_config().environment("local")
    assert local.slo is None
    assert GateCriteria.for_gate(local) == GateCriteria.from_environment(local)
    assert GateCriteria.for_post_deployment(local).max_p99_ms is None
    assert GateCriteria.for_gate(local).p99_statistic == "Maximum"  # moto serves no percentiles


@pytest.mark.parametrize(
    ("w", "verdict", "reason"),
    [
        (window(errors=50, p95=300, p99=800), PASS, None),  # 0.5 % errors, P95 300, P99 800: within the SLO
        (window(errors=50, p95=300, p99=1000), FAIL, "p99 latency 1000 ms is not below the maximum 1000 ms"),
        (window(errors=50, p95=300, p99=1400), FAIL, "p99 latency 1400 ms is not below the maximum 1000 ms"),
        (window(errors=50, p95=700, p99=900), FAIL, "p95 latency 700 ms is not below the maximum 500 ms"),
        (window(errors=150, p95=300, p99=800), FAIL, "error rate 1.5% is not below the maximum 1.0%"),
        (window(requests=10_000, errors=0, p95=300, p99=None), INCONCLUSIVE, "no p99 latency datapoints in the window"),
    ],
)
def test_production_post_deployment_verdicts(prod, w, verdict, reason):
    criteria = replace(GateCriteria.for_post_deployment(prod), min_success_rate=0.99)
    e = evaluate(100, w, criteria)
    assert e.verdict == verdict, e.reasons
    if reason:
        assert reason in e.reasons, e.reasons


def test_availability_is_judged_and_p99_is_in_the_summary_and_record(prod):
    # 0.5 % errors: within the 1 % error SLO, but availability 99.5 % is not above 99.9 %
    e = evaluate(100, window(errors=50, p95=300, p99=800), GateCriteria.for_post_deployment(prod))
    assert e.verdict == FAIL
    assert e.reasons == ("success rate 99.5% is not above the minimum 99.9%",)
    assert e.summary == "100%: 10000 req, error 0.5% (max 1.0%), p95 300 ms, p99 800 ms (max 1000 ms) -> fail"
    record = e.to_dict()
    assert (record["p99_ms"], record["max_p99_ms"], record["p99_statistic"]) == (800, 1000, "p99")


def test_p99_only_breach_fails_a_gate_that_thresholds_alone_would_pass(prod):
    w = window(errors=0, p95=400, p99=1200)
    assert evaluate(10, w, GateCriteria.from_environment(prod)).verdict == PASS
    gated = evaluate(10, w, GateCriteria.for_gate(prod))
    assert gated.verdict == FAIL and gated.reasons == ("p99 latency 1200 ms is not below the maximum 1000 ms",)


def test_local_p99_statistic_is_named_in_the_reason():
    local = load_config().environment("local")
    criteria = with_slo(GateCriteria.from_environment(local), SLO)
    e = evaluate(10, window(requests=100, p95=120, p99=1500), criteria)
    assert "p99 (Maximum) latency 1500 ms is not below the maximum 1000 ms" in e.reasons


def test_p99_query_shape_with_stubber(prod):
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    end = start + timedelta(minutes=5)
    dims = [
        {"Name": "LoadBalancer", "Value": "app/latticedb-production-alb/50dc6c495c0c9188"},
        {"Name": "TargetGroup", "Value": "targetgroup/latticedb-production-green/73e2d6bc24d8a067"},
    ]

    def query(qid, name, stat):
        metric = {"Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims}
        return {"Id": qid, "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}}

    expected = {
        "MetricDataQueries": [
            query("requests", "RequestCount", "Sum"),
            query("errors", "HTTPCode_Target_5XX_Count", "Sum"),
            query("latency", "TargetResponseTime", "p95"),
            query("latency_p99", "TargetResponseTime", "p99"),
        ],
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    t1, t2 = start + timedelta(minutes=1), start + timedelta(minutes=2)
    response = {
        "MetricDataResults": [
            {"Id": "requests", "Timestamps": [t1, t2], "Values": [5000.0, 5000.0], "StatusCode": "Complete"},
            {"Id": "errors", "Timestamps": [t1], "Values": [5.0], "StatusCode": "Complete"},
            {"Id": "latency", "Timestamps": [t1, t2], "Values": [0.30, 0.42], "StatusCode": "Complete"},
            {"Id": "latency_p99", "Timestamps": [t1, t2], "Values": [0.95, 1.25], "StatusCode": "Complete"},
        ],
    }
    criteria = GateCriteria.for_gate(prod)
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", response, expected)
        w = MetricsClient(prod, client=client).target_group_window(
            target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end,
            statistic=criteria.latency_statistic, period=60, p99_statistic=criteria.p99_statistic,
        )
        stub.assert_no_pending_responses()
    assert (w.requests, w.errors_5xx) == (10_000.0, 5.0)
    assert w.latency_ms == pytest.approx(420.0) and w.p99_ms == pytest.approx(1250.0)
    e = evaluate(10, w, criteria)
    assert e.verdict == FAIL and e.reasons == ("p99 latency 1250 ms is not below the maximum 1000 ms",)
