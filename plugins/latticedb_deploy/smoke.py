"""Smoke tests against the service URL: health, version, connection pool, latency per request.

Plain Python (requests), so the report can be produced and tested without Airflow.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import requests


@dataclass
class SmokeReport:
    url: str
    expected_version: str
    passed: bool = False
    checks: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict:
        return asdict(self)


def _get(url: str, timeout: float, retries: int, delay: float, report: SmokeReport) -> requests.Response | None:
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


def run_smoke_tests(
    base_url: str, expected_version: str, *, timeout: float = 5.0, retries: int = 3, delay: float = 2.0
) -> SmokeReport:
    """GET /health (with retries): status ok, version == expected, connection pool healthy."""
    report = SmokeReport(url=base_url, expected_version=expected_version)
    resp = _get(base_url.rstrip("/") + "/health", timeout, retries, delay, report)

    def check(name: str, ok: bool, detail: str) -> None:
        report.checks.append({"check": name, "passed": ok, "detail": detail})

    if resp is None:
        check("health endpoint reachable", False, f"no answer from {base_url}/health after {retries} attempts")
        return report
    try:
        body = resp.json()
    except ValueError:
        body = {}
    check("health endpoint reachable", resp.ok, f"HTTP {resp.status_code}")
    check("status ok", body.get("status") in ("ok", "healthy"), f"status={body.get('status')!r}")
    check(
        "version matches",
        body.get("version") == expected_version,
        f"service reports {body.get('version')!r}, expected {expected_version!r}",
    )
    pool = body.get("connection_pool") or {}
    check("connection pool healthy", bool(pool) and pool.get("healthy", True) is True, f"connection_pool={pool}")
    report.passed = all(c["passed"] for c in report.checks)
    return report
