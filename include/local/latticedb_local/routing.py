"""Who answers behind a listener, read the way an operator would: listener -> target group -> service.

The stand-in /health and the traffic simulator both ask this, so what they report is always
what ECS is actually running according to moto (never something remembered).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .bootstrap import target_group_dimension
from .scenarios import Behaviour


@dataclass(frozen=True)
class Slot:
    target_group_arn: str
    weight: int
    service: str | None = None
    task_definition: str | None = None
    image: str | None = None
    tag: str | None = None
    behaviour: Behaviour | None = None
    running: int = 0

    @property
    def target_group_dimension(self) -> str:
        return target_group_dimension(self.target_group_arn)

    @property
    def target_group_name(self) -> str:
        return self.target_group_dimension.split("/")[1]

    @property
    def serving(self) -> bool:
        return self.behaviour is not None and not self.behaviour.crash and self.running > 0


def serving_deployment(deployments: list[dict]) -> dict | None:
    """The deployment whose tasks take traffic: the PRIMARY once COMPLETED, else the last COMPLETED one."""
    done = [d for d in deployments if d.get("rolloutState") == "COMPLETED" and d.get("runningCount", 0) > 0]
    done.sort(key=lambda d: d.get("status") != "PRIMARY")
    return done[0] if done else None


class Router:
    def __init__(self, moto, env, scenarios, resolver):
        self._moto = moto
        self._env = env
        self._scenarios = scenarios
        self._resolver = resolver
        self._images: dict[str, str | None] = {}  # task definition arn -> image (immutable)

    def clear(self) -> None:
        self._images.clear()

    def slots(self, listener_arn: str) -> list[Slot]:
        """The listener's target groups by weight, and the service deployment serving each.

        Read from moto's ELBv2 and ECS backends in this process (what DescribeListeners and
        DescribeServices would answer, without a signed HTTP round trip: the simulator asks every
        second for every environment, and the stand-in on every request)."""
        [listener] = self._moto.elbv2_backend().describe_listeners(None, [listener_arn])
        weights: dict[str, int] = {}
        for action in list(listener.default_actions):
            data = action.data
            if data.get("Type") != "forward":
                continue
            groups = (data.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                for g in groups:
                    weights[g["TargetGroupArn"]] = int(g.get("Weight", 1))
            elif data.get("TargetGroupArn"):
                weights[data["TargetGroupArn"]] = 100
        services, _ = self._moto.ecs_backend().describe_services(self._env.cluster, list(self._env.services))
        by_tg = {lb["targetGroupArn"]: s for s in services for lb in list(s.load_balancers or [])}
        slots = []
        for tg, weight in weights.items():
            svc = by_tg.get(tg)
            dep = serving_deployment([dict(d) for d in svc.deployments or []]) if svc else None
            if not dep:
                slots.append(Slot(tg, weight, service=svc and svc.name))
                continue
            td = dep["taskDefinition"]
            image = self._image_of(self._moto.client("ecs"), td)
            tag = self._resolver.tag_of(image)
            slots.append(
                Slot(
                    tg,
                    weight,
                    svc.name,
                    td,
                    image,
                    tag,
                    self._scenarios.behaviour(tag),
                    dep.get("runningCount", 0),
                )
            )
        return slots

    @staticmethod
    def pick(slots: list[Slot]) -> Slot | None:
        """One request's target group, chosen by listener weight (as the ALB does)."""
        live = [s for s in slots if s.weight > 0]
        if not live:
            return None
        return random.choices(live, weights=[s.weight for s in live])[0]

    def _image_of(self, ecs, td_arn: str) -> str | None:
        if td_arn not in self._images:
            td = ecs.describe_task_definition(taskDefinition=td_arn)["taskDefinition"]
            containers = td.get("containerDefinitions", [])
            main = next(
                (c for c in containers if c["name"] == self._env.container_name), containers[0] if containers else {}
            )
            self._images[td_arn] = main.get("image")
        return self._images[td_arn]
