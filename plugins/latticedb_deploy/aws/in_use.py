"""Which container images are in use by any configured environment that shares a repository.

Environments share one ECR repository, so image cleanup in one environment must keep every image
another environment runs or may roll back to: each image referenced by a task definition that is
ACTIVE in that environment's task family, or that either of its slot services runs (any of the
service's deployments, even an INACTIVE revision).

What this connection can see: ECS resources in the environment's own account and region. Another
configured environment in that account and region is looked up through this connection (read
only: ecs:DescribeServices, ecs:ListTaskDefinitions, ecs:DescribeTaskDefinition). An environment
in another account or region cannot be looked up with these credentials; if it could run images
from this repository (the same repository name and this registry allowed by its
`allowed_registries`, or, without that list, the same account) it is reported as *unseen*, and
the caller must then delete nothing. An error reading an environment (access denied, throttling)
is raised: the caller deletes nothing then either. Environments that cannot run images from this repository are
ignored. Another environment's credentials are never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import can_run_from, registry_host

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment



@dataclass
class ImagesInUse:
    images: dict[str, list[str]] = field(default_factory=dict)  # image reference -> where it is used
    described: dict[str, list[str]] = field(default_factory=dict)  # task definition ARN -> its images, as read
    checked: list[str] = field(default_factory=list)  # environments looked up
    unseen: list[str] = field(default_factory=list)  # environments that may use the repository but could not be looked up
    ignored: list[str] = field(default_factory=list)  # environments that cannot use this repository

    def add(self, image: str, where: str) -> None:
        self.images.setdefault(image, []).append(where)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "") or type(exc).__name__)


def _in_service(client: Any, other: Environment) -> dict[str, str]:
    """Task definitions the environment's two slot services run (every deployment), -> 'service'."""
    try:
        resp = client.describe_services(cluster=other.cluster, services=list(other.services))
    except Exception as exc:
        if _error_code(exc) == "ClusterNotFoundException":
            return {}  # no cluster: nothing runs there
        raise
    found: dict[str, str] = {}
    for svc in resp.get("services", []):
        if svc.get("status") == "INACTIVE":
            continue
        arns = [svc.get("taskDefinition"), *(d.get("taskDefinition") for d in svc.get("deployments", []))]
        for arn in filter(None, arns):
            found.setdefault(arn, f"service {svc['serviceName']}")
    return found


def _active(client: Any, other: Environment) -> dict[str, str]:
    """ACTIVE revisions of the environment's task family (any of them can be rolled back to)."""
    found: dict[str, str] = {}
    kwargs: dict[str, Any] = {"familyPrefix": other.task_family, "status": "ACTIVE"}
    while True:
        resp = client.list_task_definitions(**kwargs)
        for arn in resp.get("taskDefinitionArns", []):
            if arn.split("/")[-1].rsplit(":", 1)[0] == other.task_family:
                found[arn] = "ACTIVE revision"
        if not resp.get("nextToken"):
            return found
        kwargs["nextToken"] = resp["nextToken"]


def images_in_use(env: Environment, environments: list[Environment], client: Any = None) -> ImagesInUse:
    """Every image any configured environment that can use `env`'s repository runs or keeps ACTIVE."""
    client = client or boto_client(env, "ecs")
    result = ImagesInUse()
    described = result.described
    for other in environments:
        if not can_run_from(other, env):
            result.ignored.append(f"{other.name}: cannot run images from {registry_host(env)}/{env.ecr_repository}")
            continue
        if (other.account_id, other.region) != (env.account_id, env.region):
            result.unseen.append(
                f"{other.name}: account {other.account_id} in {other.region} is not visible to "
                f"{env.name}'s connection ({env.account_id} in {env.region})"
            )
            continue
        # Errors (access denied, throttling) propagate: the caller deletes nothing when it cannot look.
        arns = {**_active(client, other), **_in_service(client, other)}
        for arn, how in sorted(arns.items()):
            if arn not in described:
                td = client.describe_task_definition(taskDefinition=arn)["taskDefinition"]
                described[arn] = [c["image"] for c in td.get("containerDefinitions", []) if c.get("image")]
            for image in described[arn]:
                result.add(image, f"{other.name}: {arn.split('/')[-1]} ({how})")
        result.checked.append(other.name)
    return result
