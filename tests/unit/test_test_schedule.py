"""The order xdist hands tests out in (tests/schedule.py): every test once, long ones spread evenly."""

from __future__ import annotations

import pytest

from tests.schedule import balanced_order, chunk_sizes

UNIT = [f"tests/unit/test_a.py::test_{i}" for i in range(40)]
LONG = {f"tests/integration/test_b.py::test_{i}": float(300 - 10 * i) for i in range(12)}


@pytest.mark.parametrize("workers", [1, 2, 3, 6, 8])
def test_every_test_is_kept_once_whatever_the_workers(workers):
    nodeids = UNIT[:20] + list(LONG) + UNIT[20:]
    order = balanced_order(nodeids, LONG, workers)
    assert sorted(order) == list(range(len(nodeids)))


def test_chunks_are_the_counts_worksteal_sends():
    assert chunk_sizes(52, 6) == [8, 8, 9, 9, 9, 9]
    assert sum(chunk_sizes(571, 6)) == 571


def test_long_tests_are_dealt_across_the_chunks_longest_first():
    nodeids = UNIT[:20] + list(LONG) + UNIT[20:]
    workers = 4
    order = [nodeids[i] for i in balanced_order(nodeids, LONG, workers)]
    sizes, start, loads = chunk_sizes(len(order), workers), 0, []
    for size in sizes:
        chunk = order[start:start + size]
        start += size
        longs = [LONG[n] for n in chunk if n in LONG]
        assert longs == sorted(longs, reverse=True)  # each worker starts with its longest
        assert chunk[: len(longs)] == [n for n in chunk if n in LONG]  # long ones before short ones
        loads.append(sum(longs))
    assert max(loads) - min(loads) <= max(LONG.values())  # greedy: within one test of each other
    assert sorted(len([n for n in order[s:s + z] if n in LONG]) for s, z in
                  zip([sum(sizes[:k]) for k in range(workers)], sizes, strict=True)) == [3, 3, 3, 3]


def test_short_tests_keep_their_module_order():
    nodeids = list(LONG) + UNIT
    order = [nodeids[i] for i in balanced_order(nodeids, LONG, 3)]
    shorts = [n for n in order if n not in LONG]
    assert shorts == UNIT


def test_a_single_process_keeps_the_collection_order():
    nodeids = UNIT[:5] + list(LONG)[:3]
    assert balanced_order(nodeids, LONG, 1) == list(range(8))
