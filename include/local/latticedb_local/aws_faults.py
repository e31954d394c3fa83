"""The AWS endpoint's fault injection: a WSGI middleware in front of moto's server app.

It names each request's operation the way the SDK sent it (JSON: X-Amz-Target; Smithy RPC v2
CBOR: /service/<svc>/operation/<Op>; query: Action=), asks `Faults.aws_decision` what to do,
and then serves it, drops the connection unanswered (moto keeps all state; the SDK sees the
connection closed and retries), or answers ThrottlingException in the request's protocol so the
SDK's own retry logic classifies it as throttling.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import uuid
from urllib.parse import parse_qs

from .call_ledger import CallLedger

log = logging.getLogger(__name__)

INTERNAL_AGENT = "latticedb-local-internal"  # User-Agent marker of the environment's own clients
_MESSAGE = "Rate exceeded (fault injected: throttle)"


def operation_of(environ: dict) -> str:
    """The AWS operation name of a request (buffers the body so moto can read it again)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:
        return path.rstrip("/").rsplit("/", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return "unknown"


def _cbor_text(s: str) -> bytes:
    data = s.encode()
    n = len(data)
    if n < 24:
        return bytes([0x60 + n]) + data
    if n < 256:
        return bytes([0x78, n]) + data
    return bytes([0x79]) + n.to_bytes(2, "big") + data


def throttling_response(environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    """HTTP 400 ThrottlingException in the protocol the request came in."""
    return error_response(environ, "ThrottlingException", "Throttling", _MESSAGE)


def error_response(environ: dict, json_code: str, query_code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """HTTP 400 with an AWS error code, in the protocol the request came in."""
    rid = str(uuid.uuid4())
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        body = b"\xa2" + _cbor_text("__type") + _cbor_text(json_code) + _cbor_text("message") + _cbor_text(message)
        headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": json_code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1")]
    else:  # query protocol (elbv2, sts, ...)
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{query_code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    headers += [("x-amzn-RequestId", rid), ("Content-Length", str(len(body)))]
    return "400 Bad Request", headers, body


def _drop(environ: dict, start_response) -> list[bytes]:
    """Close the connection without an answer (the server's later write fails and is ignored)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    start_response("503 Service Unavailable", [("Content-Length", "0"), ("Connection", "close")])
    return []


class AwsFaultMiddleware:
    def __init__(self, app, faults, environment: str = "local"):
        self.app = app
        self.faults = faults  # the faults of the environment whose endpoint this is
        self.ledger = CallLedger.from_environment(environment)  # LATTICEDB_LOCAL_AWS_LEDGER: record every call

    def __call__(self, environ, start_response):
        if INTERNAL_AGENT in environ.get("HTTP_USER_AGENT", "") or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        if self.ledger is not None and not CallLedger.seen(environ):
            return self.ledger.observe(environ, start_response, self)
        op = operation_of(environ)
        decision = self.faults.aws_decision(op)
        if decision is None:
            return self.app(environ, start_response)
        log.info("AWS fault: %s %s", decision, op)
        if decision == "throttle":
            status, headers, body = throttling_response(environ)
            start_response(status, headers)
            return [body]
        if decision == "deny":
            status, headers, body = error_response(
                environ, "AccessDeniedException", "AccessDenied", f"not authorized to perform {op} (fault injected: deny)"
            )
            start_response(status, headers)
            return [body]
        if decision == "apply_then_drop":
            result = self.app(environ, lambda *a, **k: (lambda _data: None))
            try:
                for _ in result:  # let moto finish the change; its answer is lost
                    pass
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return _drop(environ, start_response)
