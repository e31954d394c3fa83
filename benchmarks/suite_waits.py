"""Where the test suite's time goes: every dag.test() run's tasks, summed by kind.

Reads the JSON lines a suite run writes with `LATTICEDB_TEST_TIMINGS=<file.jsonl> make test`
(harness/dag_runs.py, one line per task instance and one per run) and prints, over all runs:
the runs' wall time, of which the told waits (benchmarks.common.TOLD_WAITS), the other tasks, and
what is neither (Airflow between tasks); then the task ids with the most summed time. Not part of
`make bench` (it needs a whole suite run): `python -m benchmarks.suite_waits <file.jsonl>`.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from benchmarks.common import is_told_wait, table


def summarise(lines) -> dict:
    runs, by_task, by_test = [], defaultdict(float), defaultdict(float)
    waits = other = 0.0
    for line in lines:
        row = json.loads(line)
        if row["task_id"] is None:
            runs.append(row)
            by_test[row["test"]] += row["seconds"]
            continue
        by_task[row["task_id"]] += row["seconds"]
        if is_told_wait(row["task_id"]):
            waits += row["seconds"]
        else:
            other += row["seconds"]
    wall = sum(r["seconds"] for r in runs)
    return {"runs": len(runs), "wall": wall, "waits": waits, "other_tasks": other,
            "between_tasks": wall - waits - other, "cpu": sum(r.get("cpu_seconds", 0.0) for r in runs),
            "by_task": dict(by_task), "by_test": dict(by_test)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    with open(argv[0]) as f:
        s = summarise(f)
    table("dag.test() runs of one suite run", ["runs", "wall s", "told waits s", "other tasks s", "between tasks s",
                                                "CPU s (test process)"],
          [[s["runs"], f"{s['wall']:.0f}", f"{s['waits']:.0f}", f"{s['other_tasks']:.0f}", f"{s['between_tasks']:.0f}",
            f"{s['cpu']:.0f}"]])
    top = sorted(s["by_task"].items(), key=lambda kv: -kv[1])[:25]
    table("task ids by summed duration", ["task id", "seconds", "told wait"],
          [[t, f"{v:.0f}", "yes" if is_told_wait(t) else ""] for t, v in top])
    tests = sorted(s["by_test"].items(), key=lambda kv: -kv[1])[:15]
    table("tests by summed run wall", ["test", "seconds"], [[t, f"{v:.0f}"] for t, v in tests])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
