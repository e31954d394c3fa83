"""Hold the environment for the length of a run (a setup/teardown pair around the deployment)."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator


def owner_of(context: Any) -> str:
    return f"{context['dag'].dag_id}/{context['run_id']}"


class AcquireEnvironmentOperator(LatticeDBOperator):
    """Fail at once, naming the holder, when another run is deploying to the same environment."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock

        me = owner_of(context)
        lock = EnvironmentLock(self.env)
        try:
            holder = lock.acquire(me)
        except lock.client.exceptions.ResourceNotFoundException:
            raise AirflowFailException(
                f"lock table {self.env.lock_table!r} does not exist in {self.env.region}; create it "
                "(partition key `environment`, string) or set `lock_table` in the config"
            ) from None
        if holder is not None:
            left = max(0, int(holder.expires_at - time.time()))
            raise AirflowFailException(
                f"environment {self.env.name!r} is held by {holder.owner} (since "
                f"{time.strftime('%H:%M:%S', time.gmtime(holder.acquired_at))} UTC; the hold expires in {left}s "
                "if that run crashed). Wait for it to finish, then trigger again."
            )
        self.log.info("Holding %s for %s (up to %ss)", self.env.name, me, self.env.lock_ttl_seconds)
        return {"environment": self.env.name, "owner": me}


class ReleaseEnvironmentOperator(LatticeDBOperator):
    """Give the environment back, whatever happened to the run."""

    def execute(self, context: Any) -> None:
        from latticedb_deploy.aws.locks import EnvironmentLock

        released = EnvironmentLock(self.env).release(owner_of(context))
        self.log.info("%s %s", "Released" if released else "Did not hold", self.env.name)
