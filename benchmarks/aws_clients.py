"""CPU per boto3 client: the provider's plain AwsBaseHook vs `latticedb_deploy.aws.boto_client`.

Every task and every trigger poll builds a few clients (lease, ECS, ELBv2, CloudWatch). A plain
AwsBaseHook makes a fresh boto3 session per client, which re-reads botocore's JSON models, and walks
the stack with inspect.stack() for its user agent; `boto_client` shares one model loader and walks
frames instead; and it reuses a client it built for the same connection and caller (a trigger's polls,
a task's several calls), which costs only the connection lookup that proves the connection unchanged.
Process CPU time (not wall time) over ROUNDS x 4 services, after one warm-up each. No AWS call is
made (clients are only built). Measured, never asserted.
"""

from __future__ import annotations

import os
import time

from benchmarks.common import median, merge_results, table

ROUNDS = int(os.environ.get("BENCH_CLIENT_ROUNDS", "10"))
SERVICES = ("ecs", "elbv2", "dynamodb", "cloudwatch")


def main() -> None:
    import dataclasses
    import logging

    from harness import airflow_connections, conn_var
    from latticedb_deploy.config import load_config

    # The local AWS connection under its own id, pointing at a closed port: clients are only built.
    env = dataclasses.replace(load_config().environment("local"), aws_conn_id="bench_aws")
    nowhere = "http://127.0.0.1:9"
    os.environ.setdefault(conn_var(env.aws_conn_id), airflow_connections(env, nowhere, nowhere)[conn_var(env.aws_conn_id)])

    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from latticedb_deploy import aws
    from latticedb_deploy.aws import boto_client

    logging.disable(logging.INFO)

    def plain(service: str):
        return AwsBaseHook(aws_conn_id=env.aws_conn_id, client_type=service, region_name=env.region).conn

    def built(service: str):
        with aws._CLIENTS_LOCK:
            aws._clients.clear()  # a new client every time: no reuse
        return boto_client(env, service)

    def reused(service: str):
        return boto_client(env, service)

    rows, results = [], {}
    for key, name, build in (("aws_base_hook", "AwsBaseHook(...).conn", plain),
                             ("boto_client", "boto_client, a new client (shared model loader)", built),
                             ("boto_client_reused", "boto_client, reused (the connection looked up, digest unchanged)", reused)):
        for s in SERVICES:
            build(s)  # warm-up: imports, first model load
        per_round = []
        for _ in range(ROUNDS):
            t = time.process_time()
            for s in SERVICES:
                build(s)
            per_round.append((time.process_time() - t) / len(SERVICES) * 1000)
        rows.append([name, f"{median(per_round):.1f}", f"{min(per_round):.1f}", f"{max(per_round):.1f}"])
        results[f"aws_clients.{key}.median_cpu_ms"] = round(median(per_round), 2)
    table(f"CPU ms per boto3 client ({ROUNDS} rounds x {len(SERVICES)} services)",
          ["how", "median ms", "min ms", "max ms"], rows)
    merge_results(results)


if __name__ == "__main__":
    main()
