"""verify.post_deployment_checks' wait, in the triggerer: a round of checks every poll until a verdict."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from latticedb_deploy.aws import KeptForAWait


class PostDeploymentChecksTrigger(BaseTrigger):
    """Fires {"passed", "report", "failure"} (latticedb_deploy.post_deployment.verdict), or
    {"lease_lost": True, "reason"} when the run lost its environment (the lease is renewed every poll,
    as the metric gate's trigger does). A round that cannot reach AWS is logged and tried again at the
    next poll; at the timeout the last error is the failure.

    A latticedb_control abort on the lease (read at every renewal) fails the checks at that poll, before
    another round: {"passed": False, "failure": "post-deployment checks aborted by <user>: <reason> ...",
    "control": the signal}, so the run's rollback restores the previous version. Anything else on the
    lease (a pause, the run's own phase marker) is not a verdict: the checks run to theirs (a pause is
    logged once as ignored; latticedb_control refuses one in verify anyway)."""

    def __init__(self, *, environment: str, since: float, baseline_alarms: list[str], timeout_seconds: float,
                 poll_seconds: float, owner: str | None = None, rounds: int = 0, config: dict | None = None):
        super().__init__()
        self.environment = environment
        self.since = since
        self.baseline_alarms = list(baseline_alarms)
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.owner = owner
        self.rounds = rounds
        self.config = config  # the run's config snapshot (latticedb_deploy.run_config)
        self._clients = KeptForAWait()  # post_deployment.RoundClients of every round

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "latticedb_deploy.triggers.post_deployment.PostDeploymentChecksTrigger",
            {"environment": self.environment, "since": self.since, "baseline_alarms": self.baseline_alarms,
             "timeout_seconds": self.timeout_seconds, "poll_seconds": self.poll_seconds, "owner": self.owner,
             "rounds": self.rounds, "config": self.config},
        )

    def _env(self) -> Any:
        from latticedb_deploy import run_config

        return run_config.environment(self.environment, self.config)

    def _round(self, env: Any, alarms: set[str], since: datetime) -> list[dict]:
        """One round, with the AWS clients of an earlier round (see RoundClients and KeptForAWait)."""
        from latticedb_deploy.post_deployment import RoundClients, checks_round

        return checks_round(env, alarms, since, self._clients.get(lambda: RoundClients(env)))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from latticedb_deploy.control import clock
        from latticedb_deploy.post_deployment import verdict
        from latticedb_deploy.triggers.lease import LeaseKeeper

        env = await asyncio.to_thread(self._env)
        lease = LeaseKeeper(self.environment, self.owner, self.log, self.config)
        since = datetime.fromtimestamp(self.since, UTC)
        alarms, rounds = set(self.baseline_alarms), self.rounds
        report: dict = {"passed": False, "rounds": rounds, "checks": []}
        ignored = None  # the pause last logged as ignored
        while True:
            lost = await lease.check()
            if lost:
                yield TriggerEvent({"lease_lost": True, "reason": lost})
                return
            signal = lease.signal
            if signal is not None and signal.action == "abort":
                failure = (f"post-deployment checks {signal.message} (latticedb_control run {signal.run or '?'} at "
                           f"{clock(signal.at)})")
                self.log.error("%s", failure)
                yield TriggerEvent({"passed": False, "report": {**report, "passed": False, "aborted": signal.to_dict()},
                                    "failure": failure, "control": signal.to_dict()})
                return
            if signal is not None and signal.paused and signal != ignored:
                self.log.warning("post-deployment checks: %s: ignored, the checks run to their verdict (abort stops "
                                 "them)", signal.message)
                ignored = signal
            rounds += 1
            elapsed = time.time() - self.since
            try:
                checks = await asyncio.to_thread(self._round, env, alarms, since)
            except Exception as exc:  # noqa: BLE001 - AWS unreachable is not a verdict on the deployment
                self._clients.drop()  # the next round builds them again: a rotated connection is read anew
                self.log.warning("post-deployment checks round %d could not read AWS (will retry): %s", rounds, exc)
                if elapsed + self.poll_seconds > self.timeout_seconds:
                    yield TriggerEvent({"passed": False, "report": {"passed": False, "rounds": rounds, "checks": []},
                                        "failure": f"post-deployment checks failed: AWS unreachable at the timeout: {exc}"})
                    return
            else:
                v = verdict(checks, rounds=rounds, elapsed=elapsed, window_seconds=env.post_deployment.window_seconds,
                            timeout=self.timeout_seconds, poll=self.poll_seconds)
                report = v.report
                if v.done:
                    yield TriggerEvent({"passed": v.failure is None, "report": v.report, "failure": v.failure})
                    return
                self.log.info("round %d (%.0fs): %s", rounds, elapsed,
                              "; ".join(f"✗ {c['check']}: {c['detail']}" for c in v.failed))
            await asyncio.sleep(self.poll_seconds)
