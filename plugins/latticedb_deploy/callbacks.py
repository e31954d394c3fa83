"""Task failure callback: tell stakeholders which task failed and why.

A plain function (not a notifier object) so it also works under `dag.test()`.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def notify_task_failure(context: Any) -> None:
    from latticedb_deploy import notify
    from latticedb_deploy.config import load_config

    try:
        params = context.get("params") or {}
        if str(params.get("notify", True)).lower() in ("false", "0", "no"):
            return
        env = load_config().environment(params["environment"])
        ti = context["ti"]
        reason = str(context.get("exception") or "unknown error")
        notify.send(
            env.notifications.slack_conn_id,
            "failed",
            f"Deployment failed at {ti.task_id}",
            {
                "Environment": env.name,
                "Image": params.get("image_uri"),
                "Failed task": ti.task_id,
                "Reason": reason[:1500],
                "Run": context.get("run_id"),
            },
            getattr(ti, "log_url", None),
        )
    except Exception as exc:  # noqa: BLE001 - a callback must never mask the original failure
        log.warning("failure notification not sent: %s", exc)
