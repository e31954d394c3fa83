"""Stakeholder notifications: Block Kit messages through the Slack provider's webhook hook.

A notification that cannot be delivered is logged and swallowed: Slack being down
must never fail, retry or slow down a deployment.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_ICON = {
    "started": ":rocket:",
    "stage": ":arrow_forward:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rollback_started": ":rewind:",
    "rollback_finished": ":leftwards_arrow_with_hook:",
    "approval_requested": ":raised_hand:",
    "warning": ":warning:",
}


def build_message(event: str, title: str, fields: dict[str, object], link: str | None = None) -> dict:
    """Slack webhook payload: a header-like section, a fields section, an optional link."""
    text = f"{_ICON.get(event, '')} {title}".strip()
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    items = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields.items() if v not in (None, "")]
    for i in range(0, len(items), 10):  # Slack allows at most 10 fields per section
        blocks.append({"type": "section", "fields": items[i : i + 10]})
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in Airflow>"}]})
    plain = text + "".join(f"\n{k}: {v}" for k, v in fields.items() if v not in (None, ""))
    return {"text": plain, "blocks": blocks}


def send(conn_id: str, event: str, title: str, fields: dict[str, object], link: str | None = None) -> bool:
    """Post to Slack; returns whether it was delivered. Never raises."""
    payload = build_message(event, title, fields, link)
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=5).send(**payload)
    except Exception as exc:  # noqa: BLE001 - delivery problems must not affect the deployment
        log.warning("Slack notification %r not delivered via %r: %s", event, conn_id, exc)
        return False
    log.info("Slack notification sent: %s", payload["text"].splitlines()[0])
    return True
