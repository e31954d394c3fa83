"""Traffic simulator: publish the ALB metrics real traffic would produce, split by listener weight.

Each tick, for each target group with weight > 0 on the production listener, it takes the
behaviour of the image that group's service runs (scenarios.yaml) and publishes to
AWS/ApplicationELB with dimensions LoadBalancer + TargetGroup (and LoadBalancer alone):
RequestCount, HTTPCode_Target_5XX_Count (Sum) and TargetResponseTime as a statistic set,
so a window's Average is the mean and its Maximum approximates P95 (moto has no percentiles).

Per-period noise (issue 16): every tick, both slots see the same load shape (a slow swing of the
request rate, which also nudges error rate and latency) and independent log-normal noise on their
error rate and latency, as two fleets behind one ALB do. The error count is the period's error rate
times its requests, unrounded: the simulator stands in for a busy service, whose per-period error
*rate* is what varies, not the handful of requests a 1-second tick carries. `period_behaviour` is the
one noise model; benchmarks/judge.py simulates the judge's comparisons with it.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

NAMESPACE = "AWS/ApplicationELB"
RETENTION_SECONDS = 3600


# The noise model (shared with benchmarks/judge.py).
LOAD_CYCLE_SECONDS = 300.0  # the load shape: one slow swing every 5 minutes...
LOAD_SWING = 0.1  # ... of +-10 % around the configured rate
ERROR_NOISE_SIGMA = 0.2  # per-period error-rate noise (log-normal sigma), independent per slot
LATENCY_NOISE_SIGMA = 0.05  # per-period latency noise (log-normal sigma), independent per slot
LOAD_SENSITIVITY = 0.5  # +10 % load -> +5 % errors and latency (both slots alike)


def load_factor(t: float) -> float:
    """The shared load shape at time `t` (seconds): both slots see the same factor."""
    return 1.0 + LOAD_SWING * math.sin(2 * math.pi * t / LOAD_CYCLE_SECONDS)


def _mean_one_lognormal(sigma: float, rng) -> float:
    return math.exp(rng.gauss(0.0, sigma) - sigma * sigma / 2)


def period_behaviour(
    error_rate: float, latency_mean_ms: float, latency_p95_ms: float, load: float, rng=random
) -> tuple[float, float, float]:
    """One period of one slot: (error rate, mean latency ms, P95 latency ms) with independent noise."""
    shape = 1.0 + LOAD_SENSITIVITY * (load - 1.0)
    errors = min(1.0, error_rate * shape * _mean_one_lognormal(ERROR_NOISE_SIGMA, rng))
    latency = shape * _mean_one_lognormal(LATENCY_NOISE_SIGMA, rng)
    return errors, latency_mean_ms * latency, latency_p95_ms * latency


def _stochastic_round(x: float) -> int:
    """Round so that the expectation is exact (12 % of 25 requests is 3 sometimes, 2 other times)."""
    low = math.floor(x)
    return low + (1 if random.random() < x - low else 0)


class TrafficSimulator:
    def __init__(self, runtime, settings):
        self._runtime = runtime
        self._rps = settings.rps
        self._tick = settings.tick_seconds
        self._stop = threading.Event()
        self._last_prune = time.time()
        self._thread = threading.Thread(target=self._run, name="traffic-simulator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            for hosted in self._runtime.hosted:  # every environment of the stack, each with its own faults
                try:
                    if not hosted.faults.get("metrics_paused"):
                        with self._runtime.lock:
                            self.publish_once(hosted)
                except Exception:
                    log.exception("traffic simulator tick failed for %s", hosted.name)
            try:
                if time.time() - self._last_prune > 60:
                    self._prune()
            except Exception:
                log.exception("traffic simulator prune failed")

    def publish_once(self, hosted) -> None:
        topo = hosted.topology
        if topo is None:
            return
        now = datetime.now(UTC)
        lb = {"Name": "LoadBalancer", "Value": topo.load_balancer_dimension}
        data, total, total_5xx, elb_5xx = [], 0, 0, 0
        overrides = hosted.faults.get("slot_errors") or {}
        for slot in hosted.slots("production"):
            dims = [lb, {"Name": "TargetGroup", "Value": slot.target_group_dimension}]
            data.append(_datum("HealthyHostCount", dims, now, slot.running if slot.serving else 0))
            data.append(_datum("UnHealthyHostCount", dims, now, 0 if slot.serving else slot.running))
            if slot.weight <= 0:
                continue
            load = load_factor(now.timestamp())
            requests = _stochastic_round(self._rps * self._tick * slot.weight / 100.0 * load)
            if requests == 0:
                continue
            total += requests
            if not slot.serving:
                elb_5xx += requests  # no healthy target: the ALB itself answers 503
                continue
            b = slot.behaviour
            rate, mean_ms, p95_ms = period_behaviour(
                overrides.get(slot.target_group_name, b.error_rate), b.latency_mean_ms, b.latency_p95_ms, load
            )
            errors = requests * rate  # unrounded: a busy service's per-period error rate (see above)
            total_5xx += errors
            data += [
                _datum("RequestCount", dims, now, requests),
                _datum("HTTPCode_Target_5XX_Count", dims, now, errors),
                _datum("HTTPCode_Target_2XX_Count", dims, now, requests - errors),
                {
                    "MetricName": "TargetResponseTime",
                    "Dimensions": dims,
                    "Timestamp": now,
                    "Unit": "Seconds",
                    "StatisticValues": {
                        "SampleCount": float(requests),
                        "Sum": requests * mean_ms / 1000.0,
                        "Minimum": min(b.latency_min_ms, mean_ms) / 1000.0,
                        "Maximum": p95_ms / 1000.0,
                    },
                },
            ]
        if total:
            data += [
                _datum("RequestCount", [lb], now, total),
                _datum("HTTPCode_Target_5XX_Count", [lb], now, total_5xx),
            ]
        if elb_5xx:
            data.append(_datum("HTTPCode_ELB_5XX_Count", [lb], now, elb_5xx))
        # Into moto's CloudWatch backend directly, as the ALB publishes inside AWS: not through the
        # environment's API endpoint (the simulator's ~7 PutMetricData requests a second were a third of
        # the local stack's requests, each paying for botocore, HTTP and moto's parser). Timestamps are
        # stored naive UTC, as moto's parser stores them; the same validation runs.
        for datum in data:
            datum["Timestamp"] = datum["Timestamp"].astimezone(UTC).replace(tzinfo=None)
        backend = hosted.moto.cloudwatch_backend()
        for i in range(0, len(data), 500):
            backend.put_metric_data(NAMESPACE, data[i : i + 500])

    def _prune(self) -> None:
        """moto keeps every datapoint forever; drop those older than an hour so queries stay fast."""
        self._last_prune = time.time()
        backend = self._runtime.hosted[0].moto.cloudwatch_backend()
        cutoff = datetime.now(UTC) - timedelta(seconds=RETENTION_SECONDS)
        with self._runtime.lock:
            backend.metric_data = [d for d in backend.metric_data if _aware(d.timestamp) >= cutoff]


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _datum(name: str, dims: list[dict], ts: datetime, value: float) -> dict:
    return {"MetricName": name, "Dimensions": dims, "Timestamp": ts, "Value": float(value), "Unit": "Count"}
