"""Wires the pieces into one running local stack of one or more environments, and resets each alone.

Shared by every hosted environment: moto's backends (one process), the ECS emulator, the traffic
simulator and the image resolver. Each environment (`local`, `local-2`, ...) has its own AWS
resources (cluster, services, load balancer, listeners, target groups, ECR repository, alarms,
lock items), its own four ports (moto endpoint, stand-in service, test listener, Slack sink) and its
own faults: a fault set through an environment's control API only touches requests that arrive on
that environment's ports, and what the simulator publishes for that environment's target groups.
"""

from __future__ import annotations

import logging
import threading
import time

from .bootstrap import Topology, bootstrap
from .ecs_emulator import EcsEmulator
from .faults import Faults
from .images import ImageResolver
from .moto_server import MotoServer
from .routing import Router
from .scenarios import load_scenarios
from .settings import EnvPorts, Settings, local_environment
from .simulator import TrafficSimulator
from .slack_sink import SlackSink
from .stand_in import make_listener_server

log = logging.getLogger(__name__)


class HostedEnvironment:
    """One environment of the stack: its names (from the config), ports, faults, topology and servers."""

    def __init__(self, runtime: LocalRuntime, ports: EnvPorts):
        self.runtime = runtime
        self.ports = ports
        self.name = ports.name
        self.env = local_environment(ports.name)
        self.lock = runtime.lock
        self.faults = Faults(ports.name)
        self.topology: Topology | None = None
        self.ready = False
        host = ports.host
        self.moto = MotoServer(host, ports.moto_port, self.env.region, faults=self.faults, environment=self.name)
        self.resolver = runtime.resolver
        self.router = Router(self.moto, self.env, runtime.scenarios, self.resolver)
        self.slack = SlackSink(host, ports.slack_port, self.faults)
        self.servers = [
            make_listener_server(self, f"{self.name}-service", host, ports.service_port, "production", control=True),
            make_listener_server(self, f"{self.name}-test-listener", host, ports.test_port, "test", control=False),
            self.slack.server,
        ]

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def start_servers(self) -> None:
        self.moto.start()
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.moto.stop()

    def bootstrap(self) -> None:
        started = time.time()
        self.topology = bootstrap(self.env, self.runtime.scenarios, self.moto)
        self.runtime.emulator.adopt_steady_state(self.env.cluster)
        self.ready = True
        log.info("%s: bootstrapped in %.2fs", self.name, time.time() - started)

    def reset(self) -> dict:
        """This environment back to its bootstrapped state: its AWS resources deleted from moto and created
        again, its emulator state, Slack messages and faults cleared. Other environments go on untouched."""
        started = time.time()
        emulator = self.runtime.emulator
        with self.lock:  # nothing may edit moto while this environment's resources are removed
            self.ready = False
            topo, self.topology = self.topology, None
            emulator.pause(self.env.cluster)
            shared = any(h is not self and h.env.ecr_repository == self.env.ecr_repository for h in self.runtime.hosted)
            removed = self.moto.remove_environment(self.env, topo, keep_repository=shared)
            emulator.forget(removed["service_arns"], removed["target_group_arns"])
            self.router.clear()
            self.resolver.clear()
            self.slack.clear()
            self.faults.clear()
        # Not under the lock: bootstrap's create_service calls re-enter the emulator from moto's threads.
        try:
            self.bootstrap()
        finally:
            emulator.resume(self.env.cluster)
        took = round(time.time() - started, 3)
        log.info("%s: reset in %.3fs", self.name, took)
        return {"reset": True, "environment": self.name, "seconds": took}

    def slots(self, listener: str):
        topo = self.topology
        if topo is None:  # resetting
            return []
        arn = topo.listener_arn if listener == "production" else topo.test_listener_arn
        return self.router.slots(arn)

    def status(self) -> dict:
        s, p = self.settings, self.ports
        return {
            "ready": self.ready and self.runtime.ready,
            "environment": self.name,
            "environments": {e.name: e.ports.as_dict() for e in self.runtime.hosted},
            "uptime_seconds": round(time.time() - self.runtime.started_at, 1),
            "endpoints": {
                "moto": p.moto_url,
                "service": p.service_url,
                "test_listener": p.test_url,
                "slack_webhook": f"{p.slack_url}/services/T000/B000/XXXX",
                "slack_messages": f"{p.slack_url}/messages",
            },
            "region": self.env.region,
            "topology": self.topology.as_dict() if self.topology else None,
            "faults": self.faults.snapshot(),
            "timings": {
                "rollout_seconds": s.rollout_seconds,
                "tick_seconds": s.tick_seconds,
                "rps": s.rps,
                "failed_retention_seconds": s.failed_retention_seconds,
            },
        }


class LocalRuntime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.scenarios = load_scenarios(settings.scenario_file)
        self.lock = threading.RLock()  # held while moto's state is replaced or edited by us
        self.ready = False
        self.started_at = time.time()
        first = settings.environments[0]
        region = local_environment(first.name).region
        self._internal = MotoServer(first.host, first.moto_port, region, environment=first.name, serve=False)
        self.resolver = ImageResolver(self._internal.client("ecr"))
        self.emulator = EcsEmulator(self._internal, self.scenarios, self.resolver, settings, self.lock)
        self.hosted = [HostedEnvironment(self, ports) for ports in settings.environments]
        self.simulator = TrafficSimulator(self, settings)

    def start(self) -> None:
        for hosted in self.hosted:
            hosted.start_servers()
        for hosted in self.hosted:
            hosted.bootstrap()
        self.emulator.start()
        self.simulator.start()
        self.ready = True
        log.info("local stack ready: %s", ", ".join(h.name for h in self.hosted))

    def stop(self) -> None:
        self.emulator.stop()
        self.simulator.stop()
        for hosted in self.hosted:
            hosted.stop()
