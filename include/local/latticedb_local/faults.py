"""Injected faults, toggled over HTTP by tests and demos to exercise the failure paths.

slack_down      the Slack sink fails every post (how: slack_mode)
slack_mode      "500" (answer HTTP 500) or "close" (drop the connection unanswered)
health_down     /health on both listeners answers 503
metrics_paused  the traffic simulator publishes nothing (a "no data" window)
"""

from __future__ import annotations

import threading

DEFAULTS = {"slack_down": False, "slack_mode": "500", "health_down": False, "metrics_paused": False}


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._state = dict(DEFAULTS)

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._state)

    def get(self, name: str):
        with self._lock:
            return self._state[name]

    def update(self, changes: dict) -> dict:
        unknown = sorted(set(changes) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(DEFAULTS)}")
        if "slack_mode" in changes and changes["slack_mode"] not in ("500", "close"):
            raise ValueError("slack_mode must be '500' or 'close'")
        for key, value in changes.items():
            if key != "slack_mode" and not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
        with self._lock:
            self._state.update(changes)
            return dict(self._state)

    def clear(self) -> dict:
        with self._lock:
            self._state = dict(DEFAULTS)
            return dict(self._state)
