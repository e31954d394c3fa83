"""Smoke tests of a slot that carries no production traffic, through the test listener.

Shared by blue/green (the idle colour, before the switch) and canary (the canary slot, before the
first traffic shift: runbook canary step 4). The test listener is pointed at the new slot (a weight
change like any other: the slot is checked first, latticedb_deploy.operators.traffic.guarded_shift),
then the runbook's smoke tests run against `test_url`. Production's listener is never touched.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from latticedb_deploy.operators.base import DeploymentStepOperator


class SmokeTestSlotOperator(DeploymentStepOperator):
    """Point the test listener at the new (idle) slot and smoke-test it there: no production traffic involved.

    `slot_label` names the slot in messages ("idle colour" for blue/green, "canary slot" for canary).
    A failed smoke test fails the task (no retry: the slot is what it is), which lights up the rollback.
    """

    slot_label = "idle colour"

    def __init__(self, *, slot_label: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if slot_label:
            self.slot_label = slot_label

    def execute(self, context: Any) -> dict:
        self.hold_lease(context)  # fencing: this run still holds the environment, or it changes nothing
        from latticedb_deploy.operators.traffic import guarded_shift
        from latticedb_deploy.readiness import new_slot
        from latticedb_deploy.smoke import run_smoke_tests

        baseline, new = self.required("baseline", "new_revision")
        if not self.env.test_url:
            raise AirflowFailException(f"environment {self.env.name!r} has no test_url for the test listener")
        port = self.env.load_balancer.test_listener_port
        # The test listener gives the slot weight 100: checked like any weight change (right revision,
        # settled, healthy targets), or nothing changes.
        guarded_shift(self, {baseline["idle_target_group_arn"]: 100}, [new_slot(baseline, new)], port=port)
        smoke = self.env.smoke
        report = run_smoke_tests(
            self.env.test_url, new["version"],
            timeout=smoke.timeout_seconds, retries=smoke.retries, delay=smoke.retry_delay_seconds,
        ).to_dict()
        report["slot"] = {"service": baseline["idle_service"], "colour": baseline["idle_colour"], "listener": "test"}
        for c in report["checks"]:
            self.log.info("%s %s: %s", "✓" if c["passed"] else "✗", c["check"], c["detail"])
        if not report["passed"]:
            failed = "; ".join(c["detail"] for c in report["checks"] if not c["passed"])
            raise AirflowFailException(
                f"smoke tests of the {self.slot_label} ({baseline['idle_colour']}) through the test listener failed: {failed}"
            )
        return report
