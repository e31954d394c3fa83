"""ECS service and task-definition operations a deployment needs."""

from __future__ import annotations

from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment

# Fields of describe_task_definition that register_task_definition accepts back.
_REGISTER_FIELDS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
    "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
)


class ServiceNotFound(RuntimeError):
    pass


class EcsClient:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "ecs")

    def describe_service(self, service: str) -> dict:
        return self.describe_services(service)[0]

    def describe_services(self, *services: str) -> list[dict]:
        """Several services in one call (up to 10, ECS's limit), in the order asked; ServiceNotFound names any
        that is missing or INACTIVE."""
        resp = self.client.describe_services(cluster=self.env.cluster, services=list(services))
        found = {s["serviceName"]: s for s in resp.get("services", []) if s.get("status") != "INACTIVE"}
        missing = [s for s in services if s.rsplit("/", 1)[-1] not in found]
        if missing:
            raise ServiceNotFound(f"ECS service {', '.join(map(repr, missing))} not found in cluster {self.env.cluster!r}")
        return [found[s.rsplit("/", 1)[-1]] for s in services]

    def describe_task_definition(self, arn: str) -> dict:
        return self.client.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def container_image(self, task_definition: dict) -> str:
        for c in task_definition.get("containerDefinitions", []):
            if c.get("name") == self.env.container_name:
                return c["image"]
        raise RuntimeError(
            f"task definition {task_definition.get('taskDefinitionArn')} has no container "
            f"named {self.env.container_name!r}"
        )

    def register_with_image(self, base_arn: str, image: str) -> tuple[str, bool]:
        """Clone `base_arn` with the container image replaced; reuse an identical ACTIVE revision.

        Returns (arn, created). Reuse keeps a retried task from registering a second revision.
        """
        base = self.describe_task_definition(base_arn)
        if self.container_image(base) == image:
            return base["taskDefinitionArn"], False
        for arn in self.list_revisions()[:self.env.keep_task_definitions]:
            if self.container_image(self.describe_task_definition(arn)) == image:
                return arn, False
        spec = {k: base[k] for k in _REGISTER_FIELDS if base.get(k)}
        containers = []
        for c in spec["containerDefinitions"]:
            c = dict(c)
            if c.get("name") == self.env.container_name:
                c["image"] = image
            containers.append(c)
        spec["containerDefinitions"] = containers
        spec["family"] = self.env.task_family
        resp = self.client.register_task_definition(**spec)
        return resp["taskDefinition"]["taskDefinitionArn"], True

    def list_revisions(self) -> list[str]:
        """ACTIVE revisions of the environment's task family, newest first."""
        arns: list[str] = []
        kwargs: dict[str, Any] = {"familyPrefix": self.env.task_family, "status": "ACTIVE", "sort": "DESC"}
        while True:
            resp = self.client.list_task_definitions(**kwargs)
            arns.extend(a for a in resp.get("taskDefinitionArns", []) if a.split("/")[-1].rsplit(":", 1)[0] == self.env.task_family)
            if not resp.get("nextToken"):
                return arns
            kwargs["nextToken"] = resp["nextToken"]

    def deregister(self, arn: str) -> None:
        self.client.deregister_task_definition(taskDefinition=arn)

    def update_service(self, service: str, task_definition: str, desired_count: int | None = None) -> dict:
        """Point the service at a revision with ECS's deployment circuit breaker (rollback on)."""
        kwargs: dict[str, Any] = {
            "cluster": self.env.cluster,
            "service": service,
            "taskDefinition": task_definition,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        }
        if desired_count is not None:
            kwargs["desiredCount"] = desired_count
        return self.client.update_service(**kwargs)["service"]

    def scale(self, service: str, desired_count: int) -> dict:
        return self.client.update_service(cluster=self.env.cluster, service=service, desiredCount=desired_count)["service"]

    def force_new_deployment(self, service: str) -> dict:
        """A new deployment of the revision the service already runs (fresh tasks; `restart`)."""
        return self.client.update_service(cluster=self.env.cluster, service=service, forceNewDeployment=True)["service"]

    def stopped_tasks(self, service: str, task_definition: str | None = None, limit: int = 3) -> list[dict]:
        """The service's most recently stopped tasks (of `task_definition` if given), newest first.

        ListTasks(desiredStatus=STOPPED) + DescribeTasks: stoppedReason, stopCode and each container's
        exit code and reason, as the runbook's troubleshooting steps read them. ECS keeps stopped tasks
        for about an hour. Filtered again on `group` ("service:<name>"), which ECS sets on service tasks.
        """
        arns: list[str] = []
        kwargs: dict[str, Any] = {"cluster": self.env.cluster, "serviceName": service, "desiredStatus": "STOPPED"}
        while len(arns) < 300:
            resp = self.client.list_tasks(**kwargs)
            arns.extend(resp.get("taskArns", []))
            if not resp.get("nextToken"):
                break
            kwargs["nextToken"] = resp["nextToken"]
        tasks: list[dict] = []
        for i in range(0, len(arns), 100):
            tasks += self.client.describe_tasks(cluster=self.env.cluster, tasks=arns[i : i + 100]).get("tasks", [])
        ours = [
            t for t in tasks
            if t.get("group", f"service:{service}") == f"service:{service}"
            and (task_definition is None or t.get("taskDefinitionArn") == task_definition)
        ]
        ours.sort(key=_stopped_at, reverse=True)
        return ours[:limit]


def _stopped_at(task: dict) -> float:
    moment = task.get("stoppedAt") or task.get("stoppingAt") or task.get("createdAt")
    return moment.timestamp() if hasattr(moment, "timestamp") else 0.0
