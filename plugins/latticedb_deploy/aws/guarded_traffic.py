"""Weight changes that never send traffic to nothing: every slot given weight > 0 is checked first.

A slot may take traffic only when its service runs the expected revision, settled, at the expected
size, with that many healthy targets (latticedb_deploy.readiness). A slot that is on its way there
(right revision and size, tasks or targets still starting) is waited for, up to a bound; one that is
not (scaled to 0, another revision) is refused at once with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from latticedb_deploy.aws.ecs import EcsClient
from latticedb_deploy.aws.elbv2 import TrafficClient
from latticedb_deploy.config import Environment
from latticedb_deploy.readiness import SlotExpectation, slot_problems


class SlotNotReady(RuntimeError):
    """A slot that was to take traffic is not fit to: nothing was changed."""


class SlotInUse(RuntimeError):
    """A slot that was to be scaled to zero takes traffic: nothing was changed."""


# A slot that reads as not converging (scaled to zero, another revision) is read again for this long before
# the change is refused: ECS's reads are eventually consistent, and a slot updated a moment ago (the
# rollback's restore, just before its shift back) may still read as it was.
STALE_READ_SECONDS = 5.0


def ready_wait_seconds(env: Environment) -> float:
    """How long a weight change waits for a converging slot: tasks and target health checks take time."""
    return float(min(env.rollout.timeout_seconds, 300))


class GuardedTraffic:
    def __init__(self, env: Environment, ecs: EcsClient | None = None, traffic: TrafficClient | None = None):
        self.env = env
        self.ecs = ecs or EcsClient(env)
        self.traffic = traffic or TrafficClient(env)

    def problems(self, expected: SlotExpectation) -> tuple[list[str], bool]:
        """(why the slot may not take traffic, whether it is converging towards being able to)."""
        service = self.ecs.describe_service(expected.service)
        healthy = self.traffic.healthy_targets(expected.target_group_arn)
        problems = slot_problems(service, expected, healthy)
        converging = (
            expected.desired_count > 0
            and service.get("taskDefinition") == expected.task_definition
            and service.get("desiredCount") == expected.desired_count
            and not any(d.get("rolloutState") == "FAILED" for d in service.get("deployments") or [])
        )
        return problems, converging

    def wait_until_ready(
        self, expectations: list[SlotExpectation], *, timeout: float, poll: float = 1.0, log: Any = None
    ) -> bool:
        """Return once every slot is ready (True if that took a wait); raise SlotNotReady for a slot that is
        not converging once it has read so for STALE_READ_SECONDS (at once with no `timeout`), or after
        `timeout` for one that did not get there."""
        started = time.monotonic()
        deadline = started + timeout
        waited = False
        while True:
            pending: list[str] = []
            for exp in expectations:
                problems, converging = self.problems(exp)
                if problems and not converging and time.monotonic() - started >= min(timeout, STALE_READ_SECONDS):
                    raise SlotNotReady("; ".join(problems))
                pending.extend(problems)
            if not pending:
                return waited
            if time.monotonic() >= deadline:
                raise SlotNotReady(f"not ready after {timeout:.0f}s: " + "; ".join(pending))
            if log is not None:
                log.info("Waiting for the slot to be ready: %s", "; ".join(pending))
            time.sleep(poll)
            waited = True

    def set_weights(
        self,
        weights: dict[str, int],
        expectations: list[SlotExpectation],
        *,
        port: int | None = None,
        wait_seconds: float | None = None,
        log: Any = None,
        fence: Callable[[], Any] | None = None,
    ) -> bool:
        """Set absolute weights in one call after checking every slot that gets weight > 0.

        Returns False (no call made) when the listener already has exactly these weights. `fence` (the
        caller's lease check) is called again after a wait for a slot, right before the change: the
        environment may have changed hands during the wait (up to ready_wait_seconds).
        """
        current = self.traffic.weights(port)
        wanted = {arn: w for arn, w in weights.items()}
        if {a: w for a, w in current.items() if w} == {a: w for a, w in wanted.items() if w}:
            return False
        by_tg = {e.target_group_arn: e for e in expectations}
        missing = [arn for arn, w in wanted.items() if w > 0 and arn not in by_tg]
        if missing:
            raise SlotNotReady(f"no expectation for target group(s) {missing} that would get traffic")
        checks = [by_tg[arn] for arn, w in wanted.items() if w > 0]
        wait = ready_wait_seconds(self.env) if wait_seconds is None else wait_seconds
        waited = self.wait_until_ready(checks, timeout=wait, poll=min(self.env.rollout.poll_seconds, 5), log=log)
        if waited and fence is not None:
            fence()
        self.traffic.set_weights(wanted, port)
        return True

    def scale_to_zero(self, service: str, target_group_arn: str, *, port: int | None = None,
                      fence: Callable[[], Any] | None = None) -> None:
        """Scale a slot's service to zero, only while the listener gives it no traffic. `fence` (the
        caller's lease check) runs first: the weights read after it are the ones the scale acts on, not
        the ones seen before a shift (an emergency rollback may have switched traffic back since)."""
        if fence is not None:
            fence()
        weight = self.traffic.weights(port).get(target_group_arn, 0)
        if weight:
            raise SlotInUse(f"{service} takes {weight}% of traffic; it was not scaled to 0")
        self.ecs.scale(service, 0)
