"""Thin clients over the Amazon provider's AwsBaseHook: one AWS concept per module.

Each client takes an `Environment` (names, region, connection id) and hides the
boto3 call shapes, so operators and checks read as deployment steps.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment

_LOADER_LOCK = threading.Lock()
_shared_loader: Any = None


_CLIENTS_LOCK = threading.Lock()
_clients: dict[tuple, tuple[float, Any]] = {}
CLIENT_REUSE_SECONDS = 300.0


def boto_client(env: Environment, service: str) -> Any:
    """A boto3 client for `service` built from the environment's Airflow AWS connection.

    A client is reused within the process for CLIENT_REUSE_SECONDS while the connection (its
    conn_type, login, secret, host and extras, compared by digest) and the calling operator (the
    user agent's Caller/) are the same: a trigger polling every 2 s, or a task making ten calls,
    built a client each time (about 12 ms of CPU each). A changed connection gets a new client at
    once; boto3 clients are thread-safe, and refreshable (assumed-role) credentials refresh inside
    the client as before.
    """
    hook = _hook_class()(aws_conn_id=env.aws_conn_id, client_type=service, region_name=env.region)
    try:
        key = (env.aws_conn_id, service, env.region, _connection_digest(hook), _caller_for_user_agent())
    except Exception:  # noqa: BLE001 - no connection to fingerprint: let the hook say what is wrong
        return hook.conn
    now = time.monotonic()
    with _CLIENTS_LOCK:
        hit = _clients.get(key)
        if hit is not None and now - hit[0] < CLIENT_REUSE_SECONDS:
            return hit[1]
    client = hook.conn
    with _CLIENTS_LOCK:
        _clients[key] = (now, client)
        if len(_clients) > 256:  # many connections or callers: forget the oldest
            for old in sorted(_clients, key=lambda k: _clients[k][0])[:64]:
                del _clients[old]
    return client


class KeptForAWait:
    """Clients a trigger keeps across the polls of one wait (each new one is a connection lookup, in a
    triggerer a request to its supervisor): built on first use, again after CLIENT_REUSE_SECONDS as
    `boto_client`'s own reuse is, and again after `drop()` (a poll that could not read AWS), so an
    edited or rotated connection is read within that time."""

    def __init__(self) -> None:
        self._value: Any = None
        self._built = 0.0

    def get(self, build: Any) -> Any:
        if self._value is None or time.monotonic() - self._built >= CLIENT_REUSE_SECONDS:
            self._value, self._built = build(), time.monotonic()
        return self._value

    def drop(self) -> None:
        self._value = None


def _connection_digest(hook: Any) -> str:
    conn = hook.get_connection(hook.aws_conn_id)
    parts = [conn.conn_type, conn.login, conn.password, conn.host, conn.schema, conn.port, conn.extra]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _caller_for_user_agent() -> str:
    caller = _calling_class("execute")
    if caller == "BaseSensorOperator":
        caller = _calling_class("poke")
    return caller or "Unknown"


def _share_loader(botocore_session: Any) -> None:
    """Give a new botocore session the process's one data loader.

    Every AwsBaseHook builds a fresh boto3 session, and each fresh session re-reads and re-parses
    botocore's JSON models (endpoints, service model, endpoint rules) before its first client: that
    was over half the CPU of a deployment task and of every trigger poll. The models are read-only
    data, so one loader (with its cache) serves every session; credentials, endpoint, region and
    config still come from the connection, per hook, exactly as before.
    """
    global _shared_loader
    with _LOADER_LOCK:
        if _shared_loader is None:
            _shared_loader = botocore_session.get_component("data_loader")
            return
        loader = _shared_loader
    botocore_session.register_component("data_loader", loader)


def _calling_class(function_name: str) -> str | None:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function_name and "self" in frame.f_locals:
            return type(frame.f_locals["self"]).__name__
        frame = frame.f_back
    return None


@cache
def _hook_class() -> type:
    """AwsBaseHook whose boto3 sessions share one botocore data loader (built on first use: no
    provider import at DAG parse time)."""
    import boto3
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    class SharedModelsAwsHook(AwsBaseHook):
        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            """One lookup per hook (each is a request to the supervisor, and from there to the API server):
            boto_client's fingerprint and the hook's own conn_config read the same connection, a moment apart."""
            fetched = self.__dict__.get("_fetched_connection")
            if fetched is None or fetched[0] != conn_id:
                fetched = (conn_id, super().get_connection(conn_id))
                self.__dict__["_fetched_connection"] = fetched
            return fetched[1]

        def get_session(self, region_name: str | None = None, deferrable: bool = False):
            session = super().get_session(region_name=region_name, deferrable=deferrable)
            if isinstance(session, boto3.session.Session):
                _share_loader(session._session)
            return session

        def _get_caller(self, target_function_name: str = "execute") -> str:
            """The provider's answer for the user agent's Caller/ (the class whose `execute`, or a
            sensor's `poke`, made this call), found by walking frames: the provider's inspect.stack()
            reads every frame's source file and was a seventh of a task's CPU."""
            if target_function_name == "execute":
                return _caller_for_user_agent()
            return _calling_class(target_function_name) or "Unknown"

    return SharedModelsAwsHook
