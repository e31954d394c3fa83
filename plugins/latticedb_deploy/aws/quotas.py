"""The account's Fargate capacity as Service Quotas reports it (used when the config sets no limit)."""

from __future__ import annotations

from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment

# "Fargate On-Demand vCPU resource count": AWS counts Fargate capacity in vCPUs per region.
FARGATE_SERVICE_CODE = "fargate"
FARGATE_ON_DEMAND_VCPU_QUOTA = "L-3032A538"


class QuotasClient:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "service-quotas")

    def fargate_on_demand_vcpus(self) -> float:
        """The applied quota, or AWS's default when the account never changed it."""
        kwargs = {"ServiceCode": FARGATE_SERVICE_CODE, "QuotaCode": FARGATE_ON_DEMAND_VCPU_QUOTA}
        try:
            return float(self.client.get_service_quota(**kwargs)["Quota"]["Value"])
        except self.client.exceptions.NoSuchResourceException:
            return float(self.client.get_aws_default_service_quota(**kwargs)["Quota"]["Value"])
