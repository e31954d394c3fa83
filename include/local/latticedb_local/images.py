"""Map an image reference from a task definition back to its ECR tag (and so to its behaviour).

Task definitions pin images by digest (`repo@sha256:...`); the scenario file is keyed by tag.
One resolver serves every environment of the stack: it reads every ECR repository (each tag has
the same manifest, so the same digest, in every environment's repository).
"""

from __future__ import annotations

import threading


class ImageResolver:
    def __init__(self, ecr_client):
        self._ecr = ecr_client
        self._by_digest: dict[str, str] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._by_digest.clear()

    def tag_of(self, image: str | None) -> str | None:
        """`repo@sha256:x` -> tag pushed with that digest; `repo:tag` -> tag; None if unknown."""
        if not image:
            return None
        if "@" in image:
            digest = image.split("@", 1)[1]
            with self._lock:
                if digest in self._by_digest:
                    return self._by_digest[digest]
            self._refresh()
            with self._lock:
                return self._by_digest.get(digest)
        last = image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"

    def _refresh(self) -> None:
        found: dict[str, str] = {}
        repositories = [r["repositoryName"] for r in self._ecr.describe_repositories()["repositories"]]
        for repository in repositories:
            try:
                pages = self._ecr.get_paginator("describe_images").paginate(repositoryName=repository)
                for page in pages:
                    for detail in page["imageDetails"]:
                        tags = detail.get("imageTags") or []
                        if tags:
                            found.setdefault(detail["imageDigest"], tags[0])
            except self._ecr.exceptions.RepositoryNotFoundException:  # an environment being reset
                continue
        with self._lock:
            self._by_digest.update(found)
