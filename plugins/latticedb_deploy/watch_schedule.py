"""Which follow-up watch a successful deployment schedules (runbook: "monitor for 24 hours").

Plain data, no Airflow: the operator (operators/watch.py, SchedulePostDeploymentWatchOperator)
only hands what this returns to TriggerDagRunOperator.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from latticedb_deploy.config import WATCH_LABELS
from latticedb_deploy.models import frozen_model

WATCH_DAG_ID = "latticedb_post_deployment_watch"


@frozen_model
class WatchRequest:
    """One run of latticedb_post_deployment_watch: its run id, its conf, and when its checks are due."""

    run_id: str
    conf: dict[str, Any]
    due: tuple[tuple[str, datetime], ...]

    def summary(self) -> str:
        """e.g. "1h at 2026-11-26 10:42Z, 6h at 2026-11-26 15:42Z, 24h at 2026-11-27 09:42Z"."""
        return ", ".join(f"{label} at {moment:%Y-%m-%d %H:%M:%S}Z" for label, moment in self.due)


def why_not_watched(env: Any) -> str | None:
    """Why `env` gets no watch after a success, or None when it does."""
    if env.watch_offsets is not None:
        return None
    setting = env.post_deployment.watch_offsets_seconds
    how = "is empty" if setting is not None else "is unset (on by default in production only)"
    return f"no post-deployment watch in {env.name}: post_deployment.watch_offsets_seconds {how}"


def watch_run_id(dag_id: str, run_id: str) -> str:
    """The watch's run id, derived from the deployment's: a retried or re-run task finds its own run."""
    return f"watch__{dag_id}__{run_id}"[:250]


def watch_request(
    env: Any,
    *,
    dag_id: str,
    run_id: str,
    deployed_at: datetime,
    version: str | None = None,
    image: str | None = None,
    revision: str | None = None,
    run_link: str | None = None,
) -> WatchRequest:
    """The watch of one succeeded deployment to `env` (which must have a watch: see why_not_watched)."""
    offsets = env.watch_offsets
    if offsets is None:
        raise ValueError(why_not_watched(env))
    conf = {
        "environment": env.name,
        "deployment": f"{dag_id}/{run_id}",
        "version": version,
        "image": image,
        "revision": revision,
        "deployment_url": run_link,
        "deployed_at": deployed_at.isoformat(),
        "offsets_seconds": [int(o) if float(o).is_integer() else float(o) for o in offsets],
    }
    due = tuple((label, deployed_at + timedelta(seconds=o)) for label, o in zip(WATCH_LABELS, offsets, strict=True))
    return WatchRequest(run_id=watch_run_id(dag_id, run_id), conf=conf, due=due)
