"""After a rollback, check what the runbook checks: /health answers with the restored version, and the
restored slot's error rate and latency over a short window are within the thresholds.

Used by the deployment DAGs' `rollback.notify_rollback` and by `latticedb_rollback`'s `verify`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests


@dataclass
class RestoredCheck:
    healthy: bool = True
    version: str | None = None
    health: str = ""
    metrics: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def fail(self, problem: str) -> None:
        self.healthy = False
        self.problems.append(problem)


def window_seconds(env: Any) -> float:
    """How long the restored slot is watched: two gate polls (local: 4 s; AWS default: 60 s)."""
    return float(2 * env.metrics.poll_seconds)


def versions_of(env: Any, task_definition: str) -> tuple[str, ...]:
    """The tags of the image a task definition runs (pinned by digest), as /health reports versions."""
    from latticedb_deploy.aws.ecr import EcrClient
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.images import parse_image_uri

    ecs = EcsClient(env)
    image = parse_image_uri(ecs.container_image(ecs.describe_task_definition(task_definition)))
    if image.tag and not image.digest:
        return (image.tag,)
    return EcrClient(env).describe(image).tags


def check_health(url: str, versions: tuple[str, ...], *, attempts: int = 3, delay: float = 1.0) -> tuple[bool, str]:
    last = ""
    for attempt in range(attempts):
        try:
            resp = requests.get(url.rstrip("/") + "/health", timeout=5)
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            version = body.get("version")
            if resp.ok and body.get("status") in ("ok", "healthy") and (not versions or version in versions):
                return True, f"/health ok, version {version}"
            last = f"/health HTTP {resp.status_code}, status {body.get('status')!r}, version {version!r}" + (
                f" (expected one of {list(versions)})" if versions else ""
            )
        except (requests.RequestException, ValueError) as exc:
            last = f"/health unreachable: {exc}"
        if attempt < attempts - 1:
            time.sleep(delay)
    return False, last


def check_restored(
    env: Any, *, target_group_arn: str, task_definition: str, since: float, load_balancer_arn: str
) -> RestoredCheck:
    """Watch the restored slot for `window_seconds` after `since` (when traffic came back), then judge it."""
    from latticedb_deploy.aws.cloudwatch import MetricsClient
    from latticedb_deploy.judge import FAIL, INCONCLUSIVE, GateCriteria, evaluate

    result = RestoredCheck()
    try:
        versions = versions_of(env, task_definition)
    except Exception as exc:  # noqa: BLE001 - an unknown version is reported, the health check still runs
        versions = ()
        result.problems.append(f"could not read the restored version: {exc}")
    result.version = versions[0] if versions else None
    ok, result.health = check_health(env.service_url, versions)
    if not ok:
        result.fail(result.health)
    wait = since + window_seconds(env) - time.time()
    if wait > 0:
        time.sleep(wait)
    try:
        window = MetricsClient(env).target_group_window(
            target_group_arn=target_group_arn,
            load_balancer_arn=load_balancer_arn,
            start=datetime.fromtimestamp(since, UTC),
            end=datetime.now(UTC),
            statistic=env.metrics.latency_statistic,
            period=env.metrics.period_seconds,
        )
        ev = evaluate(100, window, GateCriteria.from_environment(env))
        result.metrics = ev.summary
        if ev.verdict == FAIL:
            result.fail(f"metrics after rollback: {ev.summary}")
        elif ev.verdict == INCONCLUSIVE:
            result.metrics = f"inconclusive: {ev.summary}"
    except Exception as exc:  # noqa: BLE001 - no metrics is a warning, not a verdict
        result.metrics = f"metrics unavailable: {exc}"
    return result
