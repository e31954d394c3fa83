"""Watch a target group's CloudWatch metrics for a step's interval and decide pass or fail."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from latticedb_deploy.aws import KeptForAWait

# Tries to read an earlier poll's metrics again after a restart (1 s, then 2 s apart) before it is left for
# the next poll to try.
REPLAY_ATTEMPTS = 3


def _grid(started_at: float, interval_end: float, poll_seconds: float):
    """A wait's poll instants from `started_at`: every `poll_seconds`, and once exactly at `interval_end`
    (`interval_end` = `started_at` for a plain every-poll wait). Polls keep to this grid, so a restarted
    wait knows when it polled before (poll_instants) and goes on where it was (next_poll)."""
    t = started_at
    while True:
        remaining = interval_end - t
        t += min(poll_seconds, remaining) if remaining > 0.5 else poll_seconds
        yield t


def poll_instants(started_at: float, interval_end: float, poll_seconds: float, now: float) -> list[float]:
    """The instants a wait has polled at up to `now`."""
    instants = []
    for t in _grid(started_at, interval_end, poll_seconds):
        if t > now:
            return instants
        instants.append(t)
    return instants  # pragma: no cover - the grid is endless


def next_poll(started_at: float, interval_end: float, poll_seconds: float, now: float) -> float:
    """The wait's next poll instant after `now`."""
    return next(t for t in _grid(started_at, interval_end, poll_seconds) if t > now)


class MetricGateTrigger(BaseTrigger):
    """Evaluates every `poll_seconds` from `started_at`; fires {"passed", "reason", "evaluations"}.

    `owner` (the run's "<dag_id>/<run_id>"): the lease is renewed on every poll; if the run lost it,
    the trigger fires {"passed": False, "lease_lost": True, "reason": who holds it and why} at once.

    `baseline_target_group_arn` (the stable slot, while it still takes traffic): the environment's
    `judge.mode` decides how a window is judged: `absolute` (the thresholds), `relative` (the canary
    versus the baseline, latticedb_deploy.relative_judge) or `both` (either failing fails). The relative
    judge looks once the interval is over (the full window, so one comparison per gate unless it is
    marginal or short of samples, when it looks again at every poll until the deadline).

    `baseline_window` ([start, end) epoch seconds) and `baseline_periods`: where the baseline slot no
    longer takes traffic (the blue/green bake, a canary's 100 % step), its samples are its newest
    `baseline_periods` periods with traffic in that window (the last ones before the switch), instead
    of the gate's own window.

    A person's control signal (latticedb_control; read from the lease item at every renewal,
    latticedb_deploy.control.for_gate): abort fires {"passed": False, "control": ...} with the reason,
    promote fires {"passed": True, "control": ...}; pause keeps evaluating (a failure still fails) but
    holds a pass and the deadline until resume, which moves the deadline by the time paused. The event's
    `control_log` says who paused/resumed and when. A pause older than the environment's
    `max_pause_seconds` fails the gate (control.pause_expired).

    Polls keep to a grid from `started_at` (`_grid`); a trigger the triggerer restarted judges the polls
    it had made again first (`replay`), so a restart changes when the gate ends, not how.
    """

    def __init__(
        self,
        *,
        environment: str,
        step: int,
        target_group_arn: str,
        load_balancer_arn: str,
        started_at: float,
        interval_seconds: float,
        deadline: float,
        tolerated_failures: int = 0,
        owner: str | None = None,
        baseline_target_group_arn: str | None = None,
        baseline_window: list[float] | tuple[float, float] | None = None,
        baseline_periods: int | None = None,
        config: dict | None = None,
    ):
        super().__init__()
        self.environment = environment
        self.step = step
        self.target_group_arn = target_group_arn
        self.load_balancer_arn = load_balancer_arn
        self.started_at = started_at
        self.interval_seconds = interval_seconds
        self.deadline = deadline
        self.tolerated_failures = tolerated_failures
        self.owner = owner
        self.baseline_target_group_arn = baseline_target_group_arn
        self.baseline_window = list(baseline_window) if baseline_window else None
        self.baseline_periods = baseline_periods
        self.config = config  # the run's config snapshot (latticedb_deploy.run_config)
        self._cloudwatch = KeptForAWait()  # the MetricsClient of every evaluation and judgement

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.metric_gate.MetricGateTrigger",
            {
                "environment": self.environment,
                "step": self.step,
                "target_group_arn": self.target_group_arn,
                "load_balancer_arn": self.load_balancer_arn,
                "started_at": self.started_at,
                "interval_seconds": self.interval_seconds,
                "deadline": self.deadline,
                "tolerated_failures": self.tolerated_failures,
                "owner": self.owner,
                "baseline_target_group_arn": self.baseline_target_group_arn,
                "baseline_window": self.baseline_window,
                "baseline_periods": self.baseline_periods,
                "config": self.config,
            },
        )

    def _env(self):
        from latticedb_deploy import run_config

        return run_config.environment(self.environment, self.config)

    def _metrics(self, env):
        """The wait's MetricsClient (see KeptForAWait): one connection lookup per wait, not two per poll."""
        from latticedb_deploy.aws.cloudwatch import MetricsClient

        return self._cloudwatch.get(lambda: MetricsClient(env))

    def _evaluate(self, env, criteria, at: float | None = None):
        from latticedb_deploy.judge import evaluate

        window = self._metrics(env).target_group_window(
            target_group_arn=self.target_group_arn,
            load_balancer_arn=self.load_balancer_arn,
            start=datetime.fromtimestamp(self.started_at, UTC),
            end=datetime.fromtimestamp(time.time() if at is None else at, UTC),
            statistic=criteria.latency_statistic,
            period=env.metrics.period_seconds,
            p99_statistic=criteria.p99_statistic if criteria.max_p99_ms is not None else None,
        )
        return evaluate(self.step, window, criteria)

    def _judge(self, env, at: float | None = None):
        """The relative judge over [started_at, `at` (default now)): baseline vs canary per-period samples."""
        from latticedb_deploy.relative_judge import judge

        metrics = self._metrics(env)

        def samples(arns: dict[str, str], start: float, end: float) -> dict:
            return metrics.target_group_samples(
                target_group_arns=arns, load_balancer_arn=self.load_balancer_arn,
                start=datetime.fromtimestamp(start, UTC), end=datetime.fromtimestamp(end, UTC),
                statistic=env.metrics.latency_statistic, period=env.judge_period_seconds,
            )

        now = time.time() if at is None else at
        if self.baseline_window:  # the baseline served nothing during this gate: its last window before it
            baseline = samples({"baseline": self.baseline_target_group_arn}, *self.baseline_window)["baseline"]
            if self.baseline_periods:
                baseline = {metric: values[-self.baseline_periods:] for metric, values in baseline.items()}
            canary = samples({"canary": self.target_group_arn}, self.started_at, now)["canary"]
        else:
            both = samples({"baseline": self.baseline_target_group_arn, "canary": self.target_group_arn},
                           self.started_at, now)
            baseline, canary = both["baseline"], both["canary"]
        return judge(baseline, canary, env.judge.settings())

    def _baseline_history_too_short(self, verdict, min_samples: int) -> str | None:
        """With a past baseline window (the old slot serves nothing now): too few periods of it for any
        metric to be judged, e.g. a service that had served for seconds when it was replaced."""
        if not self.baseline_window or not verdict.results:
            return None
        most = max(r.baseline_n for r in verdict.results)
        if most >= min_samples:
            return None
        return (f"relative judge not applicable: the old slot served {most} periods before the switch "
                f"(need {min_samples}); the thresholds decide")

    def _evaluate_with_judge(self, env, criteria, mode: str, interval_end: float, at: float | None = None):
        """One poll (at `at`, default now): (the Evaluation decide() reads, its XCom record)."""
        from latticedb_deploy.judge import FAIL, INCONCLUSIVE, PASS

        ev = self._evaluate(env, criteria, at)
        relative = mode != "absolute" and bool(self.baseline_target_group_arn)
        if not relative or (time.time() if at is None else at) < interval_end - 0.5:
            # Not judged yet: never a pass (and in `relative` mode the thresholds alone fail nothing).
            if relative and (ev.verdict == PASS or (mode == "relative" and ev.verdict == FAIL)):
                ev = replace(ev, verdict=INCONCLUSIVE, reasons=("relative judge: waiting for the full window",))
            return ev, {**ev.to_dict(), "judge_mode": mode}
        verdict = self._judge(env, at)
        self.log.info("gate %d%% relative judge (%s):\n%s", self.step, verdict.verdict, verdict.table)
        short = self._baseline_history_too_short(verdict, env.judge.min_samples)
        if short:
            # The old slot's history before the switch is fixed: waiting cannot add to it. Say so, and let
            # the thresholds decide (in `relative` mode too: nothing else can judge this gate).
            self.log.warning("gate %d%%: %s", self.step, short)
            return ev, {**ev.to_dict(), "judge_mode": mode, "relative_skipped": short, "relative": verdict.to_dict()}
        rel = {"pass": PASS, "fail": FAIL}.get(verdict.verdict, INCONCLUSIVE)
        rel_reasons = () if rel == PASS else (verdict.reason,)
        if mode == "relative":
            combined, reasons = rel, rel_reasons
        elif FAIL in (ev.verdict, rel):  # both: either failing fails the gate
            combined = FAIL
            reasons = (ev.reasons if ev.verdict == FAIL else ()) + (rel_reasons if rel == FAIL else ())
        elif ev.verdict == PASS and rel == PASS:
            combined, reasons = PASS, ()
        else:
            combined, reasons = INCONCLUSIVE, (ev.reasons if ev.verdict != PASS else ()) + rel_reasons
        ev = replace(ev, verdict=combined, reasons=tuple(reasons))
        record = {**ev.to_dict(), "judge_mode": mode, "relative": verdict.to_dict(), "relative_table": verdict.table}
        return ev, record

    async def judge_at(self, env, criteria, mode: str, interval_end: float, at: float,
                       attempts: int = REPLAY_ATTEMPTS) -> tuple[Any, dict] | None:
        """An earlier poll judged again over the window it had (CloudWatch keeps them), or None when its metrics
        could not be read in `attempts` tries (throttled, say: a restarted triggerer's gates all ask at once)."""
        for attempt in range(attempts):
            try:
                ev, record = await asyncio.to_thread(self._evaluate_with_judge, env, criteria, mode, interval_end, at)
                return ev, {**record, "replayed": True}
            except Exception as exc:  # noqa: BLE001 - as a live poll whose query failed: not a verdict
                self.log.warning("gate %d%%: metrics of an earlier poll could not be read: %s", self.step, exc)
                self._cloudwatch.drop()
                if attempt + 1 < attempts:
                    await asyncio.sleep(2 ** attempt)
        return None

    async def replay(self, env, criteria, mode: str, interval_end: float, instants: list[float],
                     judged: Any, unread: list[float], ends: Any) -> float | None:
        """The polls this wait made before the triggerer restarted it, judged again, in order (`judged(at,
        evaluation, record)`), up to the first at which `ends(at)` says the wait would have ended; returns that
        instant, or None. Instants whose metrics cannot be read go to `unread`. A restart builds the trigger
        anew from its arguments: without this a failure seen before it was forgotten (the run's
        `tolerated_failures` budget started again) and a gate that should have failed could pass. With it a
        restart changes when a wait ends, not how; a poll that cannot be read yet holds back a pass (never a
        failure) until it can (see run)."""
        ended_at, read = None, []
        for at in instants:
            result = await self.judge_at(env, criteria, mode, interval_end, at)
            if result is None:
                unread.append(at)
                continue
            judged(at, *result)
            read.append(result[0].verdict)
            if ends(at):
                ended_at = at
                break
        if instants:
            self.log.warning("gate %d%%: started %.0fs ago (the triggerer restarted): %d earlier polls judged again "
                             "(%s)%s", self.step, time.time() - self.started_at, len(read), ", ".join(read) or "none",
                             f"; {len(unread)} could not be read yet: no pass until they are" if unread else "")
        return ended_at

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.control import (
            clock,
            failed_already,
            for_gate,
            held_at,
            pause_expired,
            paused_seconds,
        )
        from latticedb_deploy.judge import GateCriteria, GateDecision, decide
        from latticedb_deploy.triggers.lease import LeaseKeeper

        env = await asyncio.to_thread(self._env)
        # Thresholds, or in an environment with an SLO (slo.enforce_in_gates) the stricter of both, P99 included.
        criteria = GateCriteria.for_gate(env, tolerated_failures=self.tolerated_failures)
        lease = LeaseKeeper(self.environment, self.owner, self.log, self.config)
        timeline, unread, control_log = [], [], []  # timeline: (instant, Evaluation, record), oldest first
        evaluations, records = [], []  # the timeline's evaluations (what decide() reads) and records, in order
        interval_end = self.started_at + self.interval_seconds
        mode = env.judge_mode
        poll = env.metrics.poll_seconds
        seen = None  # the control signal last seen, to log each change once
        replayed = False
        signal = None

        def event(passed: bool, reason: str, **extra: Any) -> TriggerEvent:
            return TriggerEvent({"passed": passed, "reason": reason, "step": self.step, "evaluations": records[-20:],
                                 "control_log": control_log, **extra})

        def judged(at: float, ev: Any, record: dict) -> None:
            bisect.insort(timeline, (at, ev, record), key=lambda entry: entry[0])
            evaluations[:] = [e for _, e, _ in timeline]
            records[:] = [r for _, _, r in timeline]

        def decision_at(at: float, held: bool):
            if held:  # paused: only a failure ends the gate; no pass, no deadline
                return decide(evaluations, criteria=criteria, now=at, interval_end=float("inf"), deadline=float("inf"))
            deadline = self.deadline + paused_seconds(signal, self.started_at, at)
            decision = decide(evaluations, criteria=criteria, now=at, interval_end=interval_end, deadline=deadline)
            if unread and decision.done and decision.passed:  # a poll from before a restart not read yet
                if at >= deadline:
                    return GateDecision(True, False, f"{len(unread)} polls made before the triggerer restarted could "
                                                     "not be read by the deadline: not passing a gate it could not judge")
                return GateDecision(False, None, f"waiting to read {len(unread)} polls made before the restart")
            return decision

        while True:
            lost = await lease.check()
            if lost:
                yield event(False, lost, lease_lost=True)
                return
            signal = lease.signal
            if signal != seen and signal is not None:
                entry = {"action": signal.action, "by": signal.by, "reason": signal.reason, "at": signal.at,
                         "at_utc": clock(signal.at), "seen_at": time.time()}
                control_log.append(entry)
                self.log.warning("gate %d%%: %s (at %s)", self.step, signal.message, clock(signal.at))
            seen = signal
            marked = failed_already(signal, self.started_at)
            if marked:  # restarted after this gate marked the run failing: the verdict stands (control.failed_already)
                yield event(False, marked.removeprefix(f"gate {self.step}% failed: "))
                return
            control = for_gate(signal)
            if control.done:
                yield event(bool(control.passed), control.reason, control=signal.to_dict())
                return
            expired = pause_expired(signal, time.time(), env.max_pause_seconds)
            if expired:
                await lease.mark_failing(expired)  # over the pause: a resume or promote sent now is refused
                yield event(False, expired, control=signal.to_dict())
                return
            if not replayed:  # restarted mid-wait (the triggerer restarted): the polls made before count
                replayed = True
                ended_at = await self.replay(
                    env, criteria, mode, interval_end, poll_instants(self.started_at, interval_end, poll, time.time()),
                    judged, unread, lambda at, signal=signal: decision_at(at, held_at(signal, at)).done)
                if ended_at is not None:
                    decision = decision_at(ended_at, held_at(signal, ended_at))
                    if not decision.passed:
                        await lease.mark_failing(f"gate {self.step}% failed: {decision.reason}")
                    yield event(bool(decision.passed), decision.reason)
                    return
            # Evaluate on the wait's grid: every poll, and once exactly at the end of the interval.
            await asyncio.sleep(max(0.0, next_poll(self.started_at, interval_end, poll, time.time()) - time.time()))
            for at in list(unread):  # earlier polls that could not be read after the restart: try again
                again = await self.judge_at(env, criteria, mode, interval_end, at, attempts=1)
                if again is not None:
                    unread.remove(at)
                    judged(at, *again)
            try:
                now = time.time()
                ev, record = await asyncio.to_thread(self._evaluate_with_judge, env, criteria, mode, interval_end)
                if control.hold:
                    record = {**record, "control": control.reason}
                judged(now, ev, record)
                self.log.info("gate %d%%: %s%s", self.step, ev.summary, f" [held: {control.reason}]" if control.hold else "")
            except Exception as exc:  # noqa: BLE001 - a CloudWatch hiccup is not a verdict; keep watching
                self.log.warning("gate %d%%: metrics query failed (will retry): %s", self.step, exc)
                self._cloudwatch.drop()  # the next poll builds it again: a rotated connection is read anew
            decision = decision_at(time.time(), control.hold)
            if decision.done:
                if not decision.passed:  # marked before the task resumes to fail: control refuses
                    await lease.mark_failing(f"gate {self.step}% failed: {decision.reason}")
                yield event(bool(decision.passed), decision.reason)
                return
