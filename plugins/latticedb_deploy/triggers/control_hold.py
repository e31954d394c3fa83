"""Hold a traffic step while a person has paused the deployment (latticedb_control), from the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class ControlHoldTrigger(BaseTrigger):
    """Renews `owner`'s lease every `poll_seconds` until its control signal is no longer `pause`.

    `watch`: the new slot already takes traffic (a canary paused between a gate's pass and its next
    shift), so the hold keeps judging it as the gate did: the MetricGateTrigger arguments for that split
    (`step` = the weight it has, `target_group_arn`, `load_balancer_arn`, `started_at`, `interval_seconds`,
    `tolerated_failures`, `baseline_target_group_arn`). A failing verdict ends the hold, pause or not: a
    paused deployment must not leave a bad version serving its share of production unwatched.

    A pause longer than the environment's `max_pause_seconds` ends the hold too (control.pause_expired). Either
    failure marks the lease `failing` over the pause, so a resume sent before the step's task fails is refused;
    a hold restarted after that mark fails at once with its reason (control.failed_already).

    Fires {"released": <the signal then, or None>} (resume, or an abort/promote the step then obeys),
    {"failed": True, "reason": ..., "evaluations": [...]} when the watched slot failed its metrics or the
    pause lasted too long, or
    {"lease_lost": True, "reason": ...} when the run lost the environment.
    """

    def __init__(self, *, environment: str, owner: str, poll_seconds: float, config: dict | None = None,
                 watch: dict[str, Any] | None = None, since: float | None = None):
        super().__init__()
        self.environment, self.owner, self.poll_seconds = environment, owner, poll_seconds
        self.config = config  # the run's config snapshot (latticedb_deploy.run_config)
        self.watch = watch
        self.since = since  # when the hold began (its step deferred): a failing mark from before is not its own

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.control_hold.ControlHoldTrigger",
            {"environment": self.environment, "owner": self.owner, "poll_seconds": self.poll_seconds,
             "config": self.config, "watch": self.watch, "since": self.since},
        )

    def _gate(self) -> Any:
        """The watched split's judge: a MetricGateTrigger used only for its evaluations (never run)."""
        from latticedb_deploy.triggers.metric_gate import MetricGateTrigger

        return MetricGateTrigger(environment=self.environment, config=self.config, owner=None, deadline=0.0, **self.watch)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy import run_config
        from latticedb_deploy.control import failed_already, held_at, pause_expired
        from latticedb_deploy.judge import GateCriteria
        from latticedb_deploy.triggers.lease import LeaseKeeper
        from latticedb_deploy.triggers.metric_gate import next_poll, poll_instants

        lease = LeaseKeeper(self.environment, self.owner, self.log, self.config)
        env = await asyncio.to_thread(run_config.environment, self.environment, self.config)
        gate = self._gate() if self.watch else None
        evaluations, records = [], []
        if gate is not None:
            criteria = GateCriteria.for_gate(env, tolerated_failures=gate.tolerated_failures)
            interval_end = gate.started_at + gate.interval_seconds
        replayed = gate is None
        announced = False
        while True:
            failed = self._failed(evaluations, criteria) if evaluations else None
            if failed:
                reason = f"paused at {gate.step}%, the new version failed its metrics meanwhile: {failed}"
                await lease.mark_failing(reason)  # over the pause: a resume sent now is refused
                yield TriggerEvent({"failed": True, "step": gate.step, "evaluations": records[-20:], "reason": reason})
                return
            lost = await lease.check()
            if lost:
                yield TriggerEvent({"lease_lost": True, "reason": lost})
                return
            signal = lease.signal
            marked = failed_already(signal, self.since)
            if marked:  # restarted after this hold marked the run failing: the verdict stands (control.failed_already)
                yield TriggerEvent({"failed": True, "reason": marked, "evaluations": records[-20:]})
                return
            if not replayed:
                # Restarted mid-hold (the triggerer restarted): the polls made before count, as in a gate, up to
                # the first that failed the split or came after a resume (where the hold would have let go).
                replayed = True

                def judged(at: float, ev: Any, record: dict) -> None:
                    evaluations.append(ev)
                    records.append({**record, "control": "paused"})

                await gate.replay(env, criteria, env.judge_mode, interval_end,
                                  poll_instants(gate.started_at, gate.started_at, self.poll_seconds, time.time()),
                                  judged, [], lambda at, signal=signal: self._failed(evaluations, criteria) is not None
                                  or not held_at(signal, at))
                continue  # decide on them (a failure first, then the signal) before waiting for the next poll
            if signal is None or not signal.paused:
                yield TriggerEvent({"released": signal.to_dict() if signal else None, "evaluations": records[-20:]})
                return
            expired = pause_expired(signal, time.time(), env.max_pause_seconds)
            if expired:
                await lease.mark_failing(expired)
                yield TriggerEvent({"failed": True, "reason": expired, "evaluations": records[-20:]})
                return
            if not announced:
                self.log.warning("holding: %s%s", signal.message,
                                 f"; still judging the new slot at {gate.step}%" if gate is not None else "")
                announced = True
            if gate is None:
                await asyncio.sleep(self.poll_seconds)
                continue
            await asyncio.sleep(max(0.0, next_poll(gate.started_at, gate.started_at, self.poll_seconds, time.time())
                                    - time.time()))
            try:
                ev, record = await asyncio.to_thread(gate._evaluate_with_judge, env, criteria, env.judge_mode, interval_end)
            except Exception as exc:  # noqa: BLE001 - a CloudWatch hiccup is not a verdict; keep watching
                self.log.warning("paused at %d%%: metrics query failed (will retry): %s", gate.step, exc)
                gate._cloudwatch.drop()
                continue
            evaluations.append(ev)
            records.append({**record, "control": signal.message})
            self.log.info("paused at %d%%: %s", gate.step, ev.summary)

    @staticmethod
    def _failed(evaluations: list, criteria: Any) -> str | None:
        """Why the watched split failed, or None. Paused: no pass and no deadline, only failures beyond the
        run's tolerance end the hold (as in a paused gate)."""
        from latticedb_deploy.judge import decide

        decision = decide(evaluations, criteria=criteria, now=time.time(), interval_end=float("inf"), deadline=float("inf"))
        return decision.reason if decision.done and not decision.passed else None
