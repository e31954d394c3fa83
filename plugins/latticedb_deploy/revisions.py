"""Which task definition revisions cleanup may deregister."""

from __future__ import annotations


def revision_number(arn: str) -> int:
    return int(arn.rsplit(":", 1)[1])


def revisions_to_deregister(active_arns: list[str], keep: int, protected: set[str]) -> list[str]:
    """Everything beyond the newest `keep` revisions, never a protected one (in use, rollback target)."""
    newest_first = sorted(active_arns, key=revision_number, reverse=True)
    return [arn for arn in newest_first[keep:] if arn not in protected]
