"""A little shared plumbing for the stdlib HTTP servers (JSON in/out, quiet logs, threads)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("latticedb_local.http")


class JsonHandler(BaseHTTPRequestHandler):
    server_version = "latticedb-local/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # route access logs to the server log, at debug level
        log.debug("%s %s", self.address_string(), fmt % args)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self) -> dict:
        raw = self.body()
        if not raw.strip():
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    def send(self, status: int, payload, content_type: str = "application/json") -> None:
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload, default=str, indent=None).encode()
        else:
            data = str(payload).encode()
            if content_type == "application/json":
                content_type = "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"


class Server:
    """A ThreadingHTTPServer on its own daemon thread."""

    def __init__(self, name: str, host: str, port: int, handler: type[JsonHandler]):
        ThreadingHTTPServer.allow_reuse_address = True
        self.name = name
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("%s listening on http://%s:%d", self.name, *self.httpd.server_address[:2])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
