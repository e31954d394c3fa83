"""latticedb_control: a person promotes, pauses, resumes or aborts the deployment holding an environment.

A thin adapter: the rules are in latticedb_deploy.control (pure), the store is the lease item
(EnvironmentLock.signal, a conditional write naming the owner and the signal it replaces).
`enter_phase`: the deployment's own side of that store, its verify-phase markers (control.VERIFYING,
control.VERIFIED), written the same way, so a person's signal and a marker cannot both win.
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
    nothing is written.

    `deployment` (default: the run's `deployment` param) names the run meant, "<dag_id>/<run_id>" or a run
    id alone: when another run holds the environment (the one named finished, and a new one took it) the
    task fails naming the holder, and nothing is written. Empty: whichever deployment holds it (the log
    and the reply name it). A malformed value fails before any AWS call."""

    template_fields = (*LatticeDBOperator.template_fields, "action", "reason")

    def __init__(self, *, action: str = "{{ params.action }}", reason: str = "{{ params.reason }}",
                 deployment: str | None = None, **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.action = action
        self.reason = reason
        self.deployment = deployment

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

    def _target(self, context: Any) -> Any:
        """The deployment this run names (control.Target), or None; a malformed one is refused (no AWS call)."""
        from latticedb_deploy.control import ControlRefused, parse_target

        named = self.deployment if self.deployment is not None else (context.get("params") or {}).get("deployment")
        try:
            return parse_target(None if named is None else str(named))
        except ControlRefused as exc:
            self._refuse(context, f"{exc}")

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock
        from latticedb_deploy.control import ControlRefused, apply, clock, effect, ending_refusal

        me, by, name = owner_of(context), self._by(context), self.env.name
        target = self._target(context)  # before any AWS call
        lock = EnvironmentLock(self.env)
        for _ in range(ATTEMPTS):
            holder = lock.holder()
            if holder is None or holder.expired():
                gone = f" ({target} finished, or gave the environment back)" if target else ""
                self._refuse(context, f"no deployment in flight in {name!r}{gone}: nothing to {self.action}. "
                                      "Nothing changed.", str(target) if target else None)
            if target is not None and not target.matches(holder.owner):
                self._refuse(context, f"{target} does not hold {name!r}: {holder.owner} does (since "
                                      f"{clock(holder.acquired_at)}). The deployment named has finished or lost the "
                                      f"environment; nothing to {self.action} on it, and {holder.owner} is not the run "
                                      "meant. Nothing changed.", str(target))
            if holder.blocked:
                self._refuse(context, f"{name!r} is locked because {holder.blocked}: no deployment to {self.action} "
                                      "(latticedb_unlock clears it). Nothing changed.", holder.owner)
            try:
                signal = apply(holder.signal, str(self.action), owner=holder.owner, by=by, reason=str(self.reason),
                               now=time.time(), run=me)
            except ControlRefused as exc:
                self._refuse(context, f"{exc}", holder.owner)
            why = self._ending(context, holder.owner)
            if why:
                self._refuse(context, ending_refusal(holder.owner, why, str(self.action)), holder.owner)
            if lock.signal(holder.owner, signal.to_json(), holder.control):
                break
        else:
            raise AirflowFailException(f"the lease on {name!r} kept changing while writing {self.action}: look again")
        deployment = holder.owner
        if target is None:
            self.log.warning("no deployment named: acting on %s, which holds %s", deployment, name)
        what = effect(signal.action, deployment, holder.signal)
        self.log.warning("%s: %s on %s in %s (%s)", signal.message, signal.action, deployment, name, what)
        fields = {"Deployment": deployment, "Action": signal.action, "By": by, "Reason": signal.reason,
                  "At": clock(signal.at), "Effect": what,
                  "Targeted": f"named ({target})" if target else "the holder of the environment (no deployment named)"}
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
        return {**signal.to_dict(), "deployment": deployment, "environment": name, "effect": what,
                "named": str(target) if target else None}

    def _ending(self, context: Any, owner: str) -> str | None:
        """Why the deployment `owner` is ending whatever is sent (control.ending over its run's task states), or
        None. A failed read is logged and taken as not ending: an abort must not wait on a status read."""
        from latticedb_deploy.control import ending

        dag_id, _, run_id = owner.partition("/")
        try:
            states = context["ti"].get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id) or {}
        except Exception as exc:  # noqa: BLE001
            self.log.warning("could not read %s's task states (%s): acting on the lease alone", owner, exc)
            return None
        return ending(states)

    def _log_entry(self, context: Any, fields: dict[str, object]) -> None:
        from latticedb_deploy.deployment_log import append_text, render_control_entry, resolve_log_path

        try:
            text = render_control_entry(datetime.now(UTC), {**fields, "Environment": self.env.name,
                                                            "Run": f"{owner_of(context)}"})
            append_text(resolve_log_path(self.env.deployment_log), text)
            self.log.info("Deployment log:\n%s", text)
        except Exception as exc:  # noqa: BLE001 - the signal is written; the log is a record of it
            self.log.warning("deployment log entry not written: %s", exc)


def _write_mark(operator: LatticeDBOperator, lock: Any, owner: str, phase: str, current: Any, holder: Any) -> bool:
    """Write the deployment's `phase` mark over `current`, conditional on the signal `holder` read (as a
    control run's write is); whether it was written (False: the signal changed under us)."""
    from latticedb_deploy.control import phase_marker

    marker = phase_marker(phase, current, owner=owner, now=time.time())
    if not lock.signal(owner, marker.to_json(), holder.control):
        return False
    operator.log.info("lease on %s marked %s%s", operator.env.name, phase,
                      f" (replacing: {current.message})" if current is not None else "")
    return True


def mark_rolling_back(operator: LatticeDBOperator, context: Any, holder: Any) -> bool:
    """Mark on this run's lease that its rollback started (control.ROLLING_BACK), so a control run sent now
    is refused instead of accepted and ignored. Best effort: the rollback never waits or fails on it (a
    mark not written is logged; the rollback goes on). `holder`: the lease the rollback step just renewed.
    Returns whether the lease carries the mark."""
    from latticedb_deploy.aws.locks import EnvironmentLock
    from latticedb_deploy.control import ROLLING_BACK
    from latticedb_deploy.operators.base import control_signal, owner_or_none

    owner = owner_or_none(context)
    if owner is None or holder is None:
        return False
    lock = EnvironmentLock(operator.env)
    try:
        for _ in range(ATTEMPTS):
            current = control_signal(holder, operator.log)
            if current is not None and current.action == ROLLING_BACK:
                return True
            if _write_mark(operator, lock, owner, ROLLING_BACK, current, holder):
                return True
            holder = lock.holder()  # the signal changed under us (a control run): read it again
            if holder is None or holder.owner != owner:
                break
    except Exception as exc:  # noqa: BLE001 - the rollback matters more than the mark
        operator.log.warning("lease on %s not marked %s: %s", operator.env.name, ROLLING_BACK, exc)
        return False
    operator.log.warning("lease on %s not marked %s: it kept changing, or another run holds it",
                         operator.env.name, ROLLING_BACK)
    return False


def enter_phase(operator: LatticeDBOperator, context: Any, phase: str, *, holder: Any = None, aborted: str) -> Any:
    """Mark on this run's lease that its deployment entered `phase` (control.VERIFYING / VERIFIED), so a
    control run can tell: in verify only abort applies; past it nothing does. Renews the lease first (a
    lost lease stops the task: LEASE LOST); an abort already on it fails the task instead, with `aborted`
    (its `{abort}` replaced by the abort's message: who and why), so the run's rollback runs. The write is
    conditional on the signal read (as a control run's is): an abort that lands first is seen, one that
    lands after is refused.

    `holder`: the lease just renewed (hold_lease's result), to save a renewal. Returns the lease, or None
    when the context names no run (a hand-built context: no lease to mark)."""
    from latticedb_deploy.aws.locks import EnvironmentLock, LeaseLostError
    from latticedb_deploy.operators.base import control_signal, owner_or_none

    owner = owner_or_none(context)
    if owner is None:
        return None
    lock = EnvironmentLock(operator.env)
    for _ in range(ATTEMPTS):
        if holder is None:
            try:
                holder = lock.renew(owner)
            except LeaseLostError as exc:
                operator.lease_lost(context, str(exc))
        current = control_signal(holder, operator.log)
        if current is not None and current.action == "abort":
            msg = aborted.format(abort=f"{current.message} (latticedb_control run {current.run or '?'})")
            operator.log.error("%s", msg)
            raise AirflowFailException(msg)
        if current is not None and current.action == phase:
            return holder
        if _write_mark(operator, lock, owner, phase, current, holder):
            return holder
        holder = None  # the signal changed under us (a control run): read it again
    raise AirflowFailException(f"the lease on {operator.env.name!r} kept changing while marking {phase}: look again")
