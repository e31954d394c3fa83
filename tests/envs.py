"""Which local environment this pytest process deploys to, and its names.

Tests run in parallel (pytest-xdist), every worker in its own environment of one shared local stack
(tests/stack.py): worker gwN uses `local-<N+2>` (local-2, local-3, ...; copies of `local` declared
under `local_copies` in include/config/latticedb.yaml), a run without xdist uses local-2. `local`
itself stays the user's (make demo) and tests/local's own stack. LATTICEDB_TEST_ENVIRONMENT overrides.

Names come from the config, never spelled out in tests: ENV.service, ENV.green_tg, ENV.image(tag), ...
Subprocesses a test starts inherit PYTEST_XDIST_WORKER (or LATTICEDB_TEST_ENVIRONMENT), so they agree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property

ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
MAX_WORKERS = 8  # local-2 ... local-9


def worker_environment() -> str:
    explicit = os.environ.get("LATTICEDB_TEST_ENVIRONMENT")
    if explicit:
        return explicit
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    m = re.fullmatch(r"gw(\d+)", worker)
    n = int(m.group(1)) if m else 0
    if n >= MAX_WORKERS:
        raise RuntimeError(f"at most {MAX_WORKERS} test workers (local-2 ... local-{MAX_WORKERS + 1} in the config)")
    return f"local-{n + 2}"


def environment_names(workers: int) -> list[str]:
    """The environments a session of `workers` xdist workers (0: no xdist) uses."""
    return [f"local-{n + 2}" for n in range(max(1, workers))]


@dataclass(frozen=True)
class EnvNames:
    name: str

    @cached_property
    def config(self):
        from latticedb_deploy.config import load_config

        return load_config().environment(self.name)

    @property
    def cluster(self) -> str:
        return self.config.cluster

    @property
    def service(self) -> str:
        return self.config.service

    @property
    def green_service(self) -> str:
        return self.config.green_service

    @property
    def family(self) -> str:
        return self.config.task_family

    @property
    def alb(self) -> str:
        return self.config.load_balancer.name

    @property
    def blue_tg(self) -> str:
        return self.config.load_balancer.blue_target_group

    @property
    def green_tg(self) -> str:
        return self.config.load_balancer.green_target_group

    @property
    def repository(self) -> str:
        return self.config.ecr_repository

    @property
    def alarm_prefix(self) -> str:
        return self.config.alarm_prefix

    @property
    def aws_conn_id(self) -> str:
        return self.config.aws_conn_id

    @property
    def slack_conn_id(self) -> str:
        return self.config.notifications.slack_conn_id

    @property
    def redis_conn_id(self) -> str:
        return self.config.redis_conn_id

    def conn_var(self, conn_id: str) -> str:
        return f"AIRFLOW_CONN_{conn_id.upper()}"

    def image(self, tag: str) -> str:
        return f"{ECR_HOST}/{self.repository}:{tag}"


ENV = EnvNames(worker_environment())
