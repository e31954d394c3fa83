"""latticedb_feature_flags' one task: show or change flags, the kill switch or the circuit breaker."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator

_TITLES = {
    "enable": "Feature flag {flag} enabled",
    "disable": "Feature flag {flag} disabled",
    "kill_switch_on": "KILL SWITCH ON: every feature flag is off",
    "kill_switch_off": "Kill switch off: feature flags back to their own values",
    "circuit_close": "Database circuit breaker closed by hand",
}


class FeatureFlagOperator(LatticeDBOperator):
    """Runs one `flags.apply` action in the environment's Redis; notifies when something changed."""

    template_fields = (*LatticeDBOperator.template_fields, "action", "flag", "reason")

    def __init__(
        self,
        *,
        action: str = "{{ params.action }}",
        flag: str = "{{ params.flag }}",
        reason: str = "{{ params.reason or '' }}",
        **kwargs: Any,
    ):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.action = action
        self.flag = flag
        self.reason = reason

    def execute(self, context: Any) -> dict:
        from latticedb_deploy import flags, notify

        try:
            flag = None if self.flag in (None, "", "None") else self.flag
            state = flags.apply(flags.redis_client(self.env), self.action, flag)
        except flags.FlagError as exc:
            raise AirflowFailException(str(exc)) from None
        summary = flags.describe(state)
        self.log.info("%s in %s:\n%s", self.action, self.environment, summary)
        if self.action in flags.MUTATING_ACTIONS and self.notify_enabled(context):
            notify.send(
                self.env,
                "warning" if self.action == "kill_switch_on" else "flags",
                _TITLES[self.action].format(flag=self.flag),
                {
                    "Environment": self.environment,
                    "Changed": ", ".join(f"{k}={v}" for k, v in state["changed"].items()),
                    "Reason": self.reason,
                    "State": summary,
                    "Run": context["run_id"],
                },
                notify.run_link(context),
            )
        return state
