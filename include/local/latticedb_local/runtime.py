"""Wires the pieces into one running local environment, and knows how to reset it."""

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
from .settings import Settings, local_environment
from .simulator import TrafficSimulator
from .slack_sink import SlackSink
from .stand_in import make_listener_server

log = logging.getLogger(__name__)


class LocalRuntime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.env = local_environment()
        self.scenarios = load_scenarios(settings.scenario_file)
        self.lock = threading.RLock()  # held while moto's state is replaced or edited by us
        self.faults = Faults()
        self.topology: Topology | None = None
        self.ready = False
        self.started_at = time.time()
        host = settings.host
        self.moto = MotoServer(host, settings.moto_port, self.env.region, faults=self.faults)
        self.resolver = ImageResolver(self.moto.client("ecr"), self.env.ecr_repository)
        self.router = Router(self.moto, self.env, self.scenarios, self.resolver)
        self.emulator = EcsEmulator(self.moto, self.env, self.scenarios, self.resolver, settings, self.lock)
        self.simulator = TrafficSimulator(self, settings)
        self.slack = SlackSink(host, settings.slack_port, self.faults)
        self.servers = [
            make_listener_server(self, "service", host, settings.service_port, "production", control=True),
            make_listener_server(self, "test-listener", host, settings.test_port, "test", control=False),
            self.slack.server,
        ]

    def start(self) -> None:
        self.moto.start()
        for server in self.servers:
            server.start()
        self._bootstrap()
        self.emulator.start()
        self.simulator.start()
        self.ready = True
        log.info("local environment ready")

    def stop(self) -> None:
        self.emulator.stop()
        self.simulator.stop()
        for server in self.servers:
            server.stop()
        self.moto.stop()

    def _bootstrap(self) -> None:
        started = time.time()
        self.topology = bootstrap(self.env, self.scenarios, self.moto)
        self.emulator.adopt_steady_state()
        log.info("bootstrapped in %.2fs", time.time() - started)

    def reset(self) -> dict:
        """moto wiped and re-bootstrapped, emulator state, Slack messages and faults cleared."""
        started = time.time()
        with self.lock:  # nothing may edit moto while it is wiped
            self.ready = False
            self.topology = None
            self.emulator.pause()
            self.moto.reset()
            self.emulator.clear()
            self.router.clear()
            self.resolver.clear()
            self.slack.clear()
            self.faults.clear()
        # Not under the lock: bootstrap's create_service calls re-enter the emulator from moto's threads.
        try:
            self._bootstrap()
        finally:
            self.emulator.resume()
        self.ready = True
        took = round(time.time() - started, 3)
        log.info("reset in %.3fs", took)
        return {"reset": True, "seconds": took}

    def slots(self, listener: str):
        topo = self.topology
        if topo is None:  # resetting
            return []
        arn = topo.listener_arn if listener == "production" else topo.test_listener_arn
        return self.router.slots(arn)

    def status(self) -> dict:
        s = self.settings
        return {
            "ready": self.ready,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "endpoints": {
                "moto": s.moto_url,
                "service": s.service_url,
                "test_listener": s.test_url,
                "slack_webhook": f"{s.slack_url}/services/T000/B000/XXXX",
                "slack_messages": f"{s.slack_url}/messages",
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
