"""One local stack hosting two environments (`local` and its copy `local-staging`): each has its own
resources, endpoints and faults, and a reset restores only its own environment."""

from __future__ import annotations

import boto3
import botocore.exceptions
import pytest
import requests

from tests.local.conftest import ctl, free_ports, local_env

KINDS = ("MOTO", "SERVICE", "SLACK", "TEST")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = local_env(tmp_path_factory.mktemp("two-envs"), LATTICEDB_LOCAL_ENVIRONMENTS="local local-staging")
    env.update({f"LATTICEDB_LOCAL_STAGING_{k}_PORT": str(p) for k, p in zip(KINDS, free_ports(4), strict=True)})
    up = ctl("up", env)
    if up.returncode != 0:
        pytest.fail(f"ctl.py up failed:\n{up.stdout}\n{up.stderr}")
    yield {
        name: {k.lower(): f"http://127.0.0.1:{env[f'LATTICEDB_{prefix}_{k}_PORT']}" for k in KINDS}
        for name, prefix in (("local", "LOCAL"), ("local-staging", "LOCAL_STAGING"))
    }
    ctl("down", env)


def client(urls: dict, service: str):
    return boto3.client(service, endpoint_url=urls["moto"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def weights(urls: dict, alb: str) -> dict[str, int]:
    elb = client(urls, "elbv2")
    lb = elb.describe_load_balancers(Names=[alb])["LoadBalancers"][0]["LoadBalancerArn"]
    prod = next(x for x in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] if x["Port"] == 80)
    return {g["TargetGroupArn"].split("/")[-2]: g["Weight"] for g in prod["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]}


def shift_to_green(urls: dict, alb: str, blue: str, green: str) -> None:
    elb = client(urls, "elbv2")
    lb = elb.describe_load_balancers(Names=[alb])["LoadBalancers"][0]["LoadBalancerArn"]
    prod = next(x for x in elb.describe_listeners(LoadBalancerArn=lb)["Listeners"] if x["Port"] == 80)
    tgs = {t["TargetGroupName"]: t["TargetGroupArn"] for t in elb.describe_target_groups(Names=[blue, green])["TargetGroups"]}
    elb.modify_listener(ListenerArn=prod["ListenerArn"], DefaultActions=[{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": tgs[blue], "Weight": 0}, {"TargetGroupArn": tgs[green], "Weight": 100}]}}])


def reset(urls: dict) -> dict:
    r = requests.post(f"{urls['service']}/_local/reset", timeout=60)
    r.raise_for_status()
    return r.json()


def test_each_environment_has_its_own_resources_and_endpoints(stack):
    local, staging = (requests.get(f"{stack[n]['service']}/_local/status", timeout=5).json() for n in ("local", "local-staging"))
    assert local["ready"] and staging["ready"]
    assert set(local["topology"]["service_arns"]) == {"latticedb-service-local", "latticedb-service-local-green"}
    assert set(staging["topology"]["service_arns"]) == {"latticedb-service-local-staging", "latticedb-service-local-staging-green"}
    assert local["topology"]["load_balancer_arn"] != staging["topology"]["load_balancer_arn"]
    health = requests.get(f"{stack['local-staging']['service']}/health", timeout=5).json()
    assert (health["service"], health["version"]) == ("latticedb-service-local-staging", "v1.0.0")
    assert "/latticedb-local-route@" in health["image"]  # its ECR repository (shared with local-prod only)
    # both endpoints serve the same moto: each environment's resources are visible from either
    ecs = client(stack["local"], "ecs")
    assert "arn:aws:ecs:us-east-1:123456789012:cluster/latticedb-local-staging" in ecs.list_clusters()["clusterArns"]


def test_a_reset_restores_only_its_own_environment(stack):
    shift_to_green(stack["local"], "latticedb-local-alb", "latticedb-local-blue", "latticedb-local-green")
    shift_to_green(stack["local-staging"], "latticedb-local-staging-alb", "latticedb-local-staging-blue", "latticedb-local-staging-green")
    ecs = client(stack["local-staging"], "ecs")
    td = ecs.describe_task_definition(taskDefinition="latticedb-task-local-staging")["taskDefinition"]
    ecs.register_task_definition(family=td["family"], containerDefinitions=td["containerDefinitions"],
                                 **{k: td[k] for k in ("networkMode", "requiresCompatibilities", "cpu", "memory")})
    assert reset(stack["local-staging"])["environment"] == "local-staging"
    assert weights(stack["local-staging"], "latticedb-local-staging-alb") == {"latticedb-local-staging-blue": 100, "latticedb-local-staging-green": 0}
    assert ecs.list_task_definitions(familyPrefix="latticedb-task-local-staging")["taskDefinitionArns"] == [
        "arn:aws:ecs:us-east-1:123456789012:task-definition/latticedb-task-local-staging:1"
    ]
    assert weights(stack["local"], "latticedb-local-alb") == {"latticedb-local-blue": 0, "latticedb-local-green": 100}  # untouched
    reset(stack["local"])
    assert weights(stack["local"], "latticedb-local-alb") == {"latticedb-local-blue": 100, "latticedb-local-green": 0}


def test_faults_stay_in_their_environment(stack):
    reset(stack["local"])
    reset(stack["local-staging"])
    r = requests.post(f"{stack['local-staging']['service']}/_local/faults",
                      json={"deny": {"operation": "DescribeLoadBalancers"}, "health_down": True}, timeout=5)
    r.raise_for_status()
    try:
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            client(stack["local-staging"], "elbv2").describe_load_balancers(Names=["latticedb-local-staging-alb"])
        # the same call on local's endpoint, even for staging's load balancer, is served
        client(stack["local"], "elbv2").describe_load_balancers(Names=["latticedb-local-staging-alb"])
        assert requests.get(f"{stack['local-staging']['service']}/health", timeout=5).status_code == 503
        assert requests.get(f"{stack['local']['service']}/health", timeout=5).status_code == 200
        assert requests.get(f"{stack['local']['service']}/_local/faults", timeout=5).json()["deny"] is None
    finally:
        requests.delete(f"{stack['local-staging']['service']}/_local/faults", timeout=5)
