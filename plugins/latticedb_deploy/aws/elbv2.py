"""The production listener's weighted forward: which slot is live, and shifting traffic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment


@dataclass(frozen=True)
class Slot:
    """One colour: an ECS service behind its own target group."""

    colour: str
    service: str
    target_group_arn: str


class TrafficClient:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "elbv2")
        self._tg: dict[str, str] = {}

    def target_group_arn(self, name: str) -> str:
        if name not in self._tg:
            resp = self.client.describe_target_groups(Names=[name])
            self._tg[name] = resp["TargetGroups"][0]["TargetGroupArn"]
        return self._tg[name]

    def slots(self) -> tuple[Slot, Slot]:
        lb = self.env.load_balancer
        return (
            Slot("blue", self.env.service, self.target_group_arn(lb.blue_target_group)),
            Slot("green", self.env.green_service, self.target_group_arn(lb.green_target_group)),
        )

    def load_balancer_arn(self) -> str:
        lbs = self.client.describe_load_balancers(Names=[self.env.load_balancer.name])["LoadBalancers"]
        return lbs[0]["LoadBalancerArn"]

    def listener_arn(self, port: int | None = None) -> str:
        port = port or self.env.load_balancer.listener_port
        listeners = self.client.describe_listeners(LoadBalancerArn=self.load_balancer_arn())["Listeners"]
        for listener in listeners:
            if listener["Port"] == port:
                return listener["ListenerArn"]
        raise RuntimeError(f"load balancer {self.env.load_balancer.name!r} has no listener on port {port}")

    def weights(self, port: int | None = None) -> dict[str, int]:
        """Target group ARN -> percentage of the listener's default forward action."""
        listener = self.client.describe_listeners(ListenerArns=[self.listener_arn(port)])["Listeners"][0]
        raw: dict[str, int] = {}
        for action in listener.get("DefaultActions", []):
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
            for g in groups:
                raw[g["TargetGroupArn"]] = int(g.get("Weight", 1))
            if not groups and action.get("TargetGroupArn"):
                raw[action["TargetGroupArn"]] = 1
        total = sum(raw.values())
        return {arn: round(100 * w / total) if total else 0 for arn, w in raw.items()}

    def live_and_idle(self) -> tuple[Slot, Slot, dict[str, int]]:
        """The slot taking the most production traffic, the other one, and the raw weights."""
        blue, green = self.slots()
        w = self.weights()
        if w.get(green.target_group_arn, 0) > w.get(blue.target_group_arn, 0):
            return green, blue, w
        return blue, green, w

    def set_weights(self, weights: dict[str, int], port: int | None = None) -> None:
        """Set absolute weights in one call (idempotent: a retry converges to the same state)."""
        self.client.modify_listener(
            ListenerArn=self.listener_arn(port),
            DefaultActions=[{
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in weights.items()],
                },
            }],
        )

    def healthy_targets(self, target_group_arn: str) -> int:
        """How many targets of the group pass the load balancer's health check right now."""
        resp = self.client.describe_target_health(TargetGroupArn=target_group_arn)
        return sum(1 for d in resp.get("TargetHealthDescriptions", []) if d["TargetHealth"]["State"] == "healthy")
