"""boto_client: every client is built from its own Airflow connection, while the botocore models are
read once per process (they were most of a task's CPU), and the user agent still names the caller."""

import dataclasses
import json
from pathlib import Path

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import load_config

ROOT = Path(__file__).resolve().parents[2]
LOCAL = load_config(ROOT / "include" / "config" / "latticedb.yaml").environment("local")


def _conn(monkeypatch, conn_id: str, key: str, port: int):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "login": key, "password": f"{key}-secret",
        "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{port}"},
    }))
    return dataclasses.replace(LOCAL, aws_conn_id=conn_id)


def test_clients_keep_their_own_connection_and_share_one_model_loader(monkeypatch):
    a = boto_client(_conn(monkeypatch, "t_aws_a", "AKIAAAAA", 5101), "ecs")
    b = boto_client(_conn(monkeypatch, "t_aws_b", "AKIABBBB", 5102), "ecs")
    c = boto_client(_conn(monkeypatch, "t_aws_a", "AKIAAAAA", 5101), "elbv2")
    assert (a.meta.endpoint_url, b.meta.endpoint_url) == ("http://127.0.0.1:5101", "http://127.0.0.1:5102")
    assert a._request_signer._credentials.access_key == "AKIAAAAA"
    assert b._request_signer._credentials.access_key == "AKIABBBB"
    assert a._loader is b._loader is c._loader
    # A changed connection is read again: nothing about the client itself is cached.
    d = boto_client(_conn(monkeypatch, "t_aws_a", "AKIACCCC", 5103), "ecs")
    assert (d.meta.endpoint_url, d._request_signer._credentials.access_key) == ("http://127.0.0.1:5103", "AKIACCCC")


def test_the_user_agent_names_the_operator_that_made_the_call(monkeypatch):
    env = _conn(monkeypatch, "t_aws_ua", "AKIAUUUU", 5104)

    class ShiftTrafficLikeOperator:
        def execute(self):
            return boto_client(env, "elbv2")

    assert "Caller/ShiftTrafficLikeOperator" in ShiftTrafficLikeOperator().execute().meta.config.user_agent_extra
    assert "Caller/Unknown" in boto_client(env, "elbv2").meta.config.user_agent_extra


def test_a_client_is_reused_for_the_same_connection_and_caller_only(monkeypatch):
    env = _conn(monkeypatch, "t_aws_reuse", "AKIARRRR", 5105)
    first, again = boto_client(env, "ecs"), boto_client(env, "ecs")
    assert first is again  # a trigger's every poll, a task's every call: one client

    class SomeOperator:
        def execute(self):
            return boto_client(env, "ecs")

    theirs = SomeOperator().execute()
    assert theirs is not first and "Caller/SomeOperator" in theirs.meta.config.user_agent_extra
    assert boto_client(env, "elbv2") is not first
    rotated = _conn(monkeypatch, "t_aws_reuse", "AKIASSSS", 5105)  # the secret rotated: a new client at once
    assert boto_client(rotated, "ecs")._request_signer._credentials.access_key == "AKIASSSS"


def test_a_new_client_reads_its_connection_once_and_a_reused_one_once(monkeypatch):
    """Each connection lookup is a request to the supervisor (and on to the API server): a new client's
    fingerprint and its hook's credentials come from one lookup; a reused client still looks once, so a
    rotated secret is seen at the next call."""
    from airflow.sdk.bases.hook import BaseHook

    env = _conn(monkeypatch, "t_aws_lookups", "AKIALLLL", 5106)
    lookups = []
    original = BaseHook.get_connection.__func__

    def counted(cls, conn_id):
        lookups.append(conn_id)
        return original(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counted))
    first = boto_client(env, "dynamodb")
    assert lookups == ["t_aws_lookups"] and first._request_signer._credentials.access_key == "AKIALLLL"
    assert boto_client(env, "dynamodb") is first and len(lookups) == 2
