"""EcsClient.describe_services: both slots read in one call, in the order asked; a missing one named.

moto in decorator mode (a narrow unit test): `local`'s cluster with its blue service only, then green too.
"""

import boto3
import pytest
from moto import mock_aws

from harness.aws_calls import AwsCallCounter
from latticedb_deploy.aws.ecs import EcsClient, ServiceNotFound
from latticedb_deploy.config import load_config


def test_both_slots_in_one_call_in_the_order_asked_and_a_missing_one_named():
    env = load_config().environment("local")
    blue, green = env.services
    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        ecs.create_cluster(clusterName=env.cluster)
        td = ecs.register_task_definition(family=env.task_family, containerDefinitions=[
            {"name": env.container_name, "image": "latticedb:v1.0.0", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster=env.cluster, serviceName=blue, taskDefinition=td, desiredCount=2)
        client = EcsClient(env, client=ecs)
        with pytest.raises(ServiceNotFound, match=f"'{green}' not found in cluster '{env.cluster}'"):
            client.describe_services(blue, green)
        ecs.create_service(cluster=env.cluster, serviceName=green, taskDefinition=td, desiredCount=0)
        with AwsCallCounter() as calls:
            first, second = client.describe_services(green, blue)
        assert calls.total == 1
        assert (first["serviceName"], first["desiredCount"]) == (green, 0)
        assert (second["serviceName"], second["desiredCount"]) == (blue, 2)
