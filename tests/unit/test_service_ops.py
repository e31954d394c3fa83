"""latticedb_deploy.service_ops: request validation, capacity and the last deployment (pure)."""

from __future__ import annotations

import pytest

from latticedb_deploy.service_ops import RequestError, capacity_problem, last_deployment, parse_request


@pytest.mark.parametrize("action,count,reason,fragment", [
    ("reboot", None, "x" * 5, "unknown action"),
    ("scale", None, "load", "needs desired_count"),
    ("scale", 0, "load", "out of range"),
    ("scale", "three", "load", "whole number"),
    ("restart", None, None, "needs a reason"),
])
def test_bad_requests_are_refused_with_the_reason(action, count, reason, fragment):
    with pytest.raises(RequestError, match=fragment):
        parse_request(action, count, reason)


def test_good_requests():
    assert parse_request("status", None, None).changes is False
    assert parse_request("scale", "3", "load").desired_count == 3
    assert parse_request("restart", None, "stuck").action == "restart"


def test_capacity():
    problem, data = capacity_problem(action="scale", live_desired=2, new_desired=21, other_tasks=0, max_tasks=20)
    assert problem and "21 tasks at peak" in problem and data["peak_tasks"] == 21
    assert capacity_problem(action="scale", live_desired=2, new_desired=3, other_tasks=2, max_tasks=20)[0] is None
    # a restart runs twice the desired count for a moment
    assert capacity_problem(action="restart", live_desired=6, new_desired=None, other_tasks=0, max_tasks=10)[0]
    assert capacity_problem(action="restart", live_desired=5, new_desired=None, other_tasks=0, max_tasks=10)[0] is None


LOG = """# LatticeDB Deployment Log

## Deployment 2026-11-01

- **Version**: v1.0.0
- **Strategy**: Canary
- **Environment**: local

## Deployment 2026-11-02

- **Version**: v2.0.0
- **Strategy**: Rolling
- **Environment**: staging
"""


def test_last_deployment_of_the_environment():
    assert last_deployment(LOG, "local") == {"date": "2026-11-01", "Version": "v1.0.0", "Strategy": "Canary", "Environment": "local"}
    assert last_deployment(LOG, "staging")["Version"] == "v2.0.0"
    assert last_deployment(LOG, "production") is None
    assert last_deployment("", "local") is None
