"""The runbook's post-deployment checks (post-deployment-checks.sh): one round, and what a round means.

A round reads the live slot (steady, targets healthy), its metrics since the checks began against the
SLO or thresholds, and the alarms. `verdict` turns a round into pass / fail / keep watching; it is
plain Python, so the trigger that polls in the triggerer and the tests share one answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


def criteria(env: Any) -> Any:
    """Every SLO metric (error rate, P95, P99, availability) where the environment has an SLO, never
    looser than its thresholds; else its thresholds."""
    from latticedb_deploy.judge import GateCriteria

    return GateCriteria.for_post_deployment(env)


class RoundClients:
    """The AWS clients every round of one wait uses, built once: a new client looks the Airflow connection
    up (in a triggerer, a request to its supervisor, and to the API server where connections live in the
    metadata database) and a new TrafficClient looks the load balancer's ARNs up again."""

    def __init__(self, env: Any):
        from latticedb_deploy.aws.cloudwatch import MetricsClient
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient

        self.traffic, self.ecs, self.metrics = TrafficClient(env), EcsClient(env), MetricsClient(env)


def checks_round(env: Any, baseline_alarms: set[str], since: datetime, clients: RoundClients | None = None) -> list[dict]:
    """One round of checks: [{"check", "passed", "detail", ...}] (blocking AWS calls), with `clients` (built
    here when not given)."""
    from latticedb_deploy.checks import target_health
    from latticedb_deploy.judge import PASS, evaluate
    from latticedb_deploy.readiness import unsettled

    clients = clients or RoundClients(env)
    out: list[dict] = []

    def check(name: str, ok: bool, detail: str, **extra: Any) -> None:
        out.append({"check": name, "passed": ok, "detail": detail, **extra})

    traffic = clients.traffic
    live, _, weights = traffic.live_and_idle()
    svc = clients.ecs.describe_service(live.service)
    why = unsettled(svc, live.service)
    share = weights.get(live.target_group_arn, 0)
    check(
        "service steady",
        why is None and share == 100,
        f"{live.service} ({live.colour}) runs {svc['runningCount']}/{svc['desiredCount']} tasks, "
        f"{why or 'settled'}, {share}% of traffic",
    )
    healthy, unhealthy = target_health(env, live.target_group_arn, traffic.client)
    check(
        "targets healthy",
        not unhealthy and len(healthy) >= svc["desiredCount"],
        f"{len(healthy)}/{svc['desiredCount']} healthy" + (f"; {', '.join(unhealthy)}" if unhealthy else ""),
    )
    metrics = clients.metrics
    end = datetime.now(UTC)
    # Only traffic served after the rollout counts: the window starts when these checks began.
    span = env.post_deployment.window_seconds
    watched = (end - since).total_seconds()
    limits_for = criteria(env)
    window = metrics.target_group_window(
        target_group_arn=live.target_group_arn,
        load_balancer_arn=traffic.load_balancer_arn(),
        start=max(since, end - timedelta(seconds=span)),
        end=end,
        statistic=limits_for.latency_statistic,
        period=env.metrics.period_seconds,
        p99_statistic=limits_for.p99_statistic if limits_for.max_p99_ms is not None else None,
    )
    ev = evaluate(100, window, limits_for)
    limits = "SLO" if env.slo else "thresholds"
    seen = f"last {span}s" if watched >= span else f"watching {watched:.0f}/{span}s"
    check(
        f"metrics within {limits}",
        ev.verdict == PASS and watched >= span,
        f"{seen}: {ev.summary}" + (f" ({'; '.join(ev.reasons)})" if ev.reasons and ev.verdict == "fail" else ""),
        evaluation=ev.to_dict(),
    )
    alarms = set(metrics.alarms_in_alarm(env.alarm_prefix))
    new = sorted(alarms - baseline_alarms)
    check(
        "no new alarms",
        not new,
        f"newly in ALARM since pre-flight: {', '.join(new)}" if new else f"{len(alarms)} in ALARM, none new since pre-flight",
        alarms=sorted(alarms),
    )
    return out


@dataclass
class Verdict:
    """A round's meaning: `done` (passed or failed), the report the task returns, why it failed."""

    done: bool
    report: dict
    failure: str | None = None
    failed: list[dict] = field(default_factory=list)


def verdict(checks: list[dict], *, rounds: int, elapsed: float, window_seconds: float, timeout: float,
            poll: float) -> Verdict:
    """Pass when every check passes; fail at once on a new alarm or on metrics outside the limits over a
    whole window (as a canary gate does: production should not serve a bad version until the timeout),
    or when the next poll would pass the timeout; else keep watching (a slot still settling gets until
    the timeout). Metrics that stay inconclusive (too little traffic) for a whole window, with everything
    else healthy, pass with a warning: too little traffic is not evidence of failure."""
    failed = [c for c in checks if not c["passed"]]
    report = {"passed": not failed, "checks": checks, "rounds": rounds, "elapsed_seconds": round(elapsed, 1),
              "timeout_seconds": timeout, "warnings": []}
    quiet = [c for c in failed if c.get("evaluation", {}).get("verdict") == "inconclusive"]
    if failed and failed == quiet and elapsed >= window_seconds:
        report.update(passed=True, warnings=[f"{c['check']}: inconclusive: {c['detail']}" for c in quiet])
        failed = []
    if not failed:
        return Verdict(True, report)
    new_alarm = next((c for c in failed if c["check"] == "no new alarms"), None)
    breached = any(c.get("evaluation", {}).get("verdict") == "fail" for c in failed) and elapsed >= window_seconds
    why = (new_alarm["detail"] if new_alarm else
           f"metrics outside the limits over the whole {window_seconds:.0f}s window" if breached else
           f"not healthy after {elapsed:.0f}s (timeout {timeout:.0f}s)" if elapsed + poll > timeout else None)
    if why is not None:
        message = f"post-deployment checks failed: {why}: " + "; ".join(f"{c['check']}: {c['detail']}" for c in failed)
        return Verdict(True, report, message, failed)
    return Verdict(False, report, None, failed)
