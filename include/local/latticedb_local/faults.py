"""Injected faults, toggled over HTTP by tests and demos to exercise the failure paths.

slack_down      the Slack sink fails every post (how: slack_mode)
slack_mode      "500" (answer HTTP 500) or "close" (drop the connection unanswered)
health_down     /health on both listeners answers 503
test_health_down /health answers 503 behind the test listener only (production's /health untouched):
                fails a smoke test of the idle/canary slot without touching production
metrics_paused  the traffic simulator publishes nothing (a "no data" window)
moto_down       the AWS endpoint drops every connection unanswered for a while; moto keeps all state.
                A number: down now for that many seconds. An object arms it on a request instead:
                {"seconds": 8, "on": "ModifyListener", "nth": 2, "when": "after"} goes down at the
                2nd ModifyListener; "after" applies that request and loses its response (the nasty
                case: the change happened, the client cannot know), "before" drops it unapplied.
throttle        chosen AWS operations answer ThrottlingException (HTTP 400, the service's protocol):
                {"operations": ["ModifyListener", "UpdateService"], "count": 2} throttles the first
                2 calls of each listed operation ("operations": ["*"] means every operation).
slot_errors     the traffic simulator answers this fraction of a target group's requests with 5xx,
                whatever image it runs: {"latticedb-local-green": 0.5}. Fails a gate, a bake or the
                post-deployment checks at a chosen moment (the failure matrix).
arm             set other faults when an AWS operation is called for the nth time (the call itself is
                served): {"on": "UpdateService", "nth": 2, "set": {"health_down": true}}. Makes a
                later step fail at a moment fixed by what the deployment does, not by a clock.
deny            one AWS operation answers AccessDeniedException (HTTP 400, not retried by the SDK) from
                its nth call on, until cleared: {"operation": "ModifyListener", "nth": 2}. Makes one
                chosen step of a deployment fail the way a real AWS error would (the failure matrix).

Only requests from outside the local environment are affected: its own clients (ECS emulator,
router, simulator) carry a marker in their User-Agent and always get through. What the AWS
faults did is counted under "aws_stats" (GET /_local/faults).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

DEFAULTS = {
    "slack_down": False,
    "slack_mode": "500",
    "health_down": False,
    "test_health_down": False,
    "metrics_paused": False,
    "moto_down": None,
    "throttle": None,
    "deny": None,
    "slot_errors": None,
    "arm": None,
}
_BOOLEANS = ("slack_down", "health_down", "test_health_down", "metrics_paused")


def _empty_stats() -> dict:
    return {"dropped": 0, "dropped_ops": [], "applied_then_dropped": [], "throttled": {}, "down_since": None,
            "down_until": None}


def _moto_down_spec(value) -> dict | None:
    if value in (None, False, 0):
        return None
    if isinstance(value, bool):
        raise ValueError("moto_down must be a number of seconds or an object, e.g. {\"seconds\": 8}")
    if isinstance(value, (int, float)):
        value = {"seconds": value}
    if not isinstance(value, dict):
        raise ValueError("moto_down must be a number of seconds or an object")
    unknown = sorted(set(value) - {"seconds", "on", "nth", "when"})
    if unknown:
        raise ValueError(f"moto_down: unknown key(s) {unknown}")
    seconds = value.get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        raise ValueError("moto_down.seconds must be a positive number")
    when = value.get("when", "before")
    if when not in ("before", "after"):
        raise ValueError("moto_down.when must be 'before' or 'after'")
    nth = value.get("nth", 1)
    if not isinstance(nth, int) or nth < 1:
        raise ValueError("moto_down.nth must be a positive integer")
    on = value.get("on")
    if on is not None and not isinstance(on, str):
        raise ValueError("moto_down.on must be an operation name, e.g. 'ModifyListener'")
    return {"seconds": float(seconds), "on": on, "nth": nth, "when": when}


def _slot_errors_spec(value) -> dict | None:
    if value in (None, False):
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
        for k, v in value.items()
    ):
        raise ValueError("slot_errors must map target group names to error fractions, e.g. {\"latticedb-local-green\": 0.5}")
    return {k: float(v) for k, v in value.items()}


def _deny_spec(value) -> dict | None:
    if value in (None, False):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("operation"), str):
        raise ValueError("deny must be {\"operation\": \"ModifyListener\", \"nth\": 1}")
    unknown = sorted(set(value) - {"operation", "nth"})
    if unknown:
        raise ValueError(f"deny: unknown key(s) {unknown}")
    nth = value.get("nth", 1)
    if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
        raise ValueError("deny.nth must be a positive integer")
    return {"operation": value["operation"], "nth": nth, "seen": 0, "denied": 0}


def _throttle_spec(value) -> dict | None:
    if value in (None, False):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("operations"), list) or not value["operations"]:
        raise ValueError("throttle must be {\"operations\": [\"ModifyListener\", ...], \"count\": N}")
    unknown = sorted(set(value) - {"operations", "count"})
    if unknown:
        raise ValueError(f"throttle: unknown key(s) {unknown}")
    count = value.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("throttle.count must be a positive integer")
    return {"operations": [str(op) for op in value["operations"]], "count": count}


class Faults:
    def __init__(self, environment: str = "local"):
        self.environment = environment  # named in the log lines of armed faults
        self._lock = threading.Lock()
        self._state = dict(DEFAULTS)
        self._stats = _empty_stats()
        self._seen: dict[str, int] = {}  # operation -> matching calls seen since the fault was set
        self._down_until = 0.0

    def snapshot(self) -> dict:
        with self._lock:
            return {**self._state, "aws_stats": self._stats_copy()}

    def _stats_copy(self) -> dict:
        s = dict(self._stats)
        for key in ("dropped_ops", "applied_then_dropped"):
            s[key] = list(s[key])
        s["throttled"] = dict(s["throttled"])
        return s

    def get(self, name: str):
        with self._lock:
            return self._state[name]

    def update(self, changes: dict) -> dict:
        parsed = self._parse(changes)
        with self._lock:
            return self._apply(parsed)

    def _parse(self, changes: dict) -> dict:
        unknown = sorted(set(changes) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(DEFAULTS)}")
        if "slack_mode" in changes and changes["slack_mode"] not in ("500", "close"):
            raise ValueError("slack_mode must be '500' or 'close'")
        for key in _BOOLEANS:
            if key in changes and not isinstance(changes[key], bool):
                raise ValueError(f"{key} must be true or false")
        parsed = dict(changes)
        if "moto_down" in changes:
            parsed["moto_down"] = _moto_down_spec(changes["moto_down"])
        if "throttle" in changes:
            parsed["throttle"] = _throttle_spec(changes["throttle"])
        if "deny" in changes:
            parsed["deny"] = _deny_spec(changes["deny"])
        if "slot_errors" in changes:
            parsed["slot_errors"] = _slot_errors_spec(changes["slot_errors"])
        if "arm" in changes:
            parsed["arm"] = self._arm_spec(changes["arm"])
        return parsed

    def _arm_spec(self, value) -> dict | None:
        if value in (None, False):
            return None
        if not isinstance(value, dict) or not isinstance(value.get("on"), str) or not isinstance(value.get("set"), dict):
            raise ValueError("arm must be {\"on\": \"UpdateService\", \"nth\": 2, \"set\": {\"health_down\": true}}")
        unknown = sorted(set(value) - {"on", "nth", "set"})
        if unknown:
            raise ValueError(f"arm: unknown key(s) {unknown}")
        nth = value.get("nth", 1)
        if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
            raise ValueError("arm.nth must be a positive integer")
        if "arm" in value["set"]:
            raise ValueError("arm.set cannot arm another fault")
        return {"on": value["on"], "nth": nth, "set": self._parse(value["set"]), "seen": 0}

    def _apply(self, parsed: dict) -> dict:
        """Apply parsed toggles; the caller holds self._lock."""
        self._state.update(parsed)
        if "moto_down" in parsed:
            self._seen = {}
            self._down_until = 0.0
            self._stats["down_since"] = self._stats["down_until"] = None
            spec = parsed["moto_down"]
            if spec and not spec["on"]:
                self._go_down(spec)
        if "throttle" in parsed:
            self._stats["throttled"] = {}
        return {**self._state, "aws_stats": self._stats_copy()}

    def clear(self) -> dict:
        with self._lock:
            self._state = dict(DEFAULTS)
            self._stats = _empty_stats()
            self._seen = {}
            self._down_until = 0.0
            return {**self._state, "aws_stats": self._stats_copy()}

    # ------------------------------------------------------------------ AWS faults
    def _go_down(self, spec: dict) -> None:
        now = time.time()
        self._down_until = now + spec["seconds"]
        self._stats["down_since"], self._stats["down_until"] = now, self._down_until

    def aws_decision(self, operation: str) -> str | None:
        """What to do with one external AWS request: None (serve it), "drop", "apply_then_drop", "throttle"."""
        with self._lock:
            if time.time() < self._down_until:
                self._stats["dropped"] += 1
                self._stats["dropped_ops"] = (self._stats["dropped_ops"] + [operation])[-200:]
                return "drop"
            spec = self._state["moto_down"]
            if spec and spec["on"] and self._stats["down_since"] is None and operation == spec["on"]:
                self._seen[operation] = self._seen.get(operation, 0) + 1
                if self._seen[operation] == spec["nth"]:
                    self._go_down(spec)
                    if spec["when"] == "after":
                        self._stats["applied_then_dropped"].append(operation)
                        return "apply_then_drop"
                    self._stats["dropped"] += 1
                    self._stats["dropped_ops"].append(operation)
                    return "drop"
            arm = self._state["arm"]
            if arm and operation == arm["on"]:
                arm["seen"] += 1
                log.info("%s: armed fault: %s call %d of %d", self.environment, operation, arm["seen"], arm["nth"])
                if arm["seen"] == arm["nth"]:
                    self._state["arm"] = None
                    self._apply(arm["set"])
                    log.info("%s: armed fault fired on %s call %d: %s", self.environment, operation, arm["seen"], sorted(arm["set"]))
            deny = self._state["deny"]
            if deny and operation == deny["operation"]:
                deny["seen"] += 1
                if deny["seen"] >= deny["nth"]:
                    deny["denied"] += 1
                    return "deny"
            throttle = self._state["throttle"]
            if throttle and (operation in throttle["operations"] or "*" in throttle["operations"]):
                done = self._stats["throttled"].get(operation, 0)
                if done < throttle["count"]:
                    self._stats["throttled"][operation] = done + 1
                    return "throttle"
            return None
