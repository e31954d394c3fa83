"""The order xdist hands tests out in: each worker's first chunk starts with its share of the long tests.

`make test` runs `--dist worksteal`: the collection is split into equal *counts*, one contiguous chunk
per worker, and an idle worker later steals the tail half of the busiest queue. In collection order
the long DAG runs (tests/faults, tests/integration) sit together at the end, so a few workers ended
the run alone with minutes of them while the others were done: the last quarter of a 23-minute run
used 1.2 of 2 cores. Here the long tests (expected duration from tests/durations.json, a run's
measured figures; a per-directory guess for a test not in it) are dealt to the chunks longest first,
each to the chunk with the least expected work, and the short tests fill the chunks in collection
order (so a module's tests stay together on one worker and its fixtures start once). Every test
still runs exactly once; only the order changes (the suite has no order dependence: each test resets
its environment).

`LATTICEDB_RECORD_DURATIONS=tests/durations.json make test` rewrites the file from that run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DURATIONS = Path(__file__).resolve().parent / "durations.json"
LONG_SECONDS = 8.0  # a test above this is dealt on its own; below it keeps its module's order
RECORD_MIN_SECONDS = 2.0  # the file keeps tests at least this long; the rest get their directory's guess
# A guess for a test the file does not know yet, by its top directory under tests/.
GUESS_SECONDS = {"faults": 60.0, "integration": 45.0, "local": 5.0, "security": 5.0, "dags": 2.0}
GUESS_DEFAULT = 0.5


def expected_seconds(nodeid: str, known: dict[str, float]) -> float:
    if nodeid in known:
        return known[nodeid]
    parts = nodeid.split("/")
    return GUESS_SECONDS.get(parts[1] if len(parts) > 2 and parts[0] == "tests" else "", GUESS_DEFAULT)


def chunk_sizes(total: int, workers: int) -> list[int]:
    """The counts worksteal's first distribution sends each worker (len(pending) // nodes_remaining)."""
    sizes, left = [], total
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def balanced_order(nodeids: list[str], known: dict[str, float], workers: int) -> list[int]:
    """Indexes into `nodeids` in the order to collect them for `workers` worksteal workers."""
    if workers <= 1 or len(nodeids) <= workers:
        return list(range(len(nodeids)))
    seconds = [expected_seconds(n, known) for n in nodeids]
    sizes = chunk_sizes(len(nodeids), workers)
    chunks: list[list[int]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    long = sorted((i for i, s in enumerate(seconds) if s >= LONG_SECONDS), key=lambda i: (-seconds[i], i))
    for i in long:
        open_chunks = [c for c in range(workers) if len(chunks[c]) < sizes[c]]
        c = min(open_chunks, key=lambda c: (load[c], c))
        chunks[c].append(i)
        load[c] += seconds[i]
    short = [i for i, s in enumerate(seconds) if s < LONG_SECONDS]
    # Fill the least-loaded chunk first, in collection order, so each module's short tests stay together.
    for c in sorted(range(workers), key=lambda c: (load[c], c)):
        take, short = short[: sizes[c] - len(chunks[c])], short[sizes[c] - len(chunks[c]):]
        chunks[c].extend(take)
    return [i for chunk in chunks for i in chunk]


def load_durations(path: Path = DURATIONS) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


def reorder(items: list, workers: int) -> None:
    """Reorder pytest's collected items in place (every xdist worker computes the same order)."""
    order = balanced_order([item.nodeid for item in items], load_durations(), workers)
    items[:] = [items[i] for i in order]


class DurationRecorder:
    """Collects each test's setup + call + teardown time (the controller sees every worker's reports)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.seconds: dict[str, float] = {}

        self.cpu: dict[str, float] = {}

    def add(self, report) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + float(report.duration)
        for key, value in getattr(report, "user_properties", ()):
            if key == "cpu_seconds":
                self.cpu[report.nodeid] = float(value)

    def write(self) -> None:
        kept = {k: round(v, 1) for k, v in sorted(self.seconds.items()) if v >= RECORD_MIN_SECONDS}
        self.path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
        if self.cpu:  # <file>.cpu.json: CPU per test in its worker process, biggest first, and the total
            cpu = dict(sorted(((k, round(v, 1)) for k, v in self.cpu.items()), key=lambda kv: -kv[1]))
            self.path.with_suffix(".cpu.json").write_text(
                json.dumps({"total_cpu_seconds": round(sum(self.cpu.values()), 1), "tests": cpu}, indent=1) + "\n")


def workers_from_environment() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
