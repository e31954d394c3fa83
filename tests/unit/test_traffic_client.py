"""TrafficClient: weights read fresh on every call, the ARNs behind them looked up once per client.

moto in decorator mode (a narrow unit test): one ALB with the production and test listeners and the
two colours' target groups, as `local` names them; AWS calls counted by operation name (harness.aws_calls).
"""

import boto3
import pytest
from moto import mock_aws

from harness.aws_calls import AwsCallCounter
from latticedb_deploy.aws.elbv2 import TrafficClient
from latticedb_deploy.config import load_config

REGION = "us-east-1"


def _elbv2():
    return boto3.client("elbv2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def _forward(groups: dict[str, int]) -> list[dict]:
    return [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in groups.items()]}}]


@pytest.fixture
def alb():
    """`local`'s load balancer: blue takes all production traffic, the test listener points at green."""
    env = load_config().environment("local")
    lb_conf = env.load_balancer
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        elb = _elbv2()
        lb = elb.create_load_balancer(Name=lb_conf.name, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        tg = {name: elb.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")
              ["TargetGroups"][0]["TargetGroupArn"] for name in (lb_conf.blue_target_group, lb_conf.green_target_group)}
        blue, green = tg[lb_conf.blue_target_group], tg[lb_conf.green_target_group]
        prod = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=lb_conf.listener_port,
                                   DefaultActions=_forward({blue: 100, green: 0}))["Listeners"][0]["ListenerArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=lb_conf.test_listener_port,
                            DefaultActions=_forward({blue: 0, green: 100}))
        yield {"env": env, "elb": elb, "blue": blue, "green": green, "prod": prod}


def test_a_new_client_reads_traffic_in_three_calls_and_then_in_one(alb):
    traffic = TrafficClient(alb["env"], client=_elbv2())
    with AwsCallCounter() as calls:
        live, idle, weights = traffic.live_and_idle()
    assert (live.colour, idle.colour) == ("blue", "green")
    assert weights == {alb["blue"]: 100, alb["green"]: 0}
    assert calls.by_operation() == {"DescribeTargetGroups": 1, "DescribeLoadBalancers": 1, "DescribeListeners": 1}

    with AwsCallCounter() as calls:
        traffic.live_and_idle()
    assert calls.by_operation() == {"DescribeListeners": 1}

    with AwsCallCounter() as calls:  # every listener's ARN came with the first read: the test listener is one call too
        assert traffic.weights(alb["env"].load_balancer.test_listener_port) == {alb["blue"]: 0, alb["green"]: 100}
    assert calls.by_operation() == {"DescribeListeners": 1}


def test_weights_are_read_fresh_after_someone_else_moves_traffic(alb):
    traffic = TrafficClient(alb["env"], client=_elbv2())
    assert traffic.live_and_idle()[0].colour == "blue"

    alb["elb"].modify_listener(ListenerArn=alb["prod"], DefaultActions=_forward({alb["blue"]: 10, alb["green"]: 90}))
    live, idle, weights = traffic.live_and_idle()
    assert (live.colour, idle.colour) == ("green", "blue")
    assert weights == {alb["blue"]: 10, alb["green"]: 90}


def test_setting_weights_after_a_read_is_one_call_and_lands_on_the_production_listener(alb):
    traffic = TrafficClient(alb["env"], client=_elbv2())
    traffic.live_and_idle()
    with AwsCallCounter() as calls:
        traffic.set_weights({alb["blue"]: 25, alb["green"]: 75})
    assert calls.by_operation() == {"ModifyListener": 1}
    assert TrafficClient(alb["env"], client=_elbv2()).weights() == {alb["blue"]: 25, alb["green"]: 75}


def test_a_port_with_no_listener_is_an_error_naming_the_load_balancer(alb):
    traffic = TrafficClient(alb["env"], client=_elbv2())
    with pytest.raises(RuntimeError, match=f"{alb['env'].load_balancer.name!r} has no listener on port 9"):
        traffic.weights(9)
