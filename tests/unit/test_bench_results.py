"""`make bench` keeps one flat results file: every benchmark merges its figures into it."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.common import RESULTS, ROOT, merge_results


def test_the_default_file_is_artifacts_bench_results_json():
    assert RESULTS == ROOT / "artifacts" / "bench" / "results.json"


def test_two_benchmarks_keys_are_both_kept(tmp_path):
    path = tmp_path / "bench" / "results.json"
    merge_results({"parse.max_first_ratio": 12.5, "parse.max_reparse_ratio": 6.1}, path)
    merge_results({"overhead.canary.ratio_excl_waits": 3.9, "overhead.canary.tasks_run": 68}, path)
    merge_results({"parse.max_first_ratio": 11.0}, path)  # one benchmark run again, alone

    results = json.loads(path.read_text())
    assert results == {"parse.max_first_ratio": 11.0, "parse.max_reparse_ratio": 6.1,
                       "overhead.canary.ratio_excl_waits": 3.9, "overhead.canary.tasks_run": 68}
    assert all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in results.values())
    assert not list(path.parent.glob("*.tmp"))


def test_an_unreadable_file_is_started_again(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json")
    merge_results({"rollback.median_poll_intervals": 1.4}, path)
    assert json.loads(path.read_text()) == {"rollback.median_poll_intervals": 1.4}


@pytest.mark.parametrize("value", ["1.4", None, True, {"a": 1}, float("nan")])
def test_only_numbers_are_written(tmp_path, value):
    path = tmp_path / "results.json"
    with pytest.raises(ValueError, match="numbers only"):
        merge_results({"slots.mean_running_while_waiting": value}, path)
    assert not path.exists()


def test_aws_calls_are_counted_by_service_and_operation_and_the_client_restored_after():
    import boto3
    import botocore.client
    from moto import mock_aws

    from harness.aws_calls import AwsCallCounter

    original = botocore.client.BaseClient._make_api_call
    with mock_aws():
        elb = boto3.client("elbv2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        with AwsCallCounter() as calls:
            elb.describe_load_balancers()
            elb.describe_target_groups()
            ddb.list_tables()
        ddb.list_tables()  # after the block: not counted
    assert calls.total == 3
    assert calls.by_service() == {"dynamodb": 1, "elbv2": 2}
    assert calls.calls[("elbv2", "DescribeTargetGroups")] == 1
    assert botocore.client.BaseClient._make_api_call is original
