"""moto in server mode, in this process, so the emulator can reach its backends directly.

Airflow and the bootstrap talk to moto over HTTP like any AWS client; the ECS emulator
edits moto's in-memory objects, which is the only way to make ECS deployments move.
"""

from __future__ import annotations

import logging
import threading

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


def _read_moto_modules_once() -> None:
    """moto's dispatcher lists its package directory (os.listdir, then isdir per entry) on every request
    to match a host to a backend; a profile of the local stack put that at about a sixth of its CPU.
    The list is a constant of the installed package: read it once."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "read_once", False):
        return
    names = frozenset(backends.list_of_moto_modules())

    def list_of_moto_modules() -> frozenset[str]:
        return names

    list_of_moto_modules.read_once = True
    backends.list_of_moto_modules = list_of_moto_modules


class _FaultableMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose app sits behind the AWS fault middleware."""

    def __init__(self, *args, faults=None, environment: str = "local", **kwargs):
        super().__init__(*args, **kwargs)
        self._faults = faults
        self._environment = environment

    def _server_entry(self) -> None:
        _read_moto_modules_once()
        app = DomainDispatcherApplication(create_backend_app)
        if self._faults is not None:
            app = AwsFaultMiddleware(app, self._faults, self._environment)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoServer:
    """One environment's AWS endpoint. Every environment's endpoint serves the same moto backends (this
    process's), behind that environment's fault middleware; `serve=False` only makes clients."""

    def __init__(self, host: str, port: int, region: str, faults=None, environment: str = "local", serve: bool = True):
        self.url = f"http://{host}:{port}"
        self.region = region
        self._clients: dict[str, object] = {}
        self._clients_lock = threading.Lock()
        self.environment = environment
        self._server = (
            _FaultableMotoServer(ip_address=host, port=port, verbose=False, faults=faults, environment=environment)
            if serve
            else None
        )

    def start(self) -> None:
        if self._server is not None:
            self._server.start()
            log.info("moto for %s listening on %s", self.environment, self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def remove_environment(self, env, topo, keep_repository: bool = False) -> dict:
        """Delete, straight from moto's backends, every AWS resource of one environment that its
        deployments can change (network and IAM-free pieces stay: the bootstrap finds them again):
        ECS cluster, services, tasks and task definition family (so revisions count from 1 again),
        load balancer with its listeners, target groups, ECR repository, alarms and the load balancer's
        metric data, and the environment's items in the lock table. The caller holds the world lock.
        A repository another hosted environment shares stays (`keep_repository`)."""
        ecs, elb, ecr, cw = self.ecs_backend(), self.elbv2_backend(), self.ecr_backend(), self.cloudwatch_backend()
        service_arns = [s.arn for k, s in list(ecs.services.items()) if s.cluster_name == env.cluster]
        for key in [k for k, s in ecs.services.items() if s.cluster_name == env.cluster]:
            del ecs.services[key]
        ecs.clusters.pop(env.cluster, None)
        ecs.tasks.pop(env.cluster, None)
        ecs.task_definitions.pop(env.task_family, None)
        lb_dims = set()
        for arn, lb in list(elb.load_balancers.items()):
            if lb.name == env.load_balancer.name:
                lb_dims.add(arn.split(":loadbalancer/", 1)[1])
                del elb.load_balancers[arn]
        tg_names = {env.load_balancer.blue_target_group, env.load_balancer.green_target_group}
        tg_arns = [arn for arn, tg in elb.target_groups.items() if tg.name in tg_names]
        for arn in tg_arns:
            del elb.target_groups[arn]
        if not keep_repository:
            ecr.repositories.pop(env.ecr_repository, None)
        for name in [n for n in cw.alarms if env.alarm_prefix and n.startswith(env.alarm_prefix)]:
            del cw.alarms[name]
        if lb_dims:
            cw.metric_data = [
                d for d in cw.metric_data if not any(getattr(x, "value", None) in lb_dims for x in d.dimensions or [])
            ]
        self._remove_lock_items(env)
        return {"service_arns": service_arns, "target_group_arns": tg_arns}

    def _remove_lock_items(self, env) -> None:
        from moto.dynamodb.models import dynamodb_backends

        for name in (env.lock_table, env.history_table):  # both keyed by the environment's name
            table = dynamodb_backends[ACCOUNT_ID][self.region].tables.get(name)
            if table is None:
                continue
            for key in list(table.items):
                value = str(getattr(key, "value", key))
                if value == env.name or value.startswith(f"{env.name}#"):
                    table.items.pop(key, None)

    def client(self, service: str):
        """A boto3 client against this moto, as any AWS SDK user would see it. One per service, reused
        (boto3 clients are thread-safe): the simulator and router ask every second per environment, and
        building a client costs more CPU than the calls it makes."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service, endpoint_url=self.url, region_name=self.region, config=_BOTO_CONFIG, **CREDENTIALS
                )
            return self._clients[service]

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
