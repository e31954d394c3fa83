"""What the tests and the benchmarks both use to drive Airflow and the local stack (never the product).

- `airflow_connections`: the Airflow connections for one environment of the local stack
  (include/local/latticedb_local/connections.py, re-exported here);
- `harness.names`: an environment's names (cluster, services, target groups, images) from the config;
- `harness.scheduler`: the mini-scheduler that drives an existing DAG run in-process, as
  `dag.test()` drives its own;
- `harness.airflow_stack`, `harness.api`: a running distributed Airflow (Postgres, Redis,
  api-server, scheduler, dag-processor, triggerer, Celery worker) and a REST client for it;
- `harness.aws_calls`: the AWS calls a process makes, counted by service and operation.

Benchmarks import from here, never from tests/. Importing this package puts plugins/ and
include/local on sys.path (after what is already there).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "plugins", ROOT / "include" / "local"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from latticedb_local.connections import airflow_connections, conn_var  # noqa: E402

__all__ = ["ROOT", "airflow_connections", "conn_var"]
