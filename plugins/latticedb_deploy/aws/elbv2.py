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
    """The listeners' weights, read fresh on every call; the ARNs they name (load balancer, listeners,
    target groups) looked up once per client, since they do not change while a task runs. A traffic
    read is three AWS calls on a new client (target groups, load balancer, listeners), one after."""

    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "elbv2")
        self._tg: dict[str, str] = {}
        self._lb_arn: str | None = None
        self._listener_arns: dict[int, str] = {}

    def target_group_arn(self, name: str) -> str:
        return self._target_group_arns(name)[name]

    def _target_group_arns(self, *names: str) -> dict[str, str]:
        """name -> ARN for `names`, the ones not known yet in one DescribeTargetGroups call (which fails
        naming a group that does not exist)."""
        missing = list(dict.fromkeys(n for n in names if n not in self._tg))  # each name once
        if missing:
            for group in self.client.describe_target_groups(Names=missing)["TargetGroups"]:
                self._tg[group["TargetGroupName"]] = group["TargetGroupArn"]
        return {n: self._tg[n] for n in names}

    def slots(self) -> tuple[Slot, Slot]:
        lb = self.env.load_balancer
        arns = self._target_group_arns(lb.blue_target_group, lb.green_target_group)
        return (
            Slot("blue", self.env.service, arns[lb.blue_target_group]),
            Slot("green", self.env.green_service, arns[lb.green_target_group]),
        )

    def load_balancer_arn(self) -> str:
        if self._lb_arn is None:
            lbs = self.client.describe_load_balancers(Names=[self.env.load_balancer.name])["LoadBalancers"]
            self._lb_arn = lbs[0]["LoadBalancerArn"]
        return self._lb_arn

    def _listener(self, port: int | None = None) -> dict[str, Any]:
        """The listener on `port` (default the production one) as AWS describes it now, actions included."""
        port = port or self.env.load_balancer.listener_port
        known = self._listener_arns.get(port)
        if known is not None:
            return self.client.describe_listeners(ListenerArns=[known])["Listeners"][0]
        for listener in self.client.describe_listeners(LoadBalancerArn=self.load_balancer_arn())["Listeners"]:
            self._listener_arns[listener["Port"]] = listener["ListenerArn"]
            if listener["Port"] == port:
                return listener
        raise RuntimeError(f"load balancer {self.env.load_balancer.name!r} has no listener on port {port}")

    def listener_arn(self, port: int | None = None) -> str:
        port = port or self.env.load_balancer.listener_port
        return self._listener_arns.get(port) or self._listener(port)["ListenerArn"]

    def weights(self, port: int | None = None) -> dict[str, int]:
        """Target group ARN -> percentage of the listener's default forward action."""
        listener = self._listener(port)
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
