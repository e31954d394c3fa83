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
        elb, ecs = self._moto.client("elbv2"), self._moto.client("ecs")
        listener = elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]
        weights: dict[str, int] = {}
        for action in listener.get("DefaultActions", []):
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                for g in groups:
                    weights[g["TargetGroupArn"]] = int(g.get("Weight", 1))
            elif action.get("TargetGroupArn"):
                weights[action["TargetGroupArn"]] = 100
        services = ecs.describe_services(cluster=self._env.cluster, services=list(self._env.services))["services"]
        by_tg = {lb["targetGroupArn"]: s for s in services for lb in s.get("loadBalancers", [])}
        slots = []
        for tg, weight in weights.items():
            svc = by_tg.get(tg)
            dep = serving_deployment(svc.get("deployments", [])) if svc else None
            if not dep:
                slots.append(Slot(tg, weight, service=svc and svc["serviceName"]))
                continue
            td = dep["taskDefinition"]
            image = self._image_of(ecs, td)
            tag = self._resolver.tag_of(image)
            slots.append(
                Slot(
                    tg,
                    weight,
                    svc["serviceName"],
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
