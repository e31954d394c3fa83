"""Shared base: every LatticeDB operator knows its environment and image from params."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment


class LeaseLost(AirflowFailException):
    """This run no longer holds its environment's lease: it stops, changing nothing (no retry)."""


class ReportedFailure(AirflowFailException):
    """A failure the run's own summary message tells (the nightly's): the task fails (no retry) and is
    recorded, but sends no "failed at <task>" message of its own, so one event is one message at 3 a.m."""


def owner_of(context: Any) -> str:
    """The lease owner for a run: "<dag_id>/<run_id>"."""
    dag, run_id = context.get("dag"), context.get("run_id")
    dag_id = getattr(dag, "dag_id", None) or getattr(context.get("ti"), "dag_id", None)
    if not dag_id or not run_id:
        raise AirflowFailException("cannot tell which run this is (no dag/run_id in the context): not changing anything")
    return f"{dag_id}/{run_id}"


def owner_or_none(context: Any) -> str | None:
    """owner_of, or None when the context names no run (a hand-built context in a unit test)."""
    try:
        return owner_of(context)
    except AirflowFailException:
        return None


def control_signal(holder: Any, log: Any = None) -> Any:
    """The latticedb_control signal on a lease (a ControlSignal), or None; an unreadable one is ignored, loudly."""
    try:
        return holder.signal if holder is not None else None
    except (ValueError, TypeError) as exc:
        if log is not None:
            log.error("ignoring an unreadable control signal on the lease: %s", exc)
        return None


def ran_before(ti: Any, task_ids: tuple[str, ...] | list[str]) -> list[str]:
    """Those of `task_ids` that are upstream of `ti`'s task in its DAG: only they can have pushed an XCom
    for it to read, so the others are not asked for (each read is a request to the API server). All of
    them when the task is not in a DAG (a hand-built ti)."""
    task = getattr(ti, "task", None)
    if task is None or getattr(task, "dag", None) is None:
        return list(task_ids)
    upstream = task.get_flat_relative_ids(upstream=True)
    return [t for t in task_ids if t in upstream]


class LatticeDBOperator(BaseOperator):
    """Resolves `environment` (templated, default the run's param) to its typed config.

    `notify` left unset (None) is the run's `notify` param (latticedb_deploy.params); a value given
    to the constructor wins.
    """

    template_fields: tuple[str, ...] = ("environment", "image_uri", "notify")
    # Keyword arguments a subclass takes as attributes of the same name (None when not given), declared
    # here as data rather than in an `__init__` of its own: Airflow wraps every `__init__` of an operator's
    # class hierarchy (apply_defaults), and each layer is paid by every parse of every DAG file.
    inputs: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        environment: str = "{{ params.environment }}",
        image_uri: str = "{{ params.image_uri }}",
        notify: Any = None,
        **kwargs: Any,
    ):
        given = {name: kwargs.pop(name, None) for name in self.inputs}
        super().__init__(**kwargs)
        self.environment = environment
        self.image_uri = image_uri
        self.notify = notify
        for name, value in given.items():
            setattr(self, name, value)

    def _set_xcomargs_dependencies(self) -> None:
        """Airflow's edges from the tasks whose `.output` this task takes (its template fields), about 100 in
        the canary DAG, set by latticedb_deploy.edges (without Airflow's DAG hashing per edge)."""
        from airflow.sdk.definitions.xcom_arg import XComArg

        from latticedb_deploy.edges import link

        for name in self.template_fields:
            for upstream, _ in XComArg.iter_xcom_references(getattr(self, name, None)):
                link(upstream, self)

    def pre_execute(self, context: Any) -> None:
        """Every try and every resume reads the run's config as it was when the run started: the snapshot
        task takes it now; any other task reads it when it first needs it (`config_snapshot`), so a resume
        that only reports its trigger's event makes no request for it."""
        from latticedb_deploy import run_config

        super().pre_execute(context)
        for cached in ("env", "_config_snapshot"):
            self.__dict__.pop(cached, None)
        self.__dict__["_run_context"] = context
        if self.task_id == run_config.SNAPSHOT_TASK_ID:
            self.config_snapshot  # noqa: B018  (taken at the run's start, whatever the task reads)

    @property
    def config_snapshot(self) -> dict | None:
        """The run's config (latticedb_deploy.run_config), read once per try; None outside a run."""
        if "_config_snapshot" not in self.__dict__:
            from latticedb_deploy import run_config

            context = self.__dict__.get("_run_context")
            self.__dict__["_config_snapshot"] = run_config.for_task(self, context) if context is not None else None
        return self.__dict__["_config_snapshot"]

    @cached_property
    def env(self) -> Environment:
        from latticedb_deploy import run_config

        return run_config.environment(self.environment, self.config_snapshot)

    @property
    def config(self) -> Any:
        """The whole DeployConfig of this run (every environment), for the few steps that look across them."""
        from latticedb_deploy import run_config

        return run_config.config(self.config_snapshot)

    def notify_enabled(self, context: Any) -> bool:
        from latticedb_deploy.params import notify_enabled

        return notify_enabled(self.notify, context)

    def send(
        self, context: Any, event: str, title: str, fields: dict[str, object], links: dict[str, str] | None = None
    ) -> None:
        from latticedb_deploy import notify

        if not self.notify_enabled(context):
            self.log.info("notify=false: not sending %r", event)
            return
        fields = {"Environment": self.environment, "Image": self.image_uri, "Run": context["run_id"], **fields}
        notify.send(self.env, event, title, fields, notify.run_link(context), links=links)

    def hold_lease(self, context: Any) -> Any:
        """Fencing: renew this run's lease on the environment and check it still holds it, before any change.

        Lost (expired and taken, cleared, or pre-empted by an emergency rollback): the task fails saying
        who holds the environment and why, and changes nothing. A rollback task skips instead: whoever
        took the environment (an emergency rollback) owns traffic now, and the rollback says so; when
        nobody holds it, the rollback takes it again and rolls back (_retaken_for_rollback).
        Aborted by a person (latticedb_control): any step but a rollback step fails, changing nothing,
        with "aborted by <user>: <reason>", and the run's rollback runs. Returns the lease (Holder),
        whose `signal` the caller may act on (a promote).
        """
        from dataclasses import replace

        from latticedb_deploy.aws.locks import EnvironmentLock, LeaseLostError
        from latticedb_deploy.control import FAILING, for_step, kept_pause

        lock, owner = EnvironmentLock(self.env), owner_of(context)
        try:
            holder = lock.renew(owner)
        except LeaseLostError as exc:
            holder = self._retaken_for_rollback(context, lock, owner, str(exc))
            if holder is None:
                self.lease_lost(context, str(exc))
        if self.acts_on_baseline and not holder.baseline_is_from(owner):
            self.lease_lost(context, self._stale_baseline(holder, owner))
        signal = control_signal(holder, self.log)
        if signal is not None and signal.action == FAILING and not self.task_id.startswith("rollback."):
            # A wait's trigger marked the run failing, yet a step of it runs again (the wait's task was retried after
            # its worker died, or a restarted trigger judged otherwise): not failing after all. Cleared, best effort,
            # so control does not go on refusing a pause or promote with "its rollback starts next". A pause the
            # mark kept goes back on the lease instead, and this step obeys it as any pause; if it cannot be put
            # back the step does nothing and its task retries (acting over the mark would ignore the pause).
            pause = kept_pause(signal)
            if pause is not None:
                try:
                    put_back = lock.signal(owner, pause.to_json(), holder.control)
                except Exception as exc:  # noqa: BLE001 - said in the retriable failure below
                    put_back, why = False, f"{type(exc).__name__}: {exc}"
                else:
                    why = "the lease changed meanwhile"
                if not put_back:
                    raise AirflowException(f"{self.task_id} not run, nothing changed: the lease says {signal.message}, "
                                           f"and the pause it kept ({pause.message}) could not be put back ({why}); "
                                           "the task retries")
                self.log.warning("the lease said %s, but %s runs: the mark is replaced by the pause it kept (%s)",
                                 signal.message, self.task_id, pause.message)
                holder, signal = replace(holder, control=pause.to_json()), pause
            else:
                try:
                    if lock.clear_signal(owner, holder.control):
                        self.log.warning("the lease said %s, but %s runs: the mark is cleared", signal.message,
                                         self.task_id)
                except Exception as exc:  # noqa: BLE001 - the step's own work goes on (a wait ignores an older mark)
                    self.log.warning("could not clear the failing mark on the lease: %s", exc)
        if for_step(signal, rollback=self.task_id.startswith("rollback.")) == "abort":
            msg = f"{self.task_id} not run, nothing changed: the deployment was {signal.message}"
            self.log.error("%s", msg)
            raise AirflowFailException(msg)
        return holder

    # Steps that change production from this run's baseline: they act only while that baseline is the
    # environment's latest (the lease's baseline_by is this run). A run whose acquire_environment was
    # cleared and re-run after another deployment holds the lease again with a baseline from before it.
    acts_on_baseline = False

    def _stale_baseline(self, holder: Any, owner: str) -> str:
        by = holder.baseline_by
        return (
            f"STALE BASELINE: {'run ' + by if by else 'nobody'} recorded the environment's last good state after this "
            f"run's ({'the lease was cleared by hand' if not by else 'it deployed since'}); this run's baseline "
            f"no longer says what serves in {self.env.name!r}, so it changes nothing more."
        )

    def lease_fence(self) -> Any:
        """hold_lease for the try in progress, as a callable (None outside a run): what a change that
        waited calls right before it acts (GuardedTraffic.set_weights's `fence`)."""
        context = self.__dict__.get("_run_context")
        return None if context is None else lambda: self.hold_lease(context)

    def _retaken_for_rollback(self, context: Any, lock: Any, owner: str, why: str) -> Any:
        """A rollback step whose run's lease lapsed while nobody holds the environment now (expired and
        cleared, or taken by a run that failed its pre-flight and gave it back) takes it again and rolls
        back: otherwise what this run left (split traffic) has no owner and nobody restores it. Never after
        an emergency rollback pre-empted this run (it decided where traffic goes), never while anyone holds
        it or it is blocked, never once another run recorded a baseline since this run's (it deployed: what
        this run would restore is no longer what served last; EnvironmentLock.retake). Returns the lease, or
        None (the caller stops as with any lost lease)."""
        if not self.task_id.startswith("rollback.") or lock.preemption(owner) is not None:
            return None
        if not lock.retake(owner):  # somebody holds it, it is blocked, or production changed since (baseline_by)
            return None
        msg = f"{why} Nobody held the environment: this run took it again to roll back what it changed."
        self.log.warning("%s", msg)
        self.send(context, "warning", "Rollback took the environment again", {"Why": msg})
        return lock.holder()

    def lease_lost(self, context: Any, why: str) -> None:
        """Stop this task because the run lost its lease (see hold_lease); never returns."""
        from airflow.sdk.exceptions import AirflowSkipException

        if self.task_id.startswith("rollback."):
            msg = f"{why} Automatic rollback not run: traffic stays where the environment's new holder puts it."
            self.log.error("%s", msg)
            self.send(context, "warning", "Automatic rollback not run: the environment was taken over", {"Why": why})
            from latticedb_deploy.operators.history import record_outcome

            record_outcome(self.env, context, "aborted", logger=self.log, details=[msg])
            raise AirflowSkipException(msg)
        self.log.error("%s", why)
        raise LeaseLost(why)


class DeploymentStepOperator(LatticeDBOperator):
    """A deployment step that acts on the run's inputs, given as arguments (templated): `baseline`, the
    last good state (prepare.record_baseline's result), and `new_revision`, the revision being deployed
    (prepare.register_task_definition's). The factory passes those tasks' `.output`, so the graph's
    edges are the data's and a renamed task breaks the DAG at parse time, not a run; outside the factory
    pass the dicts themselves. A step that needs an input it was not given fails saying which."""

    template_fields: tuple[str, ...] = (*LatticeDBOperator.template_fields, "baseline", "new_revision")
    # baseline= and new_revision=, without an __init__ layer of their own (LatticeDBOperator.inputs): 49 of
    # the canary DAG's 73 tasks are deployment steps; one layer less is 2 % of its re-parse.
    inputs = ("baseline", "new_revision")
    acts_on_baseline = True

    def required(self, *names: str) -> Any:
        """The named inputs (one value, or a tuple for several); a missing one fails the task, no retry."""
        values = tuple(getattr(self, n) for n in names)
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise AirflowFailException(
                f"{self.task_id}: no {' and no '.join(missing)} given (pass the upstream task's .output, "
                "e.g. baseline=record_baseline.output): nothing changed"
            )
        return values[0] if len(values) == 1 else values
