"""Smoke tests against a stand-in /health on loopback: checks, per-request latency, the JSON report."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from latticedb_deploy.smoke import pool_verdict, run_smoke_tests, save_report


class _Service:
    """A /health endpoint whose answers a test scripts: a list of (status, body) served in turn."""

    def __init__(self):
        self.answers: list[tuple[int, dict]] = []
        self.calls = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                service.calls += 1
                status, body = service.answers[min(service.calls, len(service.answers)) - 1]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


HEALTHY = {"status": "ok", "version": "v2.0.0", "connection_pool": {"active": 5, "idle": 15, "max": 20, "healthy": True}}


@pytest.fixture
def service():
    s = _Service()
    yield s
    s.server.shutdown()


def test_healthy_service_passes_with_every_request_timed(service):
    service.answers = [(200, HEALTHY)]
    report = run_smoke_tests(service.url, "v2.0.0", retries=2, delay=0, max_latency_ms=1000).to_dict()
    assert report["passed"] is True
    assert [c["check"] for c in report["checks"]] == [
        "health endpoint reachable", "status ok", "version matches", "connection pool healthy", "response time",
    ]
    assert report["requests"] == [
        {"url": f"{service.url}/health", "attempt": 1, "status": 200, "latency_ms": report["requests"][0]["latency_ms"]}
    ]
    assert report["requests"][0]["latency_ms"] >= 0
    assert report["summary"]["checks"] == 5 and report["summary"]["failed"] == 0 and report["summary"]["requests"] == 1
    assert "5/20 connections in use (25%), 15 idle" in report["checks"][3]["detail"]
    assert report["finished_at"] >= report["started_at"]


def test_5xx_is_retried_and_each_attempt_is_in_the_report(service):
    service.answers = [(503, {"status": "starting"}), (200, HEALTHY)]
    report = run_smoke_tests(service.url, "v2.0.0", retries=3, delay=0).to_dict()
    assert report["passed"] is True
    assert [r["status"] for r in report["requests"]] == [503, 200]
    assert [r["attempt"] for r in report["requests"]] == [1, 2]


def test_wrong_version_and_exhausted_pool_fail(service):
    service.answers = [(200, {**HEALTHY, "version": "v1.0.0", "connection_pool": {"active": 20, "max": 20}})]
    report = run_smoke_tests(service.url, "v2.0.0", retries=1, delay=0).to_dict()
    assert report["passed"] is False
    failed = {c["check"]: c["detail"] for c in report["checks"] if not c["passed"]}
    assert failed == {
        "version matches": "service reports 'v1.0.0', expected 'v2.0.0'",
        "connection pool healthy": "pool exhausted: 20/20 connections in use",
    }
    assert report["summary"]["failed"] == 2


def test_unreachable_service_fails_after_the_retries():
    report = run_smoke_tests("http://127.0.0.1:9", "v2.0.0", timeout=0.5, retries=2, delay=0).to_dict()
    assert report["passed"] is False
    assert report["checks"] == [
        {"check": "health endpoint reachable", "passed": False, "detail": "no answer from http://127.0.0.1:9/health after 2 attempts"}
    ]
    assert len(report["requests"]) == 2 and all("error" in r and r["latency_ms"] >= 0 for r in report["requests"])
    assert report["summary"]["latency_ms"] is None


def test_slow_answer_fails_the_response_time_check(service):
    service.answers = [(200, HEALTHY)]
    report = run_smoke_tests(service.url, "v2.0.0", retries=1, delay=0, max_latency_ms=0.0001).to_dict()
    assert not report["passed"]
    assert [c["check"] for c in report["checks"] if not c["passed"]] == ["response time"]


@pytest.mark.parametrize(
    ("pool", "ok"),
    [({}, False), ({"healthy": False}, False), ({"active": 3, "max": 20}, True), ({"active": 20, "max": 20}, False)],
)
def test_pool_verdict(pool, ok):
    assert pool_verdict(pool)[0] is ok


def test_report_is_saved_per_run_and_as_latest(tmp_path, service):
    service.answers = [(200, HEALTHY)]
    report = run_smoke_tests(service.url, "v2.0.0", retries=1, delay=0).to_dict()
    path = save_report(report, tmp_path / "reports", "manual__2026-11-26T07:00:00+00:00")
    assert path.name == "smoke-test-report-manual__2026-11-26T07_00_00_00_00.json"
    assert json.loads(path.read_text()) == report
    assert json.loads((tmp_path / "reports" / "smoke-test-report.json").read_text()) == report
