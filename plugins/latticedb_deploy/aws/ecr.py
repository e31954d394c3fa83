"""ECR lookups: tag -> immutable digest, and the image's scan findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment
from latticedb_deploy.images import ImageRef


class ImageNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ImageInfo:
    digest: str
    tags: tuple[str, ...]
    scan_status: str | None
    findings: dict[str, int] = field(default_factory=dict)


class EcrClient:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "ecr")

    def describe(self, image: ImageRef) -> ImageInfo:
        image_id = {"imageDigest": image.digest} if image.digest else {"imageTag": image.tag}
        try:
            resp = self.client.describe_images(repositoryName=image.repository, imageIds=[image_id])
        except self.client.exceptions.ImageNotFoundException:
            raise ImageNotFound(f"{image} is not in ECR repository {image.repository!r}") from None
        except self.client.exceptions.RepositoryNotFoundException:
            raise ImageNotFound(f"ECR repository {image.repository!r} does not exist") from None
        details = resp["imageDetails"][0]
        if image.tag and image.digest and image.tag not in details.get("imageTags", []):
            raise ImageNotFound(f"digest {image.digest} is not tagged {image.tag!r} in ECR")
        return ImageInfo(
            digest=details["imageDigest"],
            tags=tuple(details.get("imageTags", [])),
            scan_status=(details.get("imageScanStatus") or {}).get("status"),
            findings=dict((details.get("imageScanFindingsSummary") or {}).get("findingSeverityCounts") or {}),
        )

    def scan_findings(self, image: ImageRef) -> tuple[str, dict[str, int]]:
        """(scan status, severity -> count); status is NOT_SCANNED when no scan exists."""
        image_id = {"imageTag": image.tag} if image.tag else {"imageDigest": image.digest}
        try:
            resp = self.client.describe_image_scan_findings(repositoryName=image.repository, imageId=image_id)
        except self.client.exceptions.ScanNotFoundException:
            return "NOT_SCANNED", {}
        status = (resp.get("imageScanStatus") or {}).get("status", "UNKNOWN")
        counts = (resp.get("imageScanFindings") or {}).get("findingSeverityCounts")
        if counts is None:
            counts = {}
            for f in (resp.get("imageScanFindings") or {}).get("findings", []):
                counts[f["severity"]] = counts.get(f["severity"], 0) + 1
        return status, dict(counts)

    def tag_for_digest(self, repository: str, digest: str) -> str | None:
        try:
            resp = self.client.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
        except Exception:  # noqa: BLE001 - a label is cosmetic; never fail a deployment for it
            return None
        tags = resp["imageDetails"][0].get("imageTags") or []
        return tags[0] if tags else None
