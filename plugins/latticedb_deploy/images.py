"""Image references: parse and validate `registry/repository:tag` or `...@sha256:digest`.

A deployment must name exactly which image it ships, so only fully qualified
references (a registry host, a repository, and a tag or digest) are accepted.
"""

from __future__ import annotations

import re

from latticedb_deploy.models import frozen_model

# Also used as the JSON-schema `pattern` of the `image_uri` param, so a malformed
# reference is refused by the trigger form / REST API before a run exists.
IMAGE_URI_PATTERN = (
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+|localhost)(?::[0-9]{1,5})?"
    r"/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$"
)
_IMAGE_URI = re.compile(IMAGE_URI_PATTERN)
_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class InvalidImageError(ValueError):
    """The image reference is not fully qualified or not well formed."""


@frozen_model
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def account_id(self) -> str | None:
        m = _ECR_HOST.match(self.registry.split(":")[0])
        return m.group("account") if m else None

    @property
    def label(self) -> str:
        """What a person calls this image: the tag if there is one, else the short digest."""
        return self.tag or (self.digest or "")[:19]

    def pinned(self, digest: str) -> str:
        """The immutable reference a task definition should run: `registry/repo@sha256:...`."""
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image_uri(uri: str) -> ImageRef:
    """Parse a fully qualified image reference, or raise InvalidImageError saying what is wrong."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidImageError("image_uri is required, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0")
    uri = uri.strip()
    if not _IMAGE_URI.match(uri):
        hint = ""
        if "/" not in uri:
            hint = " (it needs a registry host, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0)"
        elif ":" not in uri.split("/", 1)[1] and "@" not in uri:
            hint = " (it needs a tag or a digest, e.g. :v2.0.0)"
        raise InvalidImageError(f"image_uri {uri!r} is not a fully qualified image reference{hint}")
    registry, rest = uri.split("/", 1)
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    tag = None
    if ":" in rest:
        rest, tag = rest.rsplit(":", 1)
    return ImageRef(registry=registry, repository=rest, tag=tag, digest=digest)
