from latticedb_deploy.preflight import FAIL, PASS, WARN, CheckResult, verdict
from latticedb_deploy.revisions import revisions_to_deregister
from latticedb_deploy.rollout import COMPLETED, FAILED, IN_PROGRESS, rollout_status

NEW, OLD = "arn:aws:ecs:us-east-1:1:task-definition/f:2", "arn:aws:ecs:us-east-1:1:task-definition/f:1"


def dep(td, status="PRIMARY", state="COMPLETED", running=2, desired=2, failed=0, reason=""):
    return {"taskDefinition": td, "status": status, "rolloutState": state, "runningCount": running,
            "desiredCount": desired, "failedTasks": failed, "rolloutStateReason": reason}


def test_rollout_in_progress_while_old_deployment_drains():
    svc = {"taskDefinition": NEW, "deployments": [dep(NEW, state="IN_PROGRESS", running=1), dep(OLD, status="ACTIVE")]}
    assert rollout_status(svc, NEW).state == IN_PROGRESS


def test_rollout_completed_only_with_a_single_completed_primary():
    assert rollout_status({"taskDefinition": NEW, "deployments": [dep(NEW)]}, NEW).state == COMPLETED
    svc = {"taskDefinition": NEW, "deployments": [dep(NEW), dep(OLD, status="ACTIVE")]}
    assert rollout_status(svc, NEW).state == IN_PROGRESS


def test_rollout_failed_by_circuit_breaker_or_replaced():
    svc = {"taskDefinition": OLD, "deployments": [dep(OLD, state="IN_PROGRESS"), dep(NEW, "ACTIVE", "FAILED", 0, 2, 3, "circuit breaker")]}
    status = rollout_status(svc, NEW)
    assert (status.state, status.reason, status.failed_tasks) == (FAILED, "circuit breaker", 3)
    assert rollout_status({"taskDefinition": OLD, "deployments": [dep(OLD)]}, NEW).state == FAILED


def test_cleanup_keeps_newest_and_protected():
    arns = [f"arn:aws:ecs:r:1:task-definition/f:{i}" for i in range(1, 16)]
    doomed = revisions_to_deregister(arns, keep=10, protected={arns[0], arns[2]})
    assert doomed == [arns[4], arns[3], arns[1]]


def test_verdict_strict_turns_warnings_into_failures():
    results = [CheckResult("a", PASS, "ok"), CheckResult("b", WARN, "meh")]
    assert verdict(results)[0] is True
    ok, lines = verdict(results, strict=True)
    assert ok is False and lines == ["✓ a: ok", "⚠ b: meh"]
    assert verdict([CheckResult("c", FAIL, "no")])[0] is False
