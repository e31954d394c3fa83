"""What a user would look at in one environment of the local stack: AWS through moto, the stand-in
service's controls, the Slack sink. Tests (tests/integration) and benchmarks both use it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests

from harness.names import EnvNames


@dataclass
class LocalEnv:
    """One environment of the local stack (default `local`; tests use their worker's): its endpoints, its
    names (.name, .cluster, .service_name, .green_service_name, .family, .alb, .blue_tg, .green_tg,
    .repository) and what a user would look at."""

    moto_url: str
    service_url: str
    slack_url: str
    test_url: str = ""
    names: EnvNames = field(default_factory=lambda: EnvNames("local"))
    _clients: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _clients_lock: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.names.name

    @property
    def cluster(self) -> str:
        return self.names.cluster

    @property
    def service_name(self) -> str:
        return self.names.service

    @property
    def green_service_name(self) -> str:
        return self.names.green_service

    @property
    def family(self) -> str:
        return self.names.family

    @property
    def alb(self) -> str:
        return self.names.alb

    @property
    def blue_tg(self) -> str:
        return self.names.blue_tg

    @property
    def green_tg(self) -> str:
        return self.names.green_tg

    @property
    def repository(self) -> str:
        return self.names.repository

    def image(self, tag: str) -> str:
        return self.names.image(tag)

    def client(self, service: str):
        """One boto3 client per service, kept: building one costs 50-100 ms of CPU, and the failure matrix's
        outage sampler looked at the listener and both services every 0.5 s, a new client each time.
        boto3 clients are thread-safe; the default session that builds them is not, hence the lock."""
        with self._clients_lock:
            found = self._clients.get(service)
            if found is None:
                found = self._clients[service] = boto3.session.Session().client(
                    service, region_name="us-east-1", endpoint_url=self.moto_url,
                    aws_access_key_id="testing", aws_secret_access_key="testing",
                )
            return found

    def reset(self) -> None:
        requests.post(f"{self.service_url}/_local/reset", timeout=30).raise_for_status()

    def faults(self, **toggles) -> None:
        requests.post(f"{self.service_url}/_local/faults", json=toggles, timeout=5).raise_for_status()

    def messages(self) -> list[dict]:
        return requests.get(f"{self.slack_url}/messages", timeout=5).json()

    def message_texts(self) -> list[str]:
        return [m.get("body", m).get("text", "") for m in self.messages()]

    # What a user would check in the console.
    def service(self, name: str | None = None) -> dict:
        """A service of this environment (default: the blue slot, `.service_name`)."""
        ecs = self.client("ecs")
        return ecs.describe_services(cluster=self.cluster, services=[name or self.service_name])["services"][0]

    def task_definition_image(self, arn: str) -> str:
        td = self.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return td["containerDefinitions"][0]["image"]

    def revisions(self) -> list[str]:
        return self.client("ecs").list_task_definitions(familyPrefix=self.family)["taskDefinitionArns"]

    def digest(self, tag: str) -> str:
        ecr = self.client("ecr")
        return ecr.describe_images(repositoryName=self.repository, imageIds=[{"imageTag": tag}])["imageDetails"][0]["imageDigest"]

    def weights(self) -> dict[str, int]:
        elb = self.client("elbv2")
        lb = elb.describe_load_balancers(Names=[self.alb])["LoadBalancers"][0]
        listener = next(
            lis for lis in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] if lis["Port"] == 80
        )
        groups = listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        return {g["TargetGroupArn"].split("/")[-2]: g["Weight"] for g in groups}
