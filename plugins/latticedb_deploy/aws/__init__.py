"""Thin clients over the Amazon provider's AwsBaseHook: one AWS concept per module.

Each client takes an `Environment` (names, region, connection id) and hides the
boto3 call shapes, so operators and checks read as deployment steps.
"""

from __future__ import annotations

import sys
import threading
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment

_LOADER_LOCK = threading.Lock()
_shared_loader: Any = None


def boto_client(env: Environment, service: str) -> Any:
    """A boto3 client for `service` built from the environment's Airflow AWS connection."""
    return _hook_class()(aws_conn_id=env.aws_conn_id, client_type=service, region_name=env.region).conn


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
        def get_session(self, region_name: str | None = None, deferrable: bool = False):
            session = super().get_session(region_name=region_name, deferrable=deferrable)
            if isinstance(session, boto3.session.Session):
                _share_loader(session._session)
            return session

        def _get_caller(self, target_function_name: str = "execute") -> str:
            """The provider's answer for the user agent's Caller/ (the class whose `execute`, or a
            sensor's `poke`, made this call), found by walking frames: the provider's inspect.stack()
            reads every frame's source file and was a seventh of a task's CPU."""
            caller = _calling_class(target_function_name)
            if caller == "BaseSensorOperator":
                caller = _calling_class("poke")
            return caller or "Unknown"

    return SharedModelsAwsHook
