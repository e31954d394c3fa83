"""latticedb_deploy.edges sets the same graph Airflow's own wiring does, for every DAG file in dags/.

Each file is parsed twice: as shipped, and with the factory's `chain` put back to airflow.sdk.chain and
the operators' XComArg edges put back to BaseOperator's. Every task's upstream and downstream ids, and the
serialized DAG (what the scheduler and UI read), must be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _parse(path: Path) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return {dag_id: (
        {t.task_id: (sorted(t.upstream_task_ids), sorted(t.downstream_task_ids)) for t in dag.tasks},
        DagSerialization.to_dict(dag),
    ) for dag_id, dag in bag.dags.items()}


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_every_dag_file_has_the_graph_airflows_own_wiring_gives(path, monkeypatch):
    from airflow.sdk import BaseOperator, chain

    from latticedb_deploy import factory
    from latticedb_deploy.operators.base import LatticeDBOperator

    ours = _parse(path)
    monkeypatch.setattr(factory, "chain", chain)
    monkeypatch.setattr(LatticeDBOperator, "_set_xcomargs_dependencies", BaseOperator._set_xcomargs_dependencies)
    airflows = _parse(path)
    assert ours.keys() == airflows.keys()
    for dag_id, (edges, serialized) in ours.items():
        assert edges == airflows[dag_id][0], dag_id
        assert serialized == airflows[dag_id][1], dag_id
    if path.name.startswith("latticedb_deploy_"):  # a deployment DAG: more edges than tasks (data edges too)
        assert all(sum(len(up) for up, _ in edges.values()) > len(edges) for edges, _ in ours.values())


def test_an_edge_across_two_dags_is_refused_as_airflow_refuses_it():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from latticedb_deploy.edges import chain

    with DAG("one", schedule=None):
        a = EmptyOperator(task_id="a")
    with DAG("two", schedule=None):
        b = EmptyOperator(task_id="b")
    with pytest.raises(RuntimeError, match="more than one Dag"):
        chain(a, b)
    assert not a.downstream_task_ids and not b.upstream_task_ids


def test_lists_chain_as_airflows_chain_does():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.sdk import chain as airflow_chain

    from latticedb_deploy.edges import chain

    def build(wire):
        with DAG("d", schedule=None) as dag:
            t = [EmptyOperator(task_id=f"t{i}") for i in range(7)]
            wire(t[0], [t[1], t[2]], [t[3], t[4]], t[5], t[6])
        return {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}

    assert build(chain) == build(airflow_chain)
    assert build(chain)["t0"] == ["t1", "t2"] and build(chain)["t1"] == ["t3"]  # two lists: pairwise
