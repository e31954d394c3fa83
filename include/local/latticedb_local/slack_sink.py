"""A Slack incoming-webhook stand-in on loopback: notifications are real HTTP posts, recorded.

POST /services/<anything>  record the message, answer 200 "ok" (as Slack does)
GET /messages              the recorded messages, oldest first, as JSON
DELETE /messages           forget them
POST /_fault               {"down": true, "mode": "500"|"close"} (same switch as slack_down)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from urllib.parse import parse_qs

from .http_util import JsonHandler, Server

log = logging.getLogger(__name__)


class SlackSink:
    def __init__(self, host: str, port: int, faults):
        self.faults = faults
        self._messages: list[dict] = []
        self._lock = threading.Lock()
        self.server = Server("slack-sink", host, port, self._handler())

    def messages(self) -> list[dict]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def _record(self, path: str, body: dict) -> None:
        with self._lock:
            self._messages.append({"path": path, "received_at": time.time(), "body": body})
        log.info("slack message on %s: %s", path, (body.get("text") or json.dumps(body))[:200])

    def _handler(self):
        sink = self

        class Handler(JsonHandler):
            def do_GET(self):
                if self.route == "/messages":
                    return self.send(200, sink.messages())
                self.send(404, "no_service", "text/plain")

            def do_DELETE(self):
                if self.route == "/messages":
                    sink.clear()
                    return self.send(200, {"cleared": True})
                self.send(404, "no_service", "text/plain")

            def do_POST(self):
                if self.route == "/_fault":
                    try:
                        body = self.json_body()
                        changes = {"slack_down": bool(body.get("down", True))}
                        if "mode" in body:
                            changes["slack_mode"] = str(body["mode"])
                        return self.send(200, sink.faults.update(changes))
                    except ValueError as exc:
                        return self.send(400, {"error": str(exc)})
                if not self.route.startswith("/services/"):
                    return self.send(404, "no_service", "text/plain")
                raw = self.body()
                if sink.faults.get("slack_down"):
                    if sink.faults.get("slack_mode") == "close":
                        self.close_connection = True
                        self.connection.close()
                        return
                    return self.send(500, "internal_error", "text/plain")
                try:
                    body = _parse(raw, self.headers.get("Content-Type", ""))
                except ValueError:
                    return self.send(400, "invalid_payload", "text/plain")
                if not (body.get("text") or body.get("blocks") or body.get("attachments")):
                    return self.send(400, "no_text", "text/plain")
                sink._record(self.route, body)
                self.send(200, "ok", "text/html")

        return Handler


def _parse(raw: bytes, content_type: str) -> dict:
    text = raw.decode("utf-8")
    if "application/x-www-form-urlencoded" in content_type:
        text = (parse_qs(text).get("payload") or ["{}"])[0]
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("payload must be an object")
    return data
