"""Which task definition revisions cleanup may deregister."""

from __future__ import annotations


def revision_number(arn: str) -> int:
    return int(arn.rsplit(":", 1)[1])


def revisions_to_deregister(active_arns: list[str], keep: int, protected: set[str]) -> list[str]:
    """Everything beyond the newest `keep` revisions, never a protected one (in use, rollback target)."""
    newest_first = sorted(active_arns, key=revision_number, reverse=True)
    return [arn for arn in newest_first[keep:] if arn not in protected]


def image_digest(image: str | None) -> str | None:
    """`repo@sha256:...` -> `sha256:...` (a task definition pinned by digest); None otherwise."""
    if not image or "@" not in image:
        return None
    return image.rsplit("@", 1)[1]


def image_verdicts(records_newest_first: list) -> dict[str, bool]:
    """What the deployment history says of each image digest: True = it served production in a
    deployment that succeeded and was not reverted, False = a deployment of it failed after changing
    production (rolled back, aborted, rollback failed) or was reverted by an emergency rollback. The
    newest such record decides; runs that changed nothing (rejected, failed before change) and the
    emergency rollbacks themselves say nothing."""
    from latticedb_deploy.dora import reverted_by_emergency
    from latticedb_deploy.history import FAILED_CHANGES, SUCCEEDED

    reverted = reverted_by_emergency(list(records_newest_first))
    verdicts: dict[str, bool] = {}
    for r in records_newest_first:
        if r.is_emergency_rollback or not r.digest or r.digest in verdicts:
            continue
        if r.outcome == SUCCEEDED:
            verdicts[r.digest] = r.owner not in reverted
        elif r.outcome in FAILED_CHANGES:
            verdicts[r.digest] = False
    return verdicts


def rollback_target(
    older_newest_first: list[str], digest_of, live_digest: str | None, verdicts: dict[str, bool]
) -> tuple[str | None, list[str]]:
    """The revision an emergency rollback goes to when none is named, and why the newer ones were passed over.

    Of the ACTIVE revisions older than the one in service (newest first): never one running the image
    in service (rolling back to the same image fixes nothing) or one the history knows failed; the
    newest one the history knows served production well, else the newest it says nothing bad of.
    `digest_of(arn)` reads a revision's image digest (None if not pinned by digest)."""
    skipped: list[str] = []
    unknown: str | None = None
    for arn in older_newest_first:
        digest = digest_of(arn)
        if digest is not None and digest == live_digest:
            skipped.append(f"{arn.split('/')[-1]}: the image in service")
            continue
        verdict = verdicts.get(digest) if digest else None
        if verdict is True:
            return arn, skipped
        if verdict is False:
            skipped.append(f"{arn.split('/')[-1]}: a deployment of its image failed or was reverted")
            continue
        if unknown is None:
            unknown = arn
    return unknown, skipped
