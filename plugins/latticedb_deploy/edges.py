"""Task edges between operators of one DAG, set without Airflow's per-edge DAG hashing.

Airflow's `set_upstream` / `chain` check that both ends of an edge belong to one DAG by putting their
DAGs in a set, and a DAG's hash covers every task id in it: each edge of the canary DAG (73 tasks, 228
edges) walks the task list twice, a sixth of every parse (the dag-processor's, and each task's on a
worker). Where both ends are operators of the same DAG object, an edge here is exactly the two id sets
Airflow would have updated; anything else (a task group, a task with no DAG yet, another DAG, a list
against a list) goes through Airflow unchanged. tests/unit/test_edges.py checks every DAG file's graph
against Airflow's own wiring.
"""

from __future__ import annotations

from typing import Any


def _one_dag(upstream: Any, downstream: Any) -> bool:
    from airflow.sdk.bases.operator import BaseOperator

    dag = getattr(upstream, "_dag", None)
    return (isinstance(upstream, BaseOperator) and isinstance(downstream, BaseOperator) and dag is not None
            and getattr(downstream, "_dag", None) is dag and upstream is not downstream)


def link(upstream: Any, downstream: Any) -> None:
    """upstream >> downstream."""
    if _one_dag(upstream, downstream):
        upstream.downstream_task_ids.add(downstream.node_id)
        downstream.upstream_task_ids.add(upstream.node_id)
    else:
        upstream.set_downstream(downstream)


def chain(*elements: Any) -> None:
    """airflow.sdk.chain for operators and lists of operators: each element upstream of the next (a list: each
    of its tasks); two lists in a row are Airflow's pairwise chain, left to it."""
    from airflow.sdk import chain as airflow_chain

    for up, down in zip(elements[:-1], elements[1:], strict=True):
        ups, downs = isinstance(up, (list, tuple)), isinstance(down, (list, tuple))
        if ups and downs:
            airflow_chain(up, down)
            continue
        for u in up if ups else (up,):
            for d in down if downs else (down,):
                link(u, d)
