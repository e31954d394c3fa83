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

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunLink, TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.config import WATCH_DEFAULT_OFFSETS, WATCH_LABELS
from latticedb_deploy.operators.base import DeploymentStepOperator, LatticeDBOperator
from latticedb_deploy.operators.best_effort import BestEffortMixin
from latticedb_deploy.watch_schedule import WATCH_DAG_ID

DEFAULT_OFFSETS = tuple(int(o) for o in WATCH_DEFAULT_OFFSETS)
LABELS = WATCH_LABELS
ROLLBACK_DAG_ID = "latticedb_rollback"
WATCH_XCOM_KEY = "watch"


def _parse_moment(value: Any, fallback: datetime) -> datetime:
    """An ISO 8601 moment (the `deployed_at` param), or `fallback` when there is none."""
    text = "" if value is None else str(value).strip()
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
    """One follow-up SLO check, `offsets_seconds[index]` after the deployment.

    `deployed_at`, `offsets_seconds` and `window_seconds` left unset are the run's params, values
    already (latticedb_deploy.params)."""

    template_fields = (*LatticeDBOperator.template_fields, "deployment", "version", "deployed_at",
                       "offsets_seconds", "window_seconds", "revision", "deployment_url")

    def __init__(
        self,
        *,
        index: int,
        deployment: str = "{{ params.deployment }}",
        version: str = "{{ params.version }}",
        deployed_at: Any = None,
        offsets_seconds: Any = None,
        window_seconds: Any = None,
        revision: str = "{{ params.revision }}",
        deployment_url: str = "{{ params.deployment_url }}",
        **kwargs: Any,
    ):
        kwargs.setdefault("image_uri", "{{ params.image }}")
        super().__init__(**kwargs)
        self.index = index
        self.deployment, self.version, self.deployed_at = deployment, version, deployed_at
        self.offsets_seconds, self.window_seconds = offsets_seconds, window_seconds
        self.revision, self.deployment_url = revision, deployment_url

    @property
    def label(self) -> str:
        return LABELS[self.index]

    def _offsets(self, context: Any) -> list[float]:
        from latticedb_deploy.params import given_or_param

        raw = given_or_param(self.offsets_seconds, context, "offsets_seconds")
        values = list(raw or DEFAULT_OFFSETS)
        if len(values) != len(LABELS) or any(float(v) < 0 for v in values):
            raise AirflowFailException(f"offsets_seconds must be {len(LABELS)} non-negative numbers, got {raw!r}")
        return [float(v) for v in values]

    def due(self, context: Any) -> datetime:
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
        from latticedb_deploy.params import given_or_param

        deployed_at = given_or_param(self.deployed_at, context, "deployed_at")
        return _parse_moment(deployed_at, started) + timedelta(seconds=self._offsets(context)[self.index])

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
        from latticedb_deploy.params import number

        span = number(self.window_seconds, context, "window_seconds", env.post_deployment.window_seconds)
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

        if not self.notify_enabled(context):
            self.log.info("notify=false: not sending %r", event)
            return
        identity = {"Image": self.image_uri, "Revision": self.revision, "Deployment run": self.deployment_url}
        fields = {"Environment": self.environment, "Run": context["run_id"], **fields,
                  **{k: v for k, v in identity.items() if v not in (None, "", "None")}}
        notify.send(self.env, event, title, fields, notify.run_link(context))


class WatchRunLink(TriggerDagRunLink):
    """The "Triggered DAG" link to the watch run this task scheduled; none when it scheduled none.

    Airflow's link looks the triggered run's id up in XCom after every try; where the environment has
    no watch (the task skipped) that lookup logged an ERROR "XCom not found" into a succeeded
    deployment's log and stored a link to a run named "None". The run id is on the operator itself
    when this try scheduled one (run() sets trigger_run_id), so nothing is looked up without it.
    """

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if not getattr(operator, "trigger_run_id", None):
            return ""
        return super().get_link(operator, ti_key=ti_key)


class SchedulePostDeploymentWatchOperator(BestEffortMixin, DeploymentStepOperator, TriggerDagRunOperator):
    """schedule_post_deployment_watch: after a succeeded deployment, trigger latticedb_post_deployment_watch
    for it and do not wait (the watch lasts 24 h; its checks defer in the triggerer).

    Skips, saying why, where the environment has no watch (post_deployment.watch_offsets_seconds).
    Best-effort like cleanup and the deployment log: the deployment is done and verified, so a watch
    that cannot be scheduled (the DAG missing, the API unreachable) is a warning on a succeeded run.
    The run id is derived from the deployment's, so a cleared and re-run task finds its watch (skipped)
    rather than starting a second one.
    """

    template_fields = DeploymentStepOperator.template_fields
    ui_color = "#fff4e5"
    operator_extra_links = (WatchRunLink(),)

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trigger_dag_id", WATCH_DAG_ID)
        kwargs.setdefault("wait_for_completion", False)
        kwargs.setdefault("skip_when_already_exists", True)
        kwargs.setdefault("openlineage_inject_parent_info", False)
        super().__init__(**kwargs)

    def run(self, context: Any) -> Any:
        from latticedb_deploy import notify
        from latticedb_deploy.watch_schedule import watch_request, why_not_watched

        reason = why_not_watched(self.env)
        if reason:
            self.log.info("Not scheduling a follow-up watch: %s", reason)
            raise AirflowSkipException(reason)
        ti = context["ti"]
        new = self.new_revision or {}
        dag = context.get("dag")
        request = watch_request(
            self.env, dag_id=getattr(dag, "dag_id", None) or ti.dag_id, run_id=context["run_id"],
            deployed_at=datetime.now(UTC), version=new.get("version"), image=new.get("image") or self.image_uri,
            revision=(new.get("task_definition") or "").split("/")[-1] or None, run_link=notify.run_link(context),
        )
        paused = self._watch_dag_paused(ti)  # raises when the DAG is unknown: a warning, not a trigger that fails
        if paused:
            self.log.warning("%s is paused: its run is created but its checks start only when it is unpaused", WATCH_DAG_ID)
        ti.xcom_push(key=WATCH_XCOM_KEY, value={"run_id": request.run_id, "due": request.summary(), "paused": paused})
        self.log.info("Scheduling %s run %s: checks %s", WATCH_DAG_ID, request.run_id, request.summary())
        self.trigger_run_id, self.conf = request.run_id, request.conf
        return TriggerDagRunOperator.execute(self, context)  # hands the trigger to the task runner (raises)

    @staticmethod
    def _watch_dag_paused(ti: Any) -> bool | None:
        get_dag = getattr(ti, "get_dag", None)  # the Task SDK's GetDag (Airflow 3.2+)
        return None if get_dag is None else bool(getattr(get_dag(WATCH_DAG_ID), "is_paused", False))
