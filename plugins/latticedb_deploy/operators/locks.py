"""Hold the environment for the length of a run (a setup/teardown pair around the deployment).

acquire_environment / release_environment: a deployment's lease (renewed by every step, see
LatticeDBOperator.hold_lease). take_environment: the emergency rollback takes it by force.
unlock_environment: a person clears a lease kept because a rollback failed (latticedb_unlock).
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator, owner_of

__all__ = [
    "AcquireEnvironmentOperator",
    "ReleaseEnvironmentOperator",
    "TakeEnvironmentOperator",
    "UnlockEnvironmentOperator",
    "owner_of",
]

UNLOCK_HINT = "after checking production, a person clears it with the latticedb_unlock DAG (README: After a failed rollback)"


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _missing_table(env: Any) -> AirflowFailException:
    return AirflowFailException(
        f"lock table {env.lock_table!r} does not exist in {env.region}; create it "
        "(partition key `environment`, string) or set `lock_table` in the config"
    )


class AcquireEnvironmentOperator(LatticeDBOperator):
    """Fail at once, naming the holder, when another run is deploying to the same environment."""

    # A holder that changes the service without recording a baseline (latticedb_service) says so.
    changes_production = False

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock

        me = owner_of(context)
        lock = EnvironmentLock(self.env)
        try:
            holder = lock.acquire(me, changes_production=self.changes_production)
        except lock.client.exceptions.ResourceNotFoundException:
            raise _missing_table(self.env) from None
        if holder is not None and holder.blocked:
            raise AirflowFailException(
                f"environment {self.env.name!r} is locked since {_clock(holder.blocked_at or holder.acquired_at)} UTC "
                f"because a rollback failed ({holder.blocked}); nothing deploys there until {UNLOCK_HINT}."
            )
        if holder is not None:
            left = max(0, int(holder.expires_at - time.time()))
            raise AirflowFailException(
                f"environment {self.env.name!r} is held by {holder.owner} (since "
                f"{time.strftime('%H:%M:%S', time.gmtime(holder.acquired_at))} UTC; the hold expires in {left}s "
                "if that run crashed). Wait for it to finish, then trigger again."
            )
        self.log.info("Holding %s for %s (lease of %ss, renewed at every step)", self.env.name, me, self.env.lock_ttl_seconds)
        return {"environment": self.env.name, "owner": me}


class ReleaseEnvironmentOperator(LatticeDBOperator):
    """Give the environment back, whatever happened to the run, unless a rollback of the run failed.

    Then production may be in a bad state that nobody is fixing: the lease is kept (recorded on the
    lock item as held because a rollback failed) until a person clears it.
    `rollback_task_ids`: the run's rollback tasks; default, the `rollback` group's.
    """

    def __init__(self, *, rollback_task_ids: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.rollback_task_ids = rollback_task_ids

    def _failed_rollbacks(self, context: Any) -> list[str]:
        from latticedb_deploy.incidents import is_rollback_task

        dag = context["dag"]
        ids = self.rollback_task_ids or [t for t in dag.task_ids if is_rollback_task(dag.dag_id, t)]
        if not ids:
            return []
        states = context["ti"].get_task_states(dag_id=dag.dag_id, task_ids=list(ids), run_ids=[context["run_id"]])
        return sorted(t for t, state in (states.get(context["run_id"]) or {}).items() if state == "failed")

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock

        me = owner_of(context)
        lock = EnvironmentLock(self.env)
        failed = self._failed_rollbacks(context)
        if failed:
            why = f"rollback failed at {', '.join(failed)} in {me}"
            if lock.block(me, why):
                self.log.error("NOT releasing %s: %s. It stays locked until %s.", self.env.name, why, UNLOCK_HINT)
                return {"released": False, "locked_because": why}
            self.log.warning("%s, but this run no longer holds %s: nothing to keep", why, self.env.name)
        released = lock.release(me)
        self.log.info("%s %s", "Released" if released else "Did not hold", self.env.name)
        return {"released": released}


class TakeEnvironmentOperator(LatticeDBOperator):
    """The emergency rollback takes the environment by force, recording its run and reason.

    A deployment holding it sees that at its next step or poll and stops without touching traffic."""

    template_fields = (*LatticeDBOperator.template_fields, "reason")

    def __init__(self, *, reason: str = "{{ params.reason }}", **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.reason = reason

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock, TakeRefusedError

        me = owner_of(context)
        lock = EnvironmentLock(self.env)
        dag_id = me.split("/", 1)[0]
        try:
            previous = lock.take(me, str(self.reason), unless_held_by=dag_id)
        except lock.client.exceptions.ResourceNotFoundException:
            raise _missing_table(self.env) from None
        except TakeRefusedError as exc:
            raise AirflowFailException(
                f"another emergency rollback is rolling {self.env.name!r} back: {exc.holder.owner} (since "
                f"{_clock(exc.holder.acquired_at)} UTC, reason: {exc.holder.reason}). Nothing changed. Follow that "
                "run; if it is stuck, mark it failed (its lease is kept if its rollback failed) and trigger again."
            ) from None
        preempted = previous.owner if previous is not None and previous.owner != me else None
        if preempted:
            blocked = f" (it was locked because {previous.blocked})" if previous.blocked else ""
            self.log.warning("Took %s by force from %s%s: that run stops at its next step", self.env.name, preempted, blocked)
            self.send(
                context, "warning", f"Emergency rollback took {self.env.name} over from a running deployment",
                {"Pre-empted": preempted, "Reason": self.reason, "Previously": previous.blocked or "deploying"},
            )
        else:
            self.log.info("Holding %s for %s (nobody else held it)", self.env.name, me)
        # What served before the pre-empted deployment (its prepare.record_baseline): the rollback's default target.
        last_good = previous.baseline if preempted else None
        if last_good:
            self.log.info("The pre-empted run started from %s on %s", last_good.get("service"), last_good.get("task_definition"))
        return {"environment": self.env.name, "owner": me, "preempted": preempted, "preempted_last_good": last_good}


class UnlockEnvironmentOperator(LatticeDBOperator):
    """A person clears the environment's lease: one kept because a rollback failed, or an expired one.

    A live lease (a deployment in progress) is refused unless `force` is true."""

    template_fields = (*LatticeDBOperator.template_fields, "reason", "force")

    def __init__(self, *, reason: str = "{{ params.reason }}", force: Any = None, **kwargs: Any):
        kwargs.setdefault("image_uri", "")
        super().__init__(**kwargs)
        self.reason = reason
        self.force = force

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock

        lock = EnvironmentLock(self.env)
        holder = lock.holder()
        if holder is None:
            self.log.info("%s is not locked: nothing to do", self.env.name)
            return {"cleared": None}
        from latticedb_deploy.params import flag

        forced = flag(self.force, context, "force", False)
        if not (holder.blocked or holder.expired() or forced):
            raise AirflowFailException(
                f"{self.env.name!r} is held by a run in progress, {holder.owner} (lease expires in "
                f"{max(0, int(holder.expires_at - time.time()))}s unless renewed): not clearing it. "
                "Set force=true only if you are sure that run is gone."
            )
        if not lock.clear(expected_owner=holder.owner):
            raise AirflowFailException(f"the lease on {self.env.name!r} changed hands while clearing it: look again")
        state = f"locked because {holder.blocked}" if holder.blocked else f"held by {holder.owner}"
        self.log.warning("Cleared %s (%s) by %s: %s", self.env.name, state, owner_of(context), self.reason)
        self.send(context, "warning", f"Environment {self.env.name} unlocked by hand", {"Was": state, "Reason": self.reason})
        return {"cleared": holder.owner, "was_blocked": holder.blocked}
