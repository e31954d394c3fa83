"""Slack notifications: Block Kit payloads, webhook vs bot token, and never failing a deployment."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from latticedb_deploy import notify
from latticedb_deploy.config import Notifications


def test_message_has_a_title_section_fields_and_a_link():
    msg = notify.build_message(
        "failed", "Deployment failed at deploy.wait_for_rollout",
        {"Environment": "local", "Image": None, "Reason": "boom"}, "http://airflow/dags/x/runs/y",
    )
    title, fields, context = msg["blocks"]
    assert title == {"type": "section", "text": {"type": "mrkdwn", "text": "*:x: Deployment failed at deploy.wait_for_rollout*"}}
    assert [f["text"] for f in fields["fields"]] == ["*Environment*\nlocal", "*Reason*\nboom"]  # empty fields dropped
    assert "<http://airflow/dags/x/runs/y|Open in Airflow>" in context["elements"][0]["text"]
    assert msg["text"].startswith(":x: Deployment failed") and "Reason: boom" in msg["text"]


def test_more_than_ten_fields_are_split_into_sections():
    msg = notify.build_message("stage", "t", {f"k{i}": i + 1 for i in range(23)})
    assert [len(b["fields"]) for b in msg["blocks"][1:]] == [10, 10, 3]


class _Recorder(BaseHTTPRequestHandler):
    status = 200
    body = b"ok"
    delay = 0.0
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(raw)})
        time.sleep(type(self).delay)
        try:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(type(self).body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a hang: what the test wanted
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slack(monkeypatch):
    handler = type("Handler", (_Recorder,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_T_WEBHOOK", json.dumps({"conn_type": "slackwebhook", "password": f"{url}/services/T/B/X"}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_T_BOT",
        json.dumps({"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": f"{url}/api/"}}),
    )
    yield handler
    server.shutdown()


def test_webhook_by_default(slack):
    assert notify.send(Notifications(slack_conn_id="t_webhook"), "started", "rolling deployment started", {"Environment": "local"})
    (post,) = slack.received
    assert post["path"] == "/services/T/B/X"
    assert post["body"]["blocks"][0]["text"]["text"] == "*:rocket: rolling deployment started*"


def test_bot_token_and_channel_use_chat_post_message(slack):
    slack.body = b'{"ok": true, "channel": "C1", "ts": "1.2"}'
    settings = Notifications(slack_conn_id="t_bot", channel="#deployments")
    assert notify.send(settings, "succeeded", "done", {"Environment": "production"})
    (post,) = slack.received
    assert post["path"] == "/api/chat.postMessage"
    assert post["auth"] == "Bearer xoxb-test"
    assert post["body"]["channel"] == "#deployments"
    assert post["body"]["blocks"][0]["type"] == "section"


@pytest.mark.parametrize("conn_id", ["t_webhook", "t_bot"])
def test_slack_errors_are_swallowed(slack, conn_id):
    slack.status, slack.body = 500, b"internal_error"
    channel = "#deployments" if conn_id == "t_bot" else None
    assert notify.send(conn_id, "failed", "x", {}, channel=channel) is False


def test_unknown_connection_and_unreachable_host_are_swallowed(monkeypatch):
    assert notify.send("no_such_connection", "started", "x", {}) is False
    monkeypatch.setenv("AIRFLOW_CONN_T_DEAD", json.dumps({"conn_type": "slackwebhook", "password": "http://127.0.0.1:9/services/x"}))
    assert notify.send("t_dead", "started", "x", {}) is False


def test_a_slack_that_hangs_delays_by_the_timeout_at_most(slack, monkeypatch):
    monkeypatch.setattr(notify, "TIMEOUT_SECONDS", 1)
    assert notify.send("t_webhook", "started", "warm-up", {})  # the Slack hook's imports, out of the timing
    slack.delay = 30  # hangs far longer than the timeout
    started = time.monotonic()
    assert notify.send("t_webhook", "started", "x", {}) is False
    # Gave up at the 1 s timeout, not the default 5 s, nor the 30 s hang; no retry.
    assert time.monotonic() - started < 4 and len(slack.received) == 2, slack.received


def test_a_bug_in_building_the_message_is_swallowed_too():
    class Boom:
        def __str__(self):
            raise RuntimeError("cannot render")

    assert notify.send("t_webhook", "started", "x", {"Bad": Boom()}) is False


@pytest.mark.parametrize("hostile", ["<!channel>", "<http://evil.example|click>", "<@U024BE7LH>", "a & b", "<!subteam^S1>"])
def test_untrusted_text_is_escaped_in_every_text_field(hostile):
    msg = notify.build_message(
        "failed", f"Deployment of latticedb:{hostile} failed",
        {"Reason": hostile, f"Key {hostile}": "v", "Smoke": f"GET /health: {hostile}"}, "http://airflow/runs/x?a=1&b=2",
    )
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    texts = [msg["text"], msg["blocks"][0]["text"]["text"], *[f["text"] for f in msg["blocks"][1]["fields"]]]
    for text in texts:
        assert hostile not in text and escaped in text, text
    link = msg["blocks"][2]["elements"][0]["text"]
    assert link == "<http://airflow/runs/x?a=1&amp;b=2|Open in Airflow>"


def test_a_pipe_in_the_link_cannot_relabel_it():
    msg = notify.build_message("failed", "t", {}, "http://airflow/runs/x|Click me")
    assert msg["blocks"][-1]["elements"][0]["text"] == "<http://airflow/runs/x%7CClick me|Open in Airflow>"


def test_escaped_text_reaches_the_webhook(slack):
    assert notify.send("t_webhook", "warning", "Kill switch on", {"Reason": "<!here> ok"})
    body = slack.received[-1]["body"]
    assert "&lt;!here&gt; ok" in body["text"] and "<!here>" not in json.dumps(body)
