"""latticedb_control: a person promotes, pauses, resumes or aborts the deployment holding an environment.

A thin adapter: the rules are in latticedb_deploy.control (pure), the store is the lease item
(EnvironmentLock.signal, a conditional write naming the owner and the signal it replaces).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator, owner_of

ATTEMPTS = 3  # the signal changed under us (another control run, a renewal racing): read and decide again


class ControlDeploymentOperator(LatticeDBOperator):
    """Write the action on the lease of the deployment in flight; post it to Slack and the deployment log.

    No deployment in flight (no lease, or an expired one), a lease held by a run that is not a
    deployment, or an action that does not apply (see control.apply): the task fails saying why, and
    nothing is written."""

    template_fields = (*LatticeDBOperator.template_fields, "action", "reason")

    def __init__(self, *, action: str = "{{ params.action }}", reason: str = "{{ params.reason }}", **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.action = action
        self.reason = reason

    def _refuse(self, context: Any, why: str, deployment: str | None = None) -> None:
        self.log.error("%s", why)
        self.send(context, "warning", f"Control {self.action} refused in {self.env.name}: nothing changed",
                  {"Action": self.action, "By": self._by(context), "Reason": self.reason, "Deployment": deployment,
                   "Why": why})
        raise AirflowFailException(why)

    @staticmethod
    def _by(context: Any) -> str:
        from latticedb_deploy.operators.preflight import triggered_by

        return triggered_by(context)

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock
        from latticedb_deploy.control import ControlRefused, apply, clock, effect

        me, by, name = owner_of(context), self._by(context), self.env.name
        lock = EnvironmentLock(self.env)
        for _ in range(ATTEMPTS):
            holder = lock.holder()
            if holder is None or holder.expired():
                self._refuse(context, f"no deployment in flight in {name!r}: nothing to {self.action}. Nothing changed.")
            if holder.blocked:
                self._refuse(context, f"{name!r} is locked because {holder.blocked}: no deployment to {self.action} "
                                      "(latticedb_unlock clears it). Nothing changed.", holder.owner)
            try:
                signal = apply(holder.signal, str(self.action), owner=holder.owner, by=by, reason=str(self.reason),
                               now=time.time(), run=me)
            except ControlRefused as exc:
                self._refuse(context, f"{exc}", holder.owner)
            if lock.signal(holder.owner, signal.to_json(), holder.control):
                break
        else:
            raise AirflowFailException(f"the lease on {name!r} kept changing while writing {self.action}: look again")
        deployment = holder.owner
        what = effect(signal.action, deployment)
        self.log.warning("%s: %s on %s in %s (%s)", signal.message, signal.action, deployment, name, what)
        fields = {"Deployment": deployment, "Action": signal.action, "By": by, "Reason": signal.reason,
                  "At": clock(signal.at), "Effect": what}
        if signal.paused_at:
            fields["Paused"] = f"by {signal.paused_by} at {clock(signal.paused_at)}"
        dag_id, _, run_id = deployment.partition("/")
        from latticedb_deploy.notify import airflow_base_url

        link = f"{airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        title = f"Deployment {signal.message.split(' by ')[0]} by {by} in {name}"
        if self.notify_enabled(context):
            from latticedb_deploy import notify

            notify.send(self.env, "warning" if signal.action == "abort" else "stage", title,
                        {"Environment": name, **fields, "Control run": context["run_id"]}, link)
        self._log_entry(context, fields)
        return {**signal.to_dict(), "deployment": deployment, "environment": name, "effect": what}

    def _log_entry(self, context: Any, fields: dict[str, object]) -> None:
        from latticedb_deploy.deployment_log import append_text, render_control_entry, resolve_log_path

        try:
            text = render_control_entry(datetime.now(UTC), {**fields, "Environment": self.env.name,
                                                            "Run": f"{owner_of(context)}"})
            append_text(resolve_log_path(self.env.deployment_log), text)
            self.log.info("Deployment log:\n%s", text)
        except Exception as exc:  # noqa: BLE001 - the signal is written; the log is a record of it
            self.log.warning("deployment log entry not written: %s", exc)
