"""verify.post_deployment_checks: the runbook's post-deployment checks, waited for in the triggerer."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator


class PostDeploymentChecksOperator(LatticeDBOperator):
    """The runbook's post-deployment-checks.sh --timeout 600: poll until every check passes or time runs out.

    Service steady (running = desired, one deployment, 100 % of traffic), targets healthy,
    metrics within the SLO/thresholds over the last `post_deployment.window_seconds`, and
    no alarm in ALARM that was not already in ALARM at pre-flight (a new alarm fails at once).
    Metrics that stay inconclusive (too little traffic) for a whole window pass with a warning
    (latticedb_deploy.post_deployment). The wait is deferred: the rounds run in the triggerer
    (PostDeploymentChecksTrigger), no worker slot is held. A verdict fails with
    AirflowFailException (no retry: the timeout is the budget); a round that cannot reach AWS
    is tried again at the next poll until the timeout.

    `preflight_incidents` is pre-flight's check_no_active_incidents result (the alarms already in
    ALARM then, which are not new); without it every alarm in ALARM counts as new.

    latticedb_control: an abort fails the checks at the trigger's next poll ("post-deployment checks
    aborted by <user>: <reason>"), and the run's rollback runs. Once the checks pass, the lease is marked
    `verified` (operators.control.enter_phase; an abort that landed meanwhile still fails them): from then
    on latticedb_control refuses every action, the rollback no longer running.
    """

    template_fields = (*LatticeDBOperator.template_fields, "preflight_incidents")
    ui_color = "#e6f4ea"

    def __init__(self, *, timeout_seconds: int | None = None, poll_seconds: float | None = None,
                 preflight_incidents: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.preflight_incidents = preflight_incidents

    def execute(self, context: Any) -> None:
        from latticedb_deploy.operators.base import owner_or_none
        from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger

        preflight = self.preflight_incidents or {}
        timeout = float(self.timeout_seconds or self.env.post_deployment.timeout_seconds)
        poll = float(self.poll_seconds or self.env.metrics.poll_seconds)
        self.log.info("Watching the live slot for %ss (timeout %.0fs, a round every %.0fs)",
                      self.env.post_deployment.window_seconds, timeout, poll)
        self.defer(
            trigger=PostDeploymentChecksTrigger(
                environment=self.env.name, config=self.config_snapshot, since=time.time(),
                baseline_alarms=sorted((preflight.get("data") or {}).get("alarms") or []),
                timeout_seconds=timeout, poll_seconds=poll, owner=owner_or_none(context),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        if event.get("lease_lost"):
            self.lease_lost(context, event["reason"])
        report = event["report"]
        for c in report.get("checks") or []:
            self.log.info("%s %s: %s", "✓" if c["passed"] else ("⚠" if report["passed"] else "✗"), c["check"], c["detail"])
        if event.get("failure"):
            context["ti"].xcom_push(key="return_value", value=report)
            raise AirflowFailException(event["failure"])
        from latticedb_deploy.control import VERIFIED
        from latticedb_deploy.operators.control import enter_phase

        # The last moment an abort can still roll back: after this mark, latticedb_control refuses it.
        try:
            enter_phase(self, context, VERIFIED, aborted="post-deployment checks passed, but the deployment was "
                        "{abort} before the run moved past verify")
        except AirflowFailException:
            context["ti"].xcom_push(key="return_value", value=report)
            raise
        return report
