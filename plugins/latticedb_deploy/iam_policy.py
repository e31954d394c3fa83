"""The deployer role's least-privilege IAM policy for one environment, derived from the config.

Every ARN is built from include/config/latticedb.yaml (account, region, cluster, services, task
family, load balancer, repository, lock table, task and execution roles), so the staging deployer
can touch staging only. A statement uses `Resource: "*"` only where AWS offers no resource-level
permission for the action, or authorizes the call as we make it against "*" (ecs:ListTasks naming no
container instance), and then narrows it with the condition keys AWS supports (e.g. `ecs:cluster` for
ListServices and ListTasks). Only the environment that cleans a shared ECR repository
(config.image_cleaner) may delete images from it. The committed files are include/iam/<environment>.json; a test
checks they equal what this module produces, and another checks every AWS call the integration
suite makes against them.

    python -m latticedb_deploy.iam_policy <environment>      # print the policy
    python -m latticedb_deploy.iam_policy --write            # rewrite include/iam/*.json
    make iam-policy ENVIRONMENT=<environment>

Pure: no AWS calls, no Airflow import.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# can_run_from: the rule lives in config; re-exported here (tests compare it with aws.in_use's).
from latticedb_deploy.config import DeployConfig, Environment, can_run_from, load_config, may_delete_images  # noqa: F401

POLICY_DIR = Path(__file__).resolve().parents[2] / "include" / "iam"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def task_role_name(env: Environment) -> str:
    return env.task_role or f"{env.task_family}-task"


def execution_role_name(env: Environment) -> str:
    return env.execution_role or f"{env.task_family}-execution"


class Arns:
    """The environment's resources as ARNs (ALB ids are unknowable from config: wildcarded in the id part only)."""

    def __init__(self, env: Environment):
        self.env = env
        self.p, self.r, self.a = partition(env.region), env.region, env.account_id

    def _arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:{self.p}:{service}:{self.r if region else ''}:{self.a}:{resource}"

    @property
    def cluster(self) -> str:
        return self._arn("ecs", f"cluster/{self.env.cluster}")

    def service(self, name: str) -> str:
        return self._arn("ecs", f"service/{self.env.cluster}/{name}")

    @property
    def tasks(self) -> str:
        return self._arn("ecs", f"task/{self.env.cluster}/*")

    @property
    def task_definitions(self) -> str:
        return self._arn("ecs", f"task-definition/{self.env.task_family}:*")

    def role(self, name: str) -> str:
        return self._arn("iam", f"role/{name}", region=False)

    @property
    def task_role(self) -> str:
        return self.role(task_role_name(self.env))

    @property
    def execution_role(self) -> str:
        return self.role(execution_role_name(self.env))

    @property
    def repository(self) -> str:
        return self._arn("ecr", f"repository/{self.env.ecr_repository}")

    @property
    def listeners(self) -> str:
        # The type segment (app/net) is wildcarded too: load balancer names are unique per region
        # across types, so this still names one load balancer (and parliament wants both types).
        return self._arn("elasticloadbalancing", f"listener/*/{self.env.load_balancer.name}/*/*")

    @property
    def lock_table(self) -> str:
        return self._arn("dynamodb", f"table/{self.env.lock_table}")

    @property
    def history_table(self) -> str:
        return self._arn("dynamodb", f"table/{self.env.history_table}")



def _statement(sid: str, actions: list[str], resources: str | list[str], condition: dict | None = None) -> dict:
    stmt: dict = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        stmt["Condition"] = condition
    return stmt


def sharing_the_repository(env: Environment, environments: list[Environment]) -> list[Environment]:
    """Other environments image cleanup looks up through this environment's connection (read only)."""
    return [
        other for other in environments
        if other.name != env.name and can_run_from(other, env) and (other.account_id, other.region) == (env.account_id, env.region)
    ]


def policy_for(env: Environment, environments: list[Environment] | None = None) -> dict:
    """The IAM policy document the environment's deployer role needs: nothing more, nothing less.

    `environments`: every configured environment (image cleanup reads the slot services of those
    that share this one's repository, account and region, so it never deletes an image they run).
    """
    arns = Arns(env)
    deletes_images = may_delete_images(env, environments or [env])
    others = sharing_the_repository(env, environments or [env])
    if getattr(env, "copy_of", None) and env.name.startswith("local-"):
        # The local test copies rehearse the shared-repository case against staging and production
        # (tests/integration/test_cleanup.py): their cleanup reads those services, read only.
        others = [*others, *(e for e in (environments or []) if e.name in ("staging", "production") and e not in others)]
    statements = [
        # Pre-flight "AWS credentials valid". STS has no resources.
        _statement("CallerIdentity", ["sts:GetCallerIdentity"], "*"),
        # Rolling/blue-green/canary point a slot at a revision or scale it: the two slots only, and only at
        # a revision of this environment's own family (never another environment's, with its task role).
        # IfExists: a scale or a forced new deployment names no task definition.
        _statement(
            "UpdateSlots", ["ecs:UpdateService"], [arns.service(s) for s in env.services],
            {"ArnLikeIfExists": {"ecs:task-definition": arns.task_definitions}},
        ),
        # The capacity check sums running tasks over every service of the cluster (its own cluster only).
        _statement("DescribeClusterServices", ["ecs:DescribeServices"], arns.service("*")),
        _statement("DescribeCluster", ["ecs:DescribeClusters"], arns.cluster),
        # Image cleanup keeps every image another environment sharing the repository runs (read only).
        *(
            [_statement("ImagesInUseElsewhere", ["ecs:DescribeServices"], [Arns(o).service(s) for o in others for s in o.services])]
            if others else []
        ),
        # ListServices has no resource-level permission; ecs:cluster narrows it to this cluster.
        _statement("ListClusterServices", ["ecs:ListServices"], "*", {"ArnEquals": {"ecs:cluster": arns.cluster}}),
        # A failed or timed-out rollout reports its stopped tasks' reasons and exit codes (read only).
        # ListTasks' only resource type is the container instance, but a call that names none (ours:
        # cluster + serviceName) is authorized against "*" ("not authorized to perform: ecs:ListTasks on
        # resource: *"); ecs:cluster narrows it to this cluster.
        _statement("StoppedTasksList", ["ecs:ListTasks"], "*", {"ArnEquals": {"ecs:cluster": arns.cluster}}),
        _statement("StoppedTasksDescribe", ["ecs:DescribeTasks"], arns.tasks, {"ArnEquals": {"ecs:cluster": arns.cluster}}),
        _statement("RegisterRevisions", ["ecs:RegisterTaskDefinition"], arns.task_definitions),
        # No resource-level permission and no condition keys exist for these three.
        _statement(
            "TaskDefinitionsNoResourceLevel",
            ["ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"],
            "*",
        ),
        # A new revision names the task and execution roles: exactly those, and only to ECS tasks.
        _statement(
            "PassTaskRoles",
            ["iam:PassRole"],
            [arns.task_role, arns.execution_role],
            {"StringEquals": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}},
        ),
        _statement(
            "Images", ["ecr:DescribeImageScanFindings", "ecr:DescribeImages", "ecr:DescribeRepositories"], arns.repository
        ),
        # Image cleanup deletes only where this environment is the repository's cleaner: it owns it
        # (ecr_repository_owner) or no other environment deploys from it. dev and staging share
        # production's repository, so they may not delete what production runs (config.image_cleaner).
        *([_statement("ImageCleanup", ["ecr:BatchDeleteImage"], arns.repository)] if deletes_images else []),
        # Elastic Load Balancing's Describe* actions have no resource-level permission or condition key.
        _statement(
            "LoadBalancerRead",
            [
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
            ],
            "*",
        ),
        # Traffic shifts: the production and test listeners of this environment's load balancer.
        _statement("ShiftTraffic", ["elasticloadbalancing:ModifyListener"], arns.listeners),
        # GetMetricData has no resource-level permission; DescribeAlarms must be scoped to * to
        # return composite alarms (CloudWatch API reference), which the incident check reads.
        _statement("MetricsAndAlarms", ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData"], "*"),
        # The lease: this environment's item only (its partition key is the environment name; the
        # pre-emption record lives on that same item). Every write is a conditional UpdateItem (the item
        # outlives its holders); DeleteItem only for a person's clear (latticedb_unlock).
        _statement(
            "EnvironmentLease",
            ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
            arns.lock_table,
            {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [env.name]}},
        ),
        # The deployment history: one item per run, written by the run and read back (the Deployments
        # page, DORA) by environment; this environment's items only (partition key = its name).
        _statement(
            "DeploymentHistory",
            ["dynamodb:PutItem", "dynamodb:Query"],
            arns.history_table,
            {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [env.name]}},
        ),
    ]
    if env.capacity.max_tasks is None:  # only then does the capacity check ask Service Quotas
        # Read-only. The Service Authorization Reference now lists quota ARNs and servicequotas:service
        # for GetServiceQuota, but the IAM linter's definition (parliament) does not yet: narrowing
        # it would fail the lint, so both stay on "*" until it catches up.
        statements.append(
            _statement("FargateQuota", ["servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota"], "*")
        )
    return {"Version": "2012-10-17", "Statement": statements}


def render(policy: dict) -> str:
    return json.dumps(policy, indent=2) + "\n"


def policies(config: DeployConfig | None = None) -> dict[str, str]:
    """environment name -> rendered policy, for every configured environment."""
    config = config or load_config()
    everyone = list(config.environments.values())
    return {name: render(policy_for(env, everyone)) for name, env in config.environments.items()}


def policy_path(name: str, directory: Path = POLICY_DIR) -> Path:
    return directory / f"{name}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latticedb_deploy.iam_policy", description=__doc__.split("\n\n")[0])
    parser.add_argument("environment", nargs="?", help="print this environment's policy")
    parser.add_argument("--write", action="store_true", help=f"write every environment's policy to {POLICY_DIR}")
    args = parser.parse_args(argv)
    config = load_config()
    if args.write:
        for name, text in policies(config).items():
            policy_path(name).write_text(text)
            print(policy_path(name))
        return 0
    if not args.environment:
        parser.error(f"name an environment ({', '.join(config.environment_names)}) or pass --write")
    sys.stdout.write(policies(config)[config.environment(args.environment).name])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - a CLI: one clear line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
