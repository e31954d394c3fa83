"""An environment's names, from the deployment config (include/config/latticedb.yaml), never spelled out.

`EnvNames("local").service`, `.green_tg`, `.image(tag)`, ...: what tests (tests/envs.py: this
worker's environment) and benchmarks (`local`) look at in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


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
