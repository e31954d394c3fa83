"""Run one deployment through Airflow (`dag.test()`) against the local environment and summarise it.

    make demo                      # rolling deployment of latticedb:v2.0.0 to `local`
    make demo IMAGE=...:v2.3.0-crash   # watch it fail and roll back

Exits non-zero when the deployment did not succeed.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("notify_start", "preflight", "prepare", "deploy", "verify", "cleanup", "notify_success", "rollback")
MARK = {"success": "✓", "failed": "✗", "upstream_failed": "✗", "skipped": "–"}


def _xcom(session, dr, task_id: str):
    from airflow.models.xcom import XComModel

    row = session.scalars(
        XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id, task_ids=task_id, key="return_value")
    ).first()
    return XComModel.deserialize_value(row) if row is not None else None


def _serving(environment: str) -> str:
    """What production traffic reaches after the run, read back from AWS."""
    from latticedb_deploy.aws.ecr import EcrClient
    from latticedb_deploy.aws.ecs import EcsClient
    from latticedb_deploy.aws.elbv2 import TrafficClient
    from latticedb_deploy.config import load_config

    env = load_config().environment(environment)
    live, _, weights = TrafficClient(env).live_and_idle()
    ecs = EcsClient(env)
    arn = ecs.describe_service(live.service)["taskDefinition"]
    image = ecs.container_image(ecs.describe_task_definition(arn))
    tag = EcrClient(env).tag_for_digest(env.ecr_repository, image.split("@")[-1]) if "@" in image else None
    return f"{arn.split('/')[-1]} ({tag or image}) on {live.service}, {weights.get(live.target_group_arn)}% of traffic"


def _phase_result(states: list[str]) -> str:
    if not states:
        return "not run"
    if any(s in ("failed", "upstream_failed") for s in states):
        return "failed" if "failed" in states else "not reached"
    if all(s == "skipped" for s in states):
        return "skipped"
    if all(s in ("success", "skipped") for s in states):
        return "success"
    return ", ".join(sorted(set(states)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--environment", default="local")
    parser.add_argument("--dag", default="latticedb_deploy_rolling")
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    args = parser.parse_args()

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    if not args.verbose:
        warnings.filterwarnings("ignore")
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        logging.disable(logging.INFO)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import Session

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        print("DAG import errors:", bag.import_errors, file=sys.stderr)
        return 2
    dag = bag.dags[args.dag]
    conf = {"image_uri": args.image, "environment": args.environment}
    print(f"Deploying {args.image} to {args.environment} with {args.dag} ...", flush=True)
    started = time.monotonic()
    try:
        dr = dag.test(run_conf=conf)
    except Exception as exc:  # noqa: BLE001 - bad input is refused before a run exists
        print(f"\nRefused before anything changed: {exc}")
        return 1
    duration = time.monotonic() - started

    session = Session()
    tis = dr.get_task_instances(session=session)
    baseline = _xcom(session, dr, "prepare.record_baseline") or {}
    new = _xcom(session, dr, "prepare.register_task_definition") or {}
    print()
    print(f"Deployment {dr.run_id}: {str(dr.state).upper()} in {duration:.1f}s")
    print(f"  image            {args.image}")
    print(f"  digest           {new.get('digest', '-')}")
    print(f"  old revision     {baseline.get('task_definition', '-').split('/')[-1]}")
    print(f"  new revision     {new.get('task_definition', '-').split('/')[-1]}")
    print("  phases:")
    for phase in PHASES:
        states = [str(ti.state) for ti in tis if ti.task_id == phase or ti.task_id.startswith(phase + ".")]
        result = _phase_result(states)
        print(f"    {MARK.get(result, '•')} {phase:<15} {result}")
    print(f"  now serving      {_serving(args.environment)}")
    failed = [ti.task_id for ti in tis if str(ti.state) == "failed"]
    if failed:
        print(f"  failed tasks:    {', '.join(failed)}")
    return 0 if str(dr.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
