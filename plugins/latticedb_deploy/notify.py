"""Stakeholder notifications: Block Kit messages through the Slack provider's hooks.

Two ways to reach Slack, chosen per environment (include/config/latticedb.yaml, `notifications`):

- webhook (default): `slack_conn_id` is a `slackwebhook` connection; `SlackWebhookHook.send`.
- bot token: `notifications.channel` is set and `slack_conn_id` is a `slack` connection holding a
  bot token; `SlackHook.call("chat.postMessage", json={"channel": ..., ...})`.

A notification that cannot be delivered is logged and swallowed: Slack being down must never
fail, retry or slow down a deployment. Every post has a short timeout and no client-side retries.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5

_ICON = {
    "started": ":rocket:",
    "stage": ":arrow_forward:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "rollback_started": ":rewind:",
    "rollback_finished": ":leftwards_arrow_with_hook:",
    "approval_requested": ":raised_hand:",
    "warning": ":warning:",
    "skipped": ":zzz:",
    "flags": ":triangular_flag_on_post:",
}


def escape(value: object) -> str:
    """Text as Slack shows it literally: its three control characters as entities.

    Slack's formatting reference ("Escaping text"): `&` -> `&amp;`, `<` -> `&lt;`, `>` -> `&gt;`.
    So `<!channel>` or `<http://x|click>` in a reason, a smoke-test detail or an image tag is
    displayed, never turned into a mention or a link.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_message(
    event: str, title: str, fields: dict[str, object], link: str | None = None,
    links: dict[str, str] | None = None,
) -> dict:
    """Slack payload: a header-like section, a fields section, an optional link.

    Every caller-supplied string (title, field names and values, the links) is escaped here, in the
    one place every notification passes through; only this function's own markup stays markup.
    `links`: more links after "Open in Airflow", label -> URL (e.g. the control form of a gate).
    """
    text = escape(f"{_ICON.get(event, '')} {title}".strip())
    shown = [(escape(k), escape(v)) for k, v in fields.items() if v not in (None, "")]
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    items = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in shown]
    for i in range(0, len(items), 10):  # Slack allows at most 10 fields per section
        blocks.append({"type": "section", "fields": items[i : i + 10]})
    anchors = [(link, "Open in Airflow")] if link else []
    anchors += [(url, label) for label, url in (links or {}).items() if url]
    if anchors:
        elements = []
        for url, label in anchors:
            url = escape(url).replace("|", "%7C")  # `|` would end the URL part of <url|label>
            elements.append({"type": "mrkdwn", "text": f"<{url}|{escape(label).replace('|', '/')}>"})
        blocks.append({"type": "context", "elements": elements})
    plain = text + "".join(f"\n{k}: {v}" for k, v in shown)
    plain += "".join(f"\n{escape(label)}: {escape(url)}" for label, url in (links or {}).items() if url)
    return {"text": plain, "blocks": blocks}


def _route(target: Any, channel: str | None) -> tuple[str, str | None]:
    """(connection id, channel) from a connection id, a `Notifications` block or an `Environment`."""
    settings = getattr(target, "notifications", target)
    if isinstance(settings, str):
        return settings, channel
    return settings.slack_conn_id, channel or getattr(settings, "channel", None)


def _post(conn_id: str, channel: str | None, payload: dict) -> None:
    if channel:
        from airflow.providers.slack.hooks.slack import SlackHook

        hook = SlackHook(slack_conn_id=conn_id, timeout=TIMEOUT_SECONDS, retry_handlers=[])
        hook.call("chat.postMessage", json={"channel": channel, **payload})
    else:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        hook = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=TIMEOUT_SECONDS, retry_handlers=[])
        hook.send(**payload)


def send(
    target: Any,
    event: str,
    title: str,
    fields: dict[str, object],
    link: str | None = None,
    *,
    channel: str | None = None,
    links: dict[str, str] | None = None,
) -> bool:
    """Post to Slack; returns whether it was delivered. Never raises.

    `target` is an environment, its `notifications` block, or a bare connection id (webhook,
    or bot token when `channel` is given).
    """
    conn_id = target if isinstance(target, str) else "?"
    try:
        conn_id, channel = _route(target, channel)
        payload = build_message(event, title, fields, link, links)
        _post(conn_id, channel, payload)
    except Exception as exc:  # noqa: BLE001 - delivery problems must not affect the deployment
        log.warning("Slack notification %r not delivered via %r: %s", event, conn_id, exc)
        return False
    log.info("Slack notification sent%s: %s", f" to {channel}" if channel else "", payload["text"].splitlines()[0])
    return True


def run_link(context: Any) -> str | None:
    """The run's page in the Airflow UI (`[api] base_url`), or None if it cannot be built."""
    try:
        dag_id = context["dag"].dag_id if context.get("dag") is not None else context["ti"].dag_id
        run_id = context["run_id"]
        try:
            from airflow.sdk.configuration import conf
        except ImportError:  # pragma: no cover - older layouts
            from airflow.configuration import conf
        base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
        return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    except Exception:  # noqa: BLE001 - a link is a nicety
        return None


CONTROL_DAG_ID = "latticedb_control"


def airflow_base_url() -> str:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older layouts
        from airflow.configuration import conf
    try:
        return (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    except Exception:  # noqa: BLE001 - a link is a nicety
        return "http://localhost:8080"


def control_form_link(environment: str, deployment: str | None = None) -> dict[str, str]:
    """The link a gate's messages carry: latticedb_control's page, whose Trigger button opens its form
    (promote / pause / resume / abort). Airflow 3.3's UI has no URL of its own for the trigger form; the
    `conf` query names the environment and the deployment run that sent the message ("<dag_id>/<run_id>",
    the form's `deployment` field: a control run naming it acts on that run only, never on a later one).

    `deployment` unset: the run whose task is sending the message (Airflow's current context), if any."""
    from urllib.parse import urlencode

    deployment = deployment or _current_run()
    conf = {"environment": environment, **({"deployment": deployment} if deployment else {})}
    url = f"{airflow_base_url()}/dags/{CONTROL_DAG_ID}?" + urlencode({"conf": json_dumps(conf)})
    label = f"Promote / pause / abort ({environment}" + (f", deployment {deployment}" if deployment else "") + ")"
    return {label: url}


def _current_run() -> str | None:
    """"<dag_id>/<run_id>" of the task running now (the lease owner's spelling), or None outside a task."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
        dag = context.get("dag")
        dag_id = getattr(dag, "dag_id", None) or getattr(context.get("ti"), "dag_id", None)
        run_id = context.get("run_id")
    except Exception:  # noqa: BLE001 - outside a task (or an older layout): the link names the environment only
        return None
    return f"{dag_id}/{run_id}" if dag_id and run_id else None


def json_dumps(value: object) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
