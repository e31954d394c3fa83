"""Pre-flight's image check reads the digest and the scan from the environment's own ECR registry (its
account and region): an image in any other registry is refused there, before any AWS call or change.
Otherwise a same-named image in the environment's registry would be pinned and scanned in its place."""

from __future__ import annotations

import pytest

from harness.aws_calls import AwsCallCounter
from latticedb_deploy.checks import check_image
from latticedb_deploy.config import load_config
from latticedb_deploy.preflight import FAIL


@pytest.fixture
def env():
    return load_config().environment("local")


@pytest.mark.parametrize("host", [
    "123456789012.dkr.ecr.us-west-2.amazonaws.com",  # the same account, another region
    "210987654321.dkr.ecr.us-east-1.amazonaws.com",  # another account, the same region
    "ghcr.io",  # not ECR at all
])
def test_an_image_outside_the_environments_registry_fails_before_any_aws_call(env, host):
    uri = f"{host}/{env.ecr_repository}:v2.0.0"
    with AwsCallCounter() as calls:
        result = check_image(_without_allow_list(env), uri, {})
    assert result.status == FAIL, result
    assert f"not {env.name}'s own registry {env.account_id}.dkr.ecr.{env.region}.amazonaws.com" in result.reason, result
    assert calls.total == 0


def test_the_allow_list_is_checked_first_and_named(env):
    uri = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{env.ecr_repository}:v2.0.0"
    result = check_image(env, uri, {})
    assert result.status == FAIL and "is not allowed in" in result.reason, result


def _without_allow_list(env):
    import dataclasses

    return dataclasses.replace(env, allowed_registries=())
