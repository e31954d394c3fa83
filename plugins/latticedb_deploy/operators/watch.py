"""The post-deployment watch (runbook: "monitor for 24 hours"): SLO checks at 1 h, 6 h and 24 h.

Each check defers (DateTimeTrigger: no worker held) until `deployed_at + offset`, then judges
the live slot's metrics over the last window against every SLO metric (the post-deployment
criteria: error rate, P95, P99, availability, never looser than the thresholds), posts a short
verdict, and on a breach posts an alert naming the deployment and offering the rollback DAG, and
fails. Too little traffic to judge is posted as inconclusive and does not fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator

DEFAULT_OFFSETS = (3600, 21600, 86400)
LABELS = ("1h", "6h", "24h")
ROLLBACK_DAG_ID = "latticedb_rollback"


def _parse_moment(value: Any, fallback: datetime) -> datetime:
    text = "" if value in (None, "None") else str(value).strip()
    if not text:
        return fallback
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rollback_link() -> str:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover
        from airflow.configuration import conf
    base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    return f"{base}/dags/{quote(ROLLBACK_DAG_ID, safe='')}/trigger"


class SloWatchOperator(LatticeDBOperator):
    """One follow-up SLO check, `offsets_seconds[index]` after the deployment."""

    template_fields = (*LatticeDBOperator.template_fields, "deployment", "version", "deployed_at",
                       "offsets_seconds", "window_seconds")

    def __init__(
        self,
        *,
        index: int,
        deployment: str = "{{ params.deployment }}",
        version: str = "{{ params.version }}",
        deployed_at: str = "{{ params.deployed_at }}",
        offsets_seconds: Any = "{{ params.offsets_seconds | tojson }}",
        window_seconds: Any = "{{ params.window_seconds }}",
        **kwargs: Any,
    ):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.index = index
        self.deployment, self.version, self.deployed_at = deployment, version, deployed_at
        self.offsets_seconds, self.window_seconds = offsets_seconds, window_seconds

    @property
    def label(self) -> str:
        return LABELS[self.index]

    def _offsets(self) -> list[float]:
        import json

        raw = self.offsets_seconds
        values = json.loads(raw) if isinstance(raw, str) else raw
        values = list(values or DEFAULT_OFFSETS)
        if len(values) != len(LABELS) or any(float(v) < 0 for v in values):
            raise AirflowFailException(f"offsets_seconds must be {len(LABELS)} non-negative numbers, got {raw!r}")
        return [float(v) for v in values]

    def due(self, context: Any) -> datetime:
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
        return _parse_moment(self.deployed_at, started) + timedelta(seconds=self._offsets()[self.index])

    def execute(self, context: Any) -> Any:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        if str(self.deployment or "").strip() in ("", "None"):
            raise AirflowFailException("deployment is required: which deployment is watched (its dag_id/run_id)")
        due = self.due(context)
        if datetime.now(UTC) < due:
            self.log.info("Watch %s of %s: deferring until %s", self.label, self.deployment, due.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=due), method_name="check")
        return self.check(context)

    def check(self, context: Any, event: Any = None) -> dict:
        from latticedb_deploy.aws.cloudwatch import MetricsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.judge import FAIL, PASS, GateCriteria, evaluate

        env = self.env
        traffic = TrafficClient(env)
        live, _, _ = traffic.live_and_idle()
        span = int(self.window_seconds) if str(self.window_seconds) not in ("", "None") else env.post_deployment.window_seconds
        end = datetime.now(UTC)
        criteria = GateCriteria.for_post_deployment(env)
        window = MetricsClient(env).target_group_window(
            target_group_arn=live.target_group_arn, load_balancer_arn=traffic.load_balancer_arn(),
            start=end - timedelta(seconds=span), end=end, statistic=criteria.latency_statistic,
            period=env.metrics.period_seconds,
            p99_statistic=criteria.p99_statistic if criteria.max_p99_ms is not None else None,
        )
        ev = evaluate(100, window, criteria)
        result = {
            "check": self.label, "deployment": self.deployment, "version": self.version, "environment": env.name,
            "live_service": live.service, "verdict": ev.verdict, "summary": ev.summary, "reasons": list(ev.reasons),
            "evaluation": ev.to_dict(), "window_seconds": span,
        }
        what = f"{self.deployment} ({self.version})" if self.version not in (None, "", "None") else str(self.deployment)
        if ev.verdict == FAIL:
            context["ti"].xcom_push(key="return_value", value=result)
            self.send(context, "failed", f"SLO breach {self.label} after deployment {what}", {
                "Verdict": f"{ev.summary} ({'; '.join(ev.reasons)})",
                "Live service": live.service,
                "Roll back": f"trigger {ROLLBACK_DAG_ID} with environment={env.name}: {rollback_link()}",
            })
            raise AirflowFailException(f"SLO breach {self.label} after deployment {what}: {'; '.join(ev.reasons)}")
        word = "OK" if ev.verdict == PASS else "inconclusive"
        self.send(context, "stage", f"Post-deployment watch {self.label}: {word}", {
            "Deployment": what, "Verdict": ev.summary,
        })
        return result

    def send(self, context: Any, event: str, title: str, fields: dict[str, object]) -> None:
        from latticedb_deploy import notify

        if not self.notify_enabled:
            self.log.info("notify=false: not sending %r", event)
            return
        fields = {"Environment": self.environment, "Run": context["run_id"], **fields}
        notify.send(self.env, event, title, fields, notify.run_link(context))
