"""ECS's eventual consistency, for the deployment's own reads: a DescribeServices made through Airflow's
AWS hook within `describe_lag_seconds` of an UpdateService may still show the service as it was before.

The ECS API reference: "The Amazon ECS API follows an eventual consistency model ... the result of an
API command you run that affects your Amazon ECS resources might not be immediately visible to all
subsequent commands you run." moto answers every read with the latest state, which hid code that
reads a service right after changing it and trusts what it sees (a rollout wait that took the old
description for "someone else replaced our deployment"). The lag applies to the product's calls only
(User-Agent "Airflow/"): tests and tools that look at the environment read the truth.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any


class StaleReads:
    """Per service ARN: until when the product's reads may still see which copy of it (as before the update)."""

    def __init__(self, lag_seconds: float):
        self.lag = lag_seconds
        self._lock = threading.Lock()
        self._stale: dict[str, tuple[float, Any]] = {}

    def before_update(self, arn: str, service: Any, now: float | None = None, shared: tuple = ()) -> None:
        """Called with the service just before an UpdateService changes it. A second update within the lag
        keeps the oldest copy (reads lag behind both). `shared`: objects the copy refers to, not copies of
        (moto's Service holds its whole backend: copying that on every update starved the stack's CPU)."""
        if self.lag <= 0:
            return
        now = time.time() if now is None else now
        with self._lock:
            current = self._stale.get(arn)
            if current is not None and current[0] > now:
                snapshot = current[1]
            else:
                snapshot = copy.deepcopy(service, {id(obj): obj for obj in shared})
            self._stale[arn] = (now + self.lag, snapshot)

    def view(self, arn: str, service: Any, now: float | None = None) -> Any:
        """What a read of `service` may return now: the copy from before its last update while inside the lag."""
        now = time.time() if now is None else now
        with self._lock:
            hit = self._stale.get(arn)
            if hit is None:
                return service
            if hit[0] <= now:
                del self._stale[arn]
                return service
            return hit[1]


def from_product(user_agent: str) -> bool:
    """Whether a request came from the deployment's code (Airflow's AWS hook), not a test or tool."""
    return "Airflow/" in user_agent


# The stack's one record (moto's backends are one per process): the ECS emulator sets its lag, feeds it
# and answers the product's DescribeServices from it.
STALE_READS = StaleReads(0.0)
_reading = threading.local()  # set while moto serves a DescribeServices that came from the product


def product_read() -> bool:
    return getattr(_reading, "product", False)


def set_product_read(value: bool) -> None:
    _reading.product = value
