"""Blue/green specifics: smoke tests through the test listener, and the approval before the switch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, DownstreamTasksSkipped

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.deploy import BASELINE_TASK_ID, REGISTER_TASK_ID

SMOKE_IDLE_TASK_ID = "deploy.smoke_test_idle_colour"


def _truthy(value: Any, default: bool) -> bool:
    text = str(value).strip().lower()
    if text in ("", "none", "null"):
        return default
    return text in ("true", "1", "yes")


class SmokeTestIdleColourOperator(LatticeDBOperator):
    """Point the test listener at the idle colour and smoke-test it there: no production traffic involved."""

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.smoke import run_smoke_tests

        ti = context["ti"]
        baseline, new = ti.xcom_pull(task_ids=BASELINE_TASK_ID), ti.xcom_pull(task_ids=REGISTER_TASK_ID)
        if not self.env.test_url:
            raise AirflowFailException(f"environment {self.env.name!r} has no test_url for the test listener")
        port = self.env.load_balancer.test_listener_port
        TrafficClient(self.env).set_weights({baseline["idle_target_group_arn"]: 100}, port=port)
        smoke = self.env.smoke
        report = run_smoke_tests(
            self.env.test_url, new["version"],
            timeout=smoke.timeout_seconds, retries=smoke.retries, delay=smoke.retry_delay_seconds,
        ).to_dict()
        for c in report["checks"]:
            self.log.info("%s %s: %s", "✓" if c["passed"] else "✗", c["check"], c["detail"])
        if not report["passed"]:
            failed = "; ".join(c["detail"] for c in report["checks"] if not c["passed"])
            raise AirflowFailException(f"smoke tests of the idle colour ({baseline['idle_colour']}) failed: {failed}")
        return report


class SwitchApprovalOperator(ApprovalOperator):
    """Ask a person in the Airflow UI before production traffic moves; reject or timeout = no switch.

    Skipped (approved by policy) when `require_approval` is false for the run; its default
    comes from the environment's `blue_green.require_approval` (true for production).
    A rejection scales the idle colour back down and is reported, not paged.
    """

    template_fields = (*ApprovalOperator.template_fields, "environment", "require_approval")

    def __init__(
        self,
        *,
        environment: str = "{{ params.environment }}",
        require_approval: Any = "{{ params.require_approval }}",
        **kwargs: Any,
    ):
        kwargs.setdefault(
            "subject", "Switch {{ params.environment }} production traffic to {{ params.image_uri.split('/')[-1] }}?"
        )
        kwargs.setdefault(
            "body",
            "**Image** `{{ params.image_uri }}`\n\n**Environment** {{ params.environment }}\n\n"
            "**Smoke tests of the idle colour** "
            "{% set s = ti.xcom_pull(task_ids='" + SMOKE_IDLE_TASK_ID + "') %}"
            "{% if s %}{% for c in s['checks'] %}\n- {{ '✓' if c['passed'] else '✗' }} {{ c['check'] }}: {{ c['detail'] }}"
            "{% endfor %}{% else %}not run{% endif %}",
        )
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)  # timeout means: do not switch
        super().__init__(**kwargs)
        self.environment = environment
        self.require_approval = require_approval

    def _env(self):
        from latticedb_deploy.config import load_config

        return load_config().environment(self.environment)

    def execute(self, context: Any) -> Any:
        from latticedb_deploy import notify

        env = self._env()
        if not _truthy(self.require_approval, env.blue_green.require_approval):
            self.log.info("Approval not required for %s: switching without asking", env.name)
            return {"chosen_options": [self.APPROVE], "approved_by": "policy"}
        self.response_timeout = timedelta(seconds=env.blue_green.approval_timeout_seconds)
        if _truthy(context["params"].get("notify"), True):
            notify.send(
                env, "approval_requested", "Approval requested: switch production traffic",
                {"Environment": env.name, "Image": context["params"].get("image_uri"), "Run": context["run_id"],
                 "Answer within": f"{env.blue_green.approval_timeout_seconds}s (no answer = reject)"},
                getattr(context["ti"], "log_url", None),
            )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        try:
            return super().execute_complete(context, event)  # approved: carry on
        except DownstreamTasksSkipped:  # rejected (or timed out): the switch and what follows are skipped
            self._rejected(context, event)
            raise

    def _rejected(self, context: Any, event: dict[str, Any]) -> None:
        from latticedb_deploy import notify
        from latticedb_deploy.aws.ecs import EcsClient

        env = self._env()
        baseline = context["ti"].xcom_pull(task_ids=BASELINE_TASK_ID)
        EcsClient(env).scale(baseline["idle_service"], 0)
        who = (event.get("responded_by_user") or event.get("responded_by") or {}).get("name") or "timeout"
        self.log.warning("Switch rejected by %s: production untouched, %s scaled to 0", who, baseline["idle_service"])
        if _truthy(context["params"].get("notify"), True):
            notify.send(
                env, "warning", "Deployment rejected: production untouched",
                {"Environment": env.name, "Image": context["params"].get("image_uri"), "Rejected by": who,
                 "Idle colour": f"{baseline['idle_service']} scaled to 0"},
                getattr(context["ti"], "log_url", None),
            )
