"""Watch a target group's CloudWatch metrics for a step's interval and decide pass or fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class MetricGateTrigger(BaseTrigger):
    """Evaluates every `poll_seconds` from `started_at`; fires {"passed", "reason", "evaluations"}.

    `owner` (the run's "<dag_id>/<run_id>"): the lease is renewed on every poll; if the run lost it,
    the trigger fires {"passed": False, "lease_lost": True, "reason": who holds it and why} at once.
    """

    def __init__(
        self,
        *,
        environment: str,
        step: int,
        target_group_arn: str,
        load_balancer_arn: str,
        started_at: float,
        interval_seconds: float,
        deadline: float,
        tolerated_failures: int = 0,
        owner: str | None = None,
    ):
        super().__init__()
        self.environment = environment
        self.step = step
        self.target_group_arn = target_group_arn
        self.load_balancer_arn = load_balancer_arn
        self.started_at = started_at
        self.interval_seconds = interval_seconds
        self.deadline = deadline
        self.tolerated_failures = tolerated_failures
        self.owner = owner

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.metric_gate.MetricGateTrigger",
            {
                "environment": self.environment,
                "step": self.step,
                "target_group_arn": self.target_group_arn,
                "load_balancer_arn": self.load_balancer_arn,
                "started_at": self.started_at,
                "interval_seconds": self.interval_seconds,
                "deadline": self.deadline,
                "tolerated_failures": self.tolerated_failures,
                "owner": self.owner,
            },
        )

    def _env(self):
        from latticedb_deploy.config import load_config

        return load_config().environment(self.environment)

    def _evaluate(self, env, criteria):
        from latticedb_deploy.aws.cloudwatch import MetricsClient
        from latticedb_deploy.judge import evaluate

        window = MetricsClient(env).target_group_window(
            target_group_arn=self.target_group_arn,
            load_balancer_arn=self.load_balancer_arn,
            start=datetime.fromtimestamp(self.started_at, UTC),
            end=datetime.now(UTC),
            statistic=criteria.latency_statistic,
            period=env.metrics.period_seconds,
            p99_statistic=criteria.p99_statistic if criteria.max_p99_ms is not None else None,
        )
        return evaluate(self.step, window, criteria)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.judge import GateCriteria, decide
        from latticedb_deploy.triggers.lease import LeaseKeeper

        env = await asyncio.to_thread(self._env)
        # Thresholds, or in an environment with an SLO (slo.enforce_in_gates) the stricter of both, P99 included.
        criteria = GateCriteria.for_gate(env, tolerated_failures=self.tolerated_failures)
        lease = LeaseKeeper(self.environment, self.owner, self.log)
        evaluations = []
        interval_end = self.started_at + self.interval_seconds
        while True:
            lost = await lease.check()
            if lost:
                yield TriggerEvent(
                    {"passed": False, "lease_lost": True, "reason": lost, "step": self.step,
                     "evaluations": [e.to_dict() for e in evaluations[-20:]]}
                )
                return
            remaining = interval_end - time.time()  # evaluate once more exactly at the end of the interval
            await asyncio.sleep(min(env.metrics.poll_seconds, remaining) if remaining > 0.5 else env.metrics.poll_seconds)
            try:
                ev = await asyncio.to_thread(self._evaluate, env, criteria)
                evaluations.append(ev)
                self.log.info("gate %d%%: %s", self.step, ev.summary)
            except Exception as exc:  # noqa: BLE001 - a CloudWatch hiccup is not a verdict; keep watching
                self.log.warning("gate %d%%: metrics query failed (will retry): %s", self.step, exc)
            decision = decide(evaluations, criteria=criteria, now=time.time(), interval_end=interval_end, deadline=self.deadline)
            if decision.done:
                yield TriggerEvent(
                    {
                        "passed": bool(decision.passed),
                        "reason": decision.reason,
                        "step": self.step,
                        "evaluations": [e.to_dict() for e in evaluations[-20:]],
                    }
                )
                return
