"""verify.smoke_tests: the smoke tests against the service URL, with a JSON report."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import DeploymentStepOperator

REPORT_DIR_ENV = "LATTICEDB_REPORT_DIR"
DEFAULT_REPORT_DIR = "/tmp/latticedb-reports"
SMOKE_TASK_ID = "verify.smoke_tests"


class SmokeTestOperator(DeploymentStepOperator):
    """Run the smoke tests for `new_revision`'s version, save the JSON report (LATTICEDB_REPORT_DIR),
    return it; fail on any failed check.

    First the lease (hold_lease): a run that lost its environment stops here (LEASE LOST), and a
    latticedb_control abort fails the task with its reason, so the rollback runs. Then the lease is marked
    `verifying` (operators.control.enter_phase): latticedb_control then takes only abort."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.control import VERIFYING
        from latticedb_deploy.operators.control import enter_phase
        from latticedb_deploy.smoke import run_smoke_tests, save_report

        holder = self.hold_lease(context)  # fencing, and a latticedb_control abort fails here (the rollback runs)
        enter_phase(self, context, VERIFYING, holder=holder,
                    aborted=f"{self.task_id} not run, nothing changed: the deployment was {{abort}}")

        new = self.required("new_revision")
        smoke = self.env.smoke
        report = run_smoke_tests(
            self.env.service_url, new["version"],
            timeout=smoke.timeout_seconds, retries=smoke.retries, delay=smoke.retry_delay_seconds,
            max_latency_ms=self.env.thresholds.max_p95_ms,
        )
        report.context = {
            "environment": self.env.name,
            "image": new.get("image") or self.image_uri,
            "task_definition": new.get("task_definition"),
            "run_id": context["run_id"],
        }
        data = report.to_dict()
        path = save_report(data, os.environ.get(REPORT_DIR_ENV) or DEFAULT_REPORT_DIR, context["run_id"])
        for c in data["checks"]:
            self.log.info("%s %s: %s", "✓" if c["passed"] else "✗", c["check"], c["detail"])
        for r in data["requests"]:
            self.log.info("GET %s attempt %d: %s in %s ms", r["url"], r["attempt"], r.get("status", r.get("error")), r["latency_ms"])
        self.log.info("Smoke-test report saved to %s", path)
        if not data["passed"]:
            failed = "; ".join(c["detail"] for c in data["checks"] if not c["passed"])
            context["ti"].xcom_push(key="return_value", value={**data, "report_path": str(path)})
            raise AirflowFailException(f"smoke tests failed: {failed}")
        return {**data, "report_path": str(path)}
