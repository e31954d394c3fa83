"""ECR lookups: tag -> immutable digest, the image's scan findings, and cleanup of old images."""

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
    pushed_at: str | None = None


def _iso(value: Any) -> str | None:
    """ECR's imagePushedAt (a datetime from boto3) as ISO-8601 UTC; it goes to XCom as text."""
    from latticedb_deploy.history import iso

    try:
        return iso(value)
    except (TypeError, ValueError):
        return None


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
            pushed_at=_iso(details.get("imagePushedAt")),
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

    def list_images(self, repository: str | None = None) -> list[ImageInfo]:
        """Every image in the repository, newest push first.

        Pushes within the same second (ECR reports whole seconds in some APIs) keep the
        repository's listing order, later listed counted as newer.
        """
        repository = repository or self.env.ecr_repository
        found: list[tuple[float, int, ImageInfo]] = []
        kwargs: dict[str, Any] = {"repositoryName": repository}
        while True:
            resp = self.client.describe_images(**kwargs)
            for details in resp.get("imageDetails", []):
                pushed = details.get("imagePushedAt")
                found.append((
                    pushed.timestamp() if hasattr(pushed, "timestamp") else float(pushed or 0),
                    len(found),
                    ImageInfo(
                        digest=details["imageDigest"],
                        tags=tuple(details.get("imageTags") or ()),
                        scan_status=(details.get("imageScanStatus") or {}).get("status"),
                        findings=dict((details.get("imageScanFindingsSummary") or {}).get("findingSeverityCounts") or {}),
                        pushed_at=pushed.isoformat() if hasattr(pushed, "isoformat") else None,
                    ),
                ))
            if not resp.get("nextToken"):
                break
            kwargs["nextToken"] = resp["nextToken"]
        return [info for _, _, info in sorted(found, key=lambda f: (f[0], f[1]), reverse=True)]

    def delete_images(self, digests: list[str], repository: str | None = None) -> list[str]:
        """Delete images by digest (all their tags), 100 per call; returns the digests deleted."""
        repository = repository or self.env.ecr_repository
        deleted: list[str] = []
        for i in range(0, len(digests), 100):
            batch = [{"imageDigest": d} for d in digests[i : i + 100]]
            resp = self.client.batch_delete_image(repositoryName=repository, imageIds=batch)
            deleted.extend(image["imageDigest"] for image in resp.get("imageIds", []) if image.get("imageDigest"))
            for failure in resp.get("failures", []):
                if failure.get("failureCode") != "ImageNotFound":  # already gone: a retry converges
                    raise RuntimeError(f"ECR could not delete {failure.get('imageId')}: {failure.get('failureReason')}")
        return deleted


def image_digests_referenced(images: list[str], by_tag: dict[str, str]) -> set[str]:
    """Digests that container image references (`repo@sha256:..` or `repo:tag`) point at."""
    digests: set[str] = set()
    for ref in images:
        if "@" in ref:
            digests.add(ref.split("@", 1)[1])
            continue
        last = ref.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else "latest"
        if tag in by_tag:
            digests.add(by_tag[tag])
    return digests


def images_to_delete(newest_first: list[ImageInfo], keep: int, protected: set[str]) -> list[str]:
    """Digests beyond the newest `keep` images, never a protected one (in use, rollback target)."""
    return [info.digest for info in newest_first[keep:] if info.digest not in protected]
