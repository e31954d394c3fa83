"""Read scenarios.yaml: which image tag behaves how (errors, latency, crash, scan findings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Behaviour:
    """How one image build behaves once ECS runs it."""

    tag: str
    description: str = ""
    error_rate: float = 0.002
    latency_min_ms: float = 80.0
    latency_mean_ms: float = 110.0
    latency_p95_ms: float = 150.0
    crash: bool = False
    scan_findings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenarios:
    initial: str
    images: dict[str, Behaviour]
    default: Behaviour

    def behaviour(self, tag: str | None) -> Behaviour:
        """The behaviour of `tag`; unknown (or unresolvable) images behave like the defaults."""
        if tag in self.images:
            return self.images[tag]
        return Behaviour(**{**self.default.__dict__, "tag": tag or "unknown"})


def _behaviour(tag: str, body: dict, base: dict) -> Behaviour:
    merged = {**base, **(body or {})}
    latency = {**(base.get("latency_ms") or {}), **((body or {}).get("latency_ms") or {})}
    unknown = set(merged) - {"description", "error_rate", "latency_ms", "crash", "scan_findings"}
    if unknown:
        raise ValueError(f"scenarios: image {tag!r}: unknown keys {sorted(unknown)}")
    return Behaviour(
        tag=tag,
        description=str(merged.get("description", "")),
        error_rate=float(merged.get("error_rate", 0.002)),
        latency_min_ms=float(latency.get("min", 80)),
        latency_mean_ms=float(latency.get("mean", 110)),
        latency_p95_ms=float(latency.get("p95", 150)),
        crash=bool(merged.get("crash", False)),
        scan_findings={str(k): int(v) for k, v in (merged.get("scan_findings") or {}).items()},
    )


def load_scenarios(path: Path) -> Scenarios:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    base = raw.get("defaults") or {}
    base.pop("description", None)
    images = {str(tag): _behaviour(str(tag), body or {}, base) for tag, body in (raw.get("images") or {}).items()}
    initial = str(raw.get("initial") or next(iter(images)))
    if initial not in images:
        raise ValueError(f"scenarios: initial tag {initial!r} is not listed under images")
    return Scenarios(initial=initial, images=images, default=_behaviour("default", {}, base))
