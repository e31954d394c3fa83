"""The local environment's ECS reads lag behind its writes, as ECS's do (latticedb_local.consistency)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include" / "local"))

from latticedb_local.consistency import StaleReads, from_product  # noqa: E402


class Service:
    def __init__(self, td):
        self.task_definition = td


def test_a_read_within_the_lag_sees_the_service_as_it_was_before_the_update():
    reads = StaleReads(1.0)
    live = Service("f:1")
    reads.before_update("arn:svc", live, now=100.0)
    live.task_definition = "f:2"  # the update
    assert reads.view("arn:svc", live, now=100.5).task_definition == "f:1"
    assert reads.view("arn:svc", live, now=101.5) is live  # caught up
    assert reads.view("arn:other", live, now=100.5) is live


def test_a_second_update_within_the_lag_keeps_the_oldest_copy():
    reads = StaleReads(1.0)
    live = Service("f:1")
    reads.before_update("arn:svc", live, now=100.0)
    live.task_definition = "f:2"
    reads.before_update("arn:svc", live, now=100.5)
    live.task_definition = "f:3"
    assert reads.view("arn:svc", live, now=101.2).task_definition == "f:1"


def test_no_lag_no_copies_and_only_the_products_reads_lag():
    reads = StaleReads(0.0)
    live = Service("f:1")
    reads.before_update("arn:svc", live, now=100.0)
    assert reads.view("arn:svc", live, now=100.1) is live
    assert from_product("Boto3/1.40 md/Botocore Airflow/3.3.2 AmPP/9.0 Caller/UpdateServiceOperator")
    assert not from_product("Boto3/1.40 md/Botocore latticedb-local-internal")


def test_the_copy_shares_what_it_is_told_to():
    """moto's Service holds its whole ECS backend; the copy keeps a reference to it, not a copy."""
    backend = {"clusters": list(range(1000))}
    live = Service("f:1")
    live._backend = backend
    reads = StaleReads(1.0)
    reads.before_update("arn:svc", live, now=100.0, shared=(backend,))
    live.task_definition = "f:2"
    seen = reads.view("arn:svc", live, now=100.5)
    assert seen.task_definition == "f:1" and seen is not live and seen._backend is backend
