"""Smoke tests against the service URL: health, version, connection pool, latency per request.

Plain Python (requests), so the report can be produced and tested without Airflow. The
report is the runbook's `smoke-test-report.json`: every check with its verdict, every
request with its latency, and a summary.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

REPORT_NAME = "smoke-test-report"


@dataclass
class SmokeReport:
    url: str
    expected_version: str
    passed: bool = False
    checks: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    context: dict = field(default_factory=dict)  # environment, image, run: filled in by the caller

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self, name: str, ok: bool, detail: str, **extra: object) -> None:
        self.checks.append({"check": name, "passed": ok, "detail": detail, **extra})

    def finish(self) -> SmokeReport:
        latencies = [r["latency_ms"] for r in self.requests if "status" in r]
        self.passed = bool(self.checks) and all(c["passed"] for c in self.checks)
        self.finished_at = datetime.now(UTC).isoformat()
        self.summary = {
            "checks": len(self.checks),
            "passed": sum(1 for c in self.checks if c["passed"]),
            "failed": sum(1 for c in self.checks if not c["passed"]),
            "requests": len(self.requests),
            "latency_ms": {
                "min": min(latencies),
                "max": max(latencies),
                "mean": round(sum(latencies) / len(latencies), 1),
            }
            if latencies
            else None,
        }
        return self


def _get(url: str, timeout: float, retries: int, delay: float, report: SmokeReport) -> requests.Response | None:
    retries = max(retries, 1)
    for attempt in range(1, retries + 1):
        t0 = time.monotonic()
        try:
            resp = requests.get(url, timeout=timeout)
            ms = round((time.monotonic() - t0) * 1000, 1)
            report.requests.append({"url": url, "attempt": attempt, "status": resp.status_code, "latency_ms": ms})
            if resp.status_code < 500:
                return resp
        except requests.RequestException as exc:
            ms = round((time.monotonic() - t0) * 1000, 1)
            report.requests.append({"url": url, "attempt": attempt, "error": str(exc), "latency_ms": ms})
        if attempt < retries:
            time.sleep(delay)
    return None


def pool_verdict(pool: dict) -> tuple[bool, str]:
    """Healthy: the service says so, and the pool is neither exhausted nor reporting nonsense."""
    if not pool:
        return False, "no connection_pool in /health"
    if pool.get("healthy") is False:
        return False, f"service reports the pool unhealthy: {pool}"
    active, size = pool.get("active"), pool.get("max")
    if isinstance(active, int | float) and isinstance(size, int | float) and size > 0:
        if active >= size:
            return False, f"pool exhausted: {active}/{size} connections in use"
        return True, f"{active}/{size} connections in use ({active / size:.0%}), {pool.get('idle', size - active)} idle"
    return True, f"connection_pool={pool}"


def run_smoke_tests(
    base_url: str,
    expected_version: str,
    *,
    timeout: float = 5.0,
    retries: int = 3,
    delay: float = 2.0,
    max_latency_ms: float | None = None,
) -> SmokeReport:
    """GET /health (with retries): reachable, status ok, version == expected, pool healthy, fast enough."""
    report = SmokeReport(url=base_url, expected_version=expected_version)
    resp = _get(base_url.rstrip("/") + "/health", timeout, retries, delay, report)
    if resp is None:
        report.check("health endpoint reachable", False, f"no answer from {base_url}/health after {max(retries, 1)} attempts")
        return report.finish()
    try:
        body = resp.json()
    except ValueError:
        body = {}
    latency = report.requests[-1]["latency_ms"]
    report.check("health endpoint reachable", resp.ok, f"HTTP {resp.status_code} in {latency} ms", latency_ms=latency)
    report.check("status ok", body.get("status") in ("ok", "healthy"), f"status={body.get('status')!r}")
    report.check(
        "version matches",
        body.get("version") == expected_version,
        f"service reports {body.get('version')!r}, expected {expected_version!r}",
    )
    ok, detail = pool_verdict(body.get("connection_pool") or {})
    report.check("connection pool healthy", ok, detail)
    if max_latency_ms is not None:
        report.check(
            "response time",
            latency < max_latency_ms,
            f"{latency} ms for /health (limit {max_latency_ms:g} ms)",
            latency_ms=latency,
        )
    return report.finish()


def save_report(report: dict, directory: str | Path, run_id: str) -> Path:
    """Write the JSON report as `smoke-test-report-<run>.json` and refresh `smoke-test-report.json` (latest)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    path = directory / f"{REPORT_NAME}-{safe}.json"
    text = json.dumps(report, indent=2)
    path.write_text(text)
    (directory / f"{REPORT_NAME}.json").write_text(text)
    return path
