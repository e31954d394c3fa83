"""moto in server mode, in this process, so the emulator can reach its backends directly.

Airflow and the bootstrap talk to moto over HTTP like any AWS client; the ECS emulator
edits moto's in-memory objects, which is the only way to make ECS deployments move.
"""

from __future__ import annotations

import logging

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    ThreadedMotoServer,
    create_backend_app,
)
from werkzeug.serving import make_server

from .aws_faults import INTERNAL_AGENT, AwsFaultMiddleware
from .settings import ACCOUNT_ID, CREDENTIALS

log = logging.getLogger(__name__)

# The environment's own clients are marked so that injected AWS faults (moto_down, throttle) spare them.
_BOTO_CONFIG = Config(
    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30, user_agent_extra=INTERNAL_AGENT
)


class _FaultableMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose app sits behind the AWS fault middleware."""

    def __init__(self, *args, faults=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._faults = faults

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        if self._faults is not None:
            app = AwsFaultMiddleware(app, self._faults)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoServer:
    def __init__(self, host: str, port: int, region: str, faults=None):
        self.url = f"http://{host}:{port}"
        self.region = region
        self._server = _FaultableMotoServer(ip_address=host, port=port, verbose=False, faults=faults)

    def start(self) -> None:
        self._server.start()
        log.info("moto listening on %s", self.url)

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str):
        """A boto3 client against this moto, as any AWS SDK user would see it."""
        return boto3.client(service, endpoint_url=self.url, region_name=self.region, config=_BOTO_CONFIG, **CREDENTIALS)

    @staticmethod
    def reset() -> None:
        """Forget every resource in every backend (the same as POST /moto-api/reset)."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def ecs_backend(self):
        from moto.ecs.models import ecs_backends

        return ecs_backends[ACCOUNT_ID][self.region]

    def ecr_backend(self):
        from moto.ecr.models import ecr_backends

        return ecr_backends[ACCOUNT_ID][self.region]

    def cloudwatch_backend(self):
        from moto.cloudwatch.models import cloudwatch_backends

        return cloudwatch_backends[ACCOUNT_ID][self.region]

    def elbv2_backend(self):
        from moto.elbv2.models import elbv2_backends

        return elbv2_backends[ACCOUNT_ID][self.region]
