"""The call ledger and its check: recorded server-side in the local environment, judged with policy_sentry.

The whole-suite proof runs at the end of every pytest session (tests/security/ledger_session.py);
these tests pin down the checker and show one real deployment's calls are recorded and allowed.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from tests.envs import ENV
from tests.integration.helpers import image, run_dag
from tests.security.iam_check import check, deployment_calls, read_ledgers
from tests.security.ledger_session import ledger_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "include" / "local"))
from latticedb_local.call_ledger import describe  # noqa: E402

POLICY = json.loads((ROOT / "include" / "iam" / "local.json").read_text())
ACCT, REGION = "123456789012", "us-east-1"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCT}:cluster/latticedb-local"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCT}:table/latticedb-deploy-locks"


def _call(action, resources, context=None, implied=None):
    return {"action": action, "resources": resources, "context": context or {}, "implied": implied or [],
            "mapped": True, "airflow": True, "caller": "Test"}


def test_a_call_the_policy_does_not_allow_is_reported():
    verdict = check(POLICY, [
        _call("ecs:ListServices", [CLUSTER], {"ecs:cluster": CLUSTER}),
        _call("ecs:ListServices", [CLUSTER.replace("local", "production")], {"ecs:cluster": CLUSTER.replace("local", "production")}),
        _call("ecs:DeleteService", [f"arn:aws:ecs:{REGION}:{ACCT}:service/latticedb-local/latticedb-service-local"]),
        _call("dynamodb:PutItem", [TABLE], {"dynamodb:LeadingKeys": ["production"]}),
    ], require_all_used=False)
    assert len(verdict.denied) == 3, verdict.denied
    assert "latticedb-production" in verdict.denied[0] and "ecs:DeleteService" in verdict.denied[1]
    assert "LeadingKeys=['production']" in verdict.denied[2]
    assert not verdict.problems


def test_a_granted_action_no_code_uses_is_reported():
    verdict = check(POLICY, [_call("sts:GetCallerIdentity", ["*"])])
    assert not verdict.denied
    assert "CallerIdentity: sts:GetCallerIdentity" not in verdict.unused
    assert "ShiftTraffic: elasticloadbalancing:ModifyListener" in verdict.unused


def test_the_old_policy_denied_list_services_on_every_run():
    """main's policy scoped ecs:ListServices to ARNs; the action has no resource-level permission."""
    old = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ecs:ListServices", "ecs:DescribeClusters"],
        "Resource": ["arn:aws:ecs:*:123456789012:service/latticedb-*/latticedb-service-*", "arn:aws:ecs:*:123456789012:cluster/latticedb-*"],
    }]}
    verdict = check(old, [_call("ecs:ListServices", [CLUSTER], {"ecs:cluster": CLUSTER})], require_all_used=False)
    assert verdict.denied and "ecs:ListServices on *" in verdict.denied[0]


def test_entries_it_cannot_judge_are_problems_not_passes():
    verdict = check(POLICY, [
        {"action": "ecs:UpdateService", "resources": [], "mapped": False, "airflow": True},
        _call("ecs:UpdateService", [CLUSTER]),  # a cluster ARN is no service
        _call("ecs:DescribeClusters", [CLUSTER], {"ecs:made-up": "x"}),
        _call("ecs:LaunchRockets", ["*"]),
    ], require_all_used=False)
    assert len(verdict.problems) == 4, verdict.problems


def _environ(target=None, body=b"", service="ecs", agent="Boto3/1 Airflow/3.3.2 AmPP/9 Caller/RegisterTaskDefinitionOperator"):
    environ = {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=x",
        "HTTP_USER_AGENT": agent, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
    }
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    else:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
    return environ


def test_the_recorder_names_resources_conditions_and_implied_pass_role():
    body = json.dumps({"family": "latticedb-task-local", "taskRoleArn": "arn:aws:iam::123456789012:role/t",
                       "executionRoleArn": "arn:aws:iam::123456789012:role/e", "containerDefinitions": []}).encode()
    response = json.dumps({"taskDefinition": {"taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCT}:task-definition/latticedb-task-local:4"}})
    entry = describe(_environ("AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition", body), body, response.encode(), ACCT)
    assert entry["action"] == "ecs:RegisterTaskDefinition" and entry["airflow"] and entry["caller"] == "RegisterTaskDefinitionOperator"
    assert entry["resources"] == [f"arn:aws:ecs:{REGION}:{ACCT}:task-definition/latticedb-task-local:4"]
    assert entry["implied"] == [{"action": "iam:PassRole", "resources": ["arn:aws:iam::123456789012:role/e", "arn:aws:iam::123456789012:role/t"],
                                 "context": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}]
    form = b"Action=ModifyListener&Version=2015-12-01&ListenerArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-east-1%3A123456789012%3Alistener%2Fapp%2Flb%2F1%2F2"
    entry = describe(_environ(body=form, service="elasticloadbalancing", agent="Boto3/1"), form, b"<xml/>", ACCT)
    assert entry["action"] == "elasticloadbalancing:ModifyListener" and not entry["airflow"]
    assert entry["resources"] == [f"arn:aws:elasticloadbalancing:{REGION}:{ACCT}:listener/app/lb/1/2"]
    body = json.dumps({"cluster": "latticedb-local"}).encode()
    entry = describe(_environ("AmazonEC2ContainerServiceV20141113.ListServices", body), body, b"{}", ACCT)
    assert entry["context"] == {"ecs:cluster": CLUSTER}


def test_list_tasks_naming_no_container_instance_is_judged_on_star_as_aws_does():
    """aws/ecs.py stopped_tasks lists a service's stopped tasks by cluster and serviceName, no container
    instance: AWS authorizes that against "*" ("not authorized to perform: ecs:ListTasks on resource: *"),
    so the ledger records "*" and a policy scoped to the cluster's container instances is denied here as
    it would be in AWS. A call naming a container instance is still judged on that instance."""
    body = json.dumps({"cluster": "latticedb-local", "serviceName": "latticedb-service-local", "desiredStatus": "STOPPED"}).encode()
    entry = describe(_environ("AmazonEC2ContainerServiceV20141113.ListTasks", body), body, b'{"taskArns": []}', ACCT)
    assert entry["action"] == "ecs:ListTasks"
    assert (entry["resources"], entry["context"]) == (["*"], {"ecs:cluster": CLUSTER})
    verdict = check(POLICY, [entry], require_all_used=False)
    assert verdict.ok, verdict.lines()
    instances = f"arn:aws:ecs:{REGION}:{ACCT}:container-instance/latticedb-local/*"
    old = {"Version": "2012-10-17", "Statement": [{  # the policy before: kinder than AWS, and denied there
        "Effect": "Allow", "Action": ["ecs:ListTasks"], "Resource": instances, "Condition": {"ArnEquals": {"ecs:cluster": CLUSTER}}}]}
    verdict = check(old, [entry], require_all_used=False)
    assert verdict.denied and "ecs:ListTasks on *" in verdict.denied[0], verdict.lines()
    body = json.dumps({"cluster": "latticedb-local", "containerInstance": "0a1b2c"}).encode()
    entry = describe(_environ("AmazonEC2ContainerServiceV20141113.ListTasks", body), body, b"{}", ACCT)
    assert entry["resources"] == [instances.replace("*", "0a1b2c")]
    assert check(old, [entry], require_all_used=False).ok


@pytest.mark.integration
def test_a_real_deployment_is_recorded_server_side_and_every_call_is_allowed(local, dagbag):
    path = ledger_file()
    before = len(read_ledgers([path])) if path.exists() else 0
    state, _ = run_dag(dagbag, "latticedb_deploy_rolling", {"image_uri": image("v2.0.0"), "environment": ENV.name})
    assert state == "success"
    entries = [e for e in read_ledgers([path])[before:] if e.get("environment") == ENV.name]  # this worker's
    calls = deployment_calls(entries)
    actions = {c["action"] for c in calls}
    assert {"ecs:RegisterTaskDefinition", "ecs:UpdateService", "ecs:ListServices", "dynamodb:PutItem", "sts:GetCallerIdentity"} <= actions
    register = next(c for c in calls if c["action"] == "ecs:RegisterTaskDefinition")
    assert register["implied"][0]["action"] == "iam:PassRole" and len(register["implied"][0]["resources"]) == 2
    assert all(c["caller"] for c in calls)
    # the environment's own clients (bootstrap, emulator, simulator) are not in the ledger
    assert not any(e["action"].startswith(("ec2:", "logs:")) or e["action"] == "ecs:CreateService" for e in entries)
    verdict = check(json.loads((ROOT / "include" / "iam" / f"{ENV.name}.json").read_text()), calls, require_all_used=False)
    assert verdict.ok, verdict.lines()
