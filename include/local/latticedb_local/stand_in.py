"""The stand-in LatticeDB service: /health reports the version ECS really runs behind a listener.

Two ports: the production listener (service port) and the test listener (test port, the idle
colour for blue/green smoke tests). The service port also carries the /_local/ control API of its
environment (each environment of the stack has its own service port, so its own control API):

    GET    /_local/status   readiness, endpoints, names created by the bootstrap, faults
    POST   /_local/reset    this environment (only) back to its freshly bootstrapped state
    GET    /_local/faults   current fault toggles
    POST   /_local/faults   {"slack_down": true, "slack_mode": "500"|"close", "health_down": true, "test_health_down": true,
                                      "metrics_paused": true}
    DELETE /_local/faults   clear all faults
"""

from __future__ import annotations

import logging
import random

from .http_util import JsonHandler, Server

log = logging.getLogger(__name__)

POOL_MAX = 20


def health_payload(runtime, listener: str) -> tuple[int, dict]:
    """What GET /health answers behind `listener` ("production" or "test")."""
    if runtime.faults.get("health_down"):
        return 503, {"status": "unavailable", "reason": "fault injected: health_down"}
    if listener == "test" and runtime.faults.get("test_health_down"):
        return 503, {"status": "unavailable", "reason": "fault injected: test_health_down (test listener only)"}
    slots = runtime.slots(listener)
    slot = runtime.router.pick(slots)
    if slot is None or not slot.serving:
        where = slot.target_group_name if slot else "no target group with weight"
        return 503, {"status": "unavailable", "reason": f"no healthy targets ({where})"}
    active = min(POOL_MAX, max(1, int(random.gauss(6, 2))))
    return 200, {
        "status": "ok",
        "version": slot.tag,
        "image": slot.image,
        "connection_pool": {"active": active, "idle": POOL_MAX - active, "max": POOL_MAX, "healthy": True},
        "service": slot.service,
        "target_group": slot.target_group_name,
        "task_definition": slot.task_definition,
    }


def make_listener_server(runtime, name: str, host: str, port: int, listener: str, control: bool) -> Server:
    class Handler(JsonHandler):
        def do_GET(self):
            if self.route == "/health":
                try:
                    return self.send(*health_payload(runtime, listener))
                except Exception as exc:  # moto mid-reset, say: the service is unavailable, not broken
                    log.warning("health failed: %s", exc)
                    return self.send(503, {"status": "unavailable", "reason": str(exc)})
            if control and self.route == "/_local/status":
                return self.send(200, runtime.status())
            if control and self.route == "/_local/faults":
                return self.send(200, runtime.faults.snapshot())
            self.send(404, {"error": f"no route {self.route}"})

        def do_POST(self):
            if not control:
                return self.send(404, {"error": f"no route {self.route}"})
            try:
                if self.route == "/_local/reset":
                    self.body()
                    return self.send(200, runtime.reset())
                if self.route == "/_local/faults":
                    return self.send(200, runtime.faults.update(self.json_body()))
            except ValueError as exc:
                return self.send(400, {"error": str(exc)})
            self.send(404, {"error": f"no route {self.route}"})

        def do_DELETE(self):
            if control and self.route == "/_local/faults":
                return self.send(200, runtime.faults.clear())
            self.send(404, {"error": f"no route {self.route}"})

    return Server(name, host, port, Handler)
