"""After the rollout: smoke tests and cleanup of old revisions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.deploy import BASELINE_TASK_ID, REGISTER_TASK_ID

REPORT_DIR_ENV = "LATTICEDB_REPORT_DIR"


class SmokeTestOperator(LatticeDBOperator):
    """Run the smoke tests, save the JSON report, fail the task when any check fails."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.smoke import run_smoke_tests

        new = context["ti"].xcom_pull(task_ids=REGISTER_TASK_ID)
        smoke = self.env.smoke
        report = run_smoke_tests(
            self.env.service_url, new["version"],
            timeout=smoke.timeout_seconds, retries=smoke.retries, delay=smoke.retry_delay_seconds,
        ).to_dict()
        report_dir = Path(os.environ.get(REPORT_DIR_ENV, "/tmp/latticedb-reports"))
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / f"smoke-test-report-{context['run_id'].replace(':', '_').replace('+', '_')}.json"
        path.write_text(json.dumps(report, indent=2))
        for c in report["checks"]:
            self.log.info("%s %s: %s", "✓" if c["passed"] else "✗", c["check"], c["detail"])
        self.log.info("Smoke-test report saved to %s", path)
        if not report["passed"]:
            failed = "; ".join(c["detail"] for c in report["checks"] if not c["passed"])
            raise AirflowFailException(f"smoke tests failed: {failed}")
        return {**report, "report_path": str(path)}


class CleanupRevisionsOperator(LatticeDBOperator):
    """Deregister revisions beyond the newest N; never the one in use or the rollback target."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.revisions import revisions_to_deregister

        ti = context["ti"]
        ecs = EcsClient(self.env)
        protected = {ecs.describe_service(s)["taskDefinition"] for s in self.env.services}
        baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID)
        if baseline:
            protected.add(baseline["task_definition"])
        doomed = revisions_to_deregister(ecs.list_revisions(), self.env.keep_task_definitions, protected)
        for arn in doomed:
            ecs.deregister(arn)
            self.log.info("Deregistered %s", arn)
        self.log.info("Kept the newest %d revisions; deregistered %d", self.env.keep_task_definitions, len(doomed))
        return {"deregistered": doomed}


