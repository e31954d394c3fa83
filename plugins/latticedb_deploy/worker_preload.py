"""What a Celery worker loads once, before its pool starts, so that no task pays for it again.

Airflow 3's Celery worker runs each task in a process forked from its pool child (the task
supervisor's bare `os.fork()`), and the pool children are forked from the worker. A module the worker
imported before it started its pool is therefore already in every task's memory. Without this, each
of a canary's ~35 tasks imported Airflow's DagBag, this package, boto3 and the Amazon provider's hook,
and re-read botocore's JSON models, on the run's critical path: a short task took 0.7-0.8 s, with this
0.45-0.55 s (`benchmarks/canary_wall.py` writes the per-task timeline).

Enable it with Airflow's `[celery] extra_celery_config` (merged into its Celery settings):
`AIRFLOW__CELERY__EXTRA_CELERY_CONFIG='{"imports": ["latticedb_deploy.worker_warmup"]}'` (CELERY_CONFIG
below): Celery imports the modules named in `imports` when the worker starts, before its pool. Importing
this module does nothing; the loading happens in `warm()`, which `latticedb_deploy.worker_warmup` runs.

Only code and read-only data are loaded: no client, connection, socket or thread is created in the
worker, so nothing unsafe is shared across the fork.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time

log = logging.getLogger(__name__)

# The value of AIRFLOW__CELERY__EXTRA_CELERY_CONFIG that turns preloading on.
CELERY_CONFIG = '{"imports": ["latticedb_deploy.worker_warmup"]}'

# The AWS services this package's clients call (`boto_client(env, "<service>")`).
AWS_SERVICES = ("ecs", "elbv2", "dynamodb", "cloudwatch", "ecr", "sts", "service-quotas")

# Airflow modules a task process imports after the fork, before it runs the operator.
AIRFLOW_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.providers.amazon.aws.hooks.base_aws",
    "airflow.providers.standard.operators.trigger_dagrun",
)


def package_modules() -> list[str]:
    """Every module of latticedb_deploy (found on disk, not imported)."""
    import latticedb_deploy

    names = (m.name for m in pkgutil.walk_packages(latticedb_deploy.__path__, "latticedb_deploy."))
    return sorted(n for n in names if n != "latticedb_deploy.worker_warmup")


def warm() -> dict[str, float]:
    """Import what tasks import and load botocore's models into the shared loader; returns seconds per part.

    A module that fails to import is logged and skipped: the task that needs it will raise the real
    error, in its own log, where a user looks.
    """
    took: dict[str, float] = {}
    t = time.perf_counter()
    for name in (*AIRFLOW_MODULES, *package_modules()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - preloading is an optimisation, never a failure
            log.warning("latticedb worker preload: could not import %s: %s", name, exc)
    took["imports"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        _load_aws_models()
    except Exception as exc:  # noqa: BLE001
        log.warning("latticedb worker preload: botocore models not preloaded: %s", exc)
    took["aws_models"] = time.perf_counter() - t
    log.info("latticedb worker preload: %s", ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))
    return took


def _load_aws_models() -> None:
    """Fill the process's one botocore data loader (latticedb_deploy.aws) with the services' models."""
    import botocore.session

    from latticedb_deploy import aws

    aws._hook_class()  # build the hook class once
    session = botocore.session.get_session()
    aws._share_loader(session)  # the first session's loader becomes the shared one
    loader = aws._shared_loader
    loader.load_data("endpoints")
    loader.load_data("partitions")
    for service in AWS_SERVICES:
        loader.load_service_model(service, "service-2")
        loader.load_service_model(service, "endpoint-rule-set-1")
