"""Blue/green specifics: smoke tests through the test listener, and the approval before the switch."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.approval import OUTCOME_KEY, DeploymentApprovalOperator, triggering_user
from latticedb_deploy.operators.slot_smoke import SmokeTestSlotOperator

SMOKE_IDLE_TASK_ID = "deploy.smoke_test_idle_colour"


class SmokeTestIdleColourOperator(SmokeTestSlotOperator):
    """Point the test listener at the idle colour and smoke-test it there: no production traffic involved.

    The shared operator (latticedb_deploy.operators.slot_smoke) also smoke-tests the canary slot.
    """

    slot_label = "idle colour"


class SwitchApprovalOperator(DeploymentApprovalOperator):
    """Ask a person in the Airflow UI before production traffic moves; reject or timeout = not deployed.

    Skipped (approved by policy) when `require_approval` (given, else the run's param) is false; its
    default comes from the environment's `blue_green.require_approval` (true for production). In a four-eyes
    environment (`approval.four_eyes`) the approval is always asked, and the run's trigger cannot
    give it (latticedb_deploy.operators.approval).

    A rejection (or timeout) scales the idle colour back down, says so in Slack, records
    {"approved": false, ...} in XCom `outcome` and skips the switch and what follows;
    notify_success then ends the run failed with "rejected: not deployed" (no rollback, no page).
    """

    template_fields = (*DeploymentApprovalOperator.template_fields, "require_approval", "baseline")

    def __init__(self, *, require_approval: Any = None, baseline: Any = None, **kwargs: Any):
        """`baseline`: the last good state (prepare.record_baseline's result): a rejection scales its idle colour down."""
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
        super().__init__(**kwargs)
        self.require_approval = require_approval
        self.baseline = baseline

    def execute(self, context: Any) -> Any:
        from latticedb_deploy.params import flag

        env = self._env()
        required = flag(self.require_approval, context, "require_approval", env.blue_green.require_approval)
        if not required and env.four_eyes:
            self.log.warning("require_approval=false ignored: %s requires four eyes (approval.four_eyes)", env.name)
            required = True
        if not required:
            self.log.info("Approval not required for %s: switching without asking", env.name)
            context["ti"].xcom_push(key=OUTCOME_KEY, value={
                "approved": True, "outcome": "not_required", "by": "policy", "reason": "approval not required",
                "environment": env.name, "four_eyes": False,
            })
            return {"chosen_options": [self.APPROVE], "approved_by": "policy"}
        fields: dict[str, object] = {
            "Answer within": f"{env.blue_green.approval_timeout_seconds}s (no answer = reject)",
        }
        if env.four_eyes:
            fields["Four eyes"] = f"{triggering_user(context) or 'the trigger'} cannot approve; another engineer must"
        self._notify(context, env, "approval_requested", "Approval requested: switch production traffic", fields)
        return self.ask(context, env)

    def on_approved(self, context: Any, env: Any, record: dict) -> None:
        self._notify(
            context, env, "stage", f"Switch approved by {record['by']}",
            {"Approved by": record["by"], "Triggered by": record.get("triggered_by")},
        )

    def on_rejected(self, context: Any, env: Any, outcome: str, reason: str) -> None:
        """Scale the idle colour (the new revision, never switched to) back down: only while this run still
        holds the environment (an emergency rollback may have taken it during the wait, and owns traffic
        now) and only if that colour takes no production traffic."""
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.aws.locks import EnvironmentLock, LeaseLostError
        from latticedb_deploy.operators.base import owner_of

        baseline = self.baseline
        if not baseline:
            raise AirflowFailException(f"{self.task_id}: no baseline given: cannot tell which colour to scale down")
        idle = baseline["idle_service"]
        try:
            EnvironmentLock(env).renew(owner_of(context))  # fencing, as before every change
        except LeaseLostError as exc:
            self.log.error("Switch %s (%s): %s scaled down by nobody: %s", outcome, reason, idle, exc)
            self._notify(context, env, "warning", "Deployment rejected: not deployed; the environment was taken over",
                         {"Outcome": reason, "Idle colour": f"{idle} left as it is", "Why": str(exc)})
            return
        share = TrafficClient(env).weights().get(baseline["idle_target_group_arn"], 0)
        if share > 0:
            self.log.error("Switch %s (%s): %s takes %d%% of production traffic: not scaled down", outcome, reason, idle, share)
            self._notify(context, env, "warning", "Deployment rejected: not deployed; idle colour takes traffic",
                         {"Outcome": reason, "Idle colour": f"{idle} takes {share}% of traffic: left as it is"})
            return
        EcsClient(env).scale(idle, 0)
        self.log.warning("Switch %s (%s): not deployed, production untouched, %s scaled to 0", outcome, reason, idle)
        self._notify(
            context, env, "warning", "Deployment rejected: not deployed, production untouched",
            {"Outcome": reason, "Idle colour": f"{idle} scaled to 0"},
        )
