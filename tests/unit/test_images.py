import re

import pytest

from latticedb_deploy.images import IMAGE_URI_PATTERN, InvalidImageError, parse_image_uri

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("uri", "tag", "digest"),
    [
        (f"{ECR}/latticedb:v2.0.0", "v2.0.0", None),
        (f"{ECR}/latticedb@{DIGEST}", None, DIGEST),
        (f"{ECR}/latticedb:v2.0.0@{DIGEST}", "v2.0.0", DIGEST),
        ("registry.example.com:5000/team/latticedb:2.1-rc1", "2.1-rc1", None),
    ],
)
def test_valid_references(uri, tag, digest):
    ref = parse_image_uri(uri)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert str(ref) == uri
    assert re.match(IMAGE_URI_PATTERN, uri)


@pytest.mark.parametrize(
    ("uri", "hint"),
    [
        ("latticedb:v2.0.0", "needs a registry host"),
        (f"{ECR}/latticedb", "needs a tag or a digest"),
        (f"{ECR}/LatticeDB:v2", "not a fully qualified"),
        (f"{ECR}/latticedb:v2.0.0; rm -rf /", "not a fully qualified"),
        ("", "required"),
    ],
)
def test_invalid_references_say_why(uri, hint):
    with pytest.raises(InvalidImageError, match=hint):
        parse_image_uri(uri)
    assert not re.match(IMAGE_URI_PATTERN, uri)


def test_pinned_reference_and_account():
    ref = parse_image_uri(f"{ECR}/latticedb:v2.0.0")
    assert ref.pinned(DIGEST) == f"{ECR}/latticedb@{DIGEST}"
    assert ref.account_id == "123456789012"
