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


def service(td, *deployments):
    """A DescribeServices payload: the service's counts are its deployments' sums, as ECS reports them."""
    return {"taskDefinition": td, "deployments": list(deployments), "desiredCount": deployments[0]["desiredCount"],
            "runningCount": sum(d["runningCount"] for d in deployments)}


def test_rollout_completed_only_with_a_single_completed_primary():
    assert rollout_status(service(NEW, dep(NEW)), NEW).state == COMPLETED
    assert rollout_status(service(NEW, dep(NEW), dep(OLD, status="ACTIVE")), NEW).state == IN_PROGRESS
    assert rollout_status(service(NEW, dep(NEW, running=1)), NEW).state == IN_PROGRESS  # a task still starting
    assert rollout_status(service(NEW, dep(NEW, state="IN_PROGRESS")), NEW).state == IN_PROGRESS


def test_rollout_failed_by_circuit_breaker_or_replaced():
    svc = {"taskDefinition": OLD, "deployments": [dep(OLD, state="IN_PROGRESS"), dep(NEW, "ACTIVE", "FAILED", 0, 2, 3, "circuit breaker")]}
    status = rollout_status(svc, NEW)
    assert (status.state, status.reason, status.failed_tasks) == (FAILED, "circuit breaker", 3)
    assert rollout_status({"taskDefinition": OLD, "deployments": [dep(OLD)]}, NEW).state == FAILED


def test_a_read_that_has_not_caught_up_with_the_update_is_not_a_replacement():
    """ECS's API is eventually consistent: right after UpdateService a DescribeServices may still show the
    service as it was. Within the grace after the wait began that is "in progress"; after it, "replaced"."""
    from latticedb_deploy.rollout import CONSISTENCY_GRACE_SECONDS

    stale = {"taskDefinition": OLD, "deployments": [dep(OLD)]}
    assert rollout_status(stale, NEW, since=1000, now=1001).state == IN_PROGRESS
    assert rollout_status(stale, NEW, since=1000, now=1000 + CONSISTENCY_GRACE_SECONDS - 1).state == IN_PROGRESS
    assert rollout_status(stale, NEW, since=1000, now=1000 + CONSISTENCY_GRACE_SECONDS + 1).state == FAILED
    breaker = {"taskDefinition": OLD, "deployments": [dep(OLD, state="IN_PROGRESS"), dep(NEW, "ACTIVE", "FAILED", 0, 2, 3, "cb")]}
    assert rollout_status(breaker, NEW, since=1000, now=1001).state == FAILED  # ECS said so: no grace


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


def _record(n, outcome, digest, dag_id="latticedb_deploy_canary", minute=0, **extra):
    from latticedb_deploy.history import DeploymentRecord

    at = f"2026-12-01T10:{minute:02d}:00+00:00"
    return DeploymentRecord(environment="local", dag_id=dag_id, run_id=f"r{n}", strategy="canary", started=at,
                            finished=at, outcome=outcome, image=None, version=None, digest=digest, triggered_by="a", **extra)


def test_the_history_marks_images_good_or_bad_by_their_newest_deployment():
    from latticedb_deploy.revisions import image_verdicts

    records = [  # newest first
        _record(5, "succeeded", None, dag_id="latticedb_rollback", minute=5),  # the emergency rollback of r4
        _record(4, "succeeded", "sha256:d", minute=4),
        _record(3, "rejected", "sha256:c", minute=3),
        _record(2, "rolled_back", "sha256:b", minute=2),
        _record(1, "succeeded", "sha256:a", minute=1),
        _record(0, "rolled_back", "sha256:a", minute=0),  # older than its success: the success decides
    ]
    assert image_verdicts(records) == {"sha256:d": False, "sha256:b": False, "sha256:a": True}


def test_an_emergency_rollback_never_goes_to_a_failed_image_or_the_one_in_service():
    from latticedb_deploy.revisions import rollback_target

    rev = {n: f"arn:aws:ecs:us-east-1:1:task-definition/f:{n}" for n in range(1, 6)}
    digests = {rev[1]: "sha256:v1", rev[2]: "sha256:bad", rev[3]: "sha256:v2", rev[4]: "sha256:v2", rev[5]: "sha256:v2"}
    older = [rev[4], rev[3], rev[2], rev[1]]  # live: rev 5 (v2)
    # Known bad rev 2 and v2 itself passed over; rev 1 is not known either way: the newest not known bad.
    target, skipped = rollback_target(older, digests.get, "sha256:v2", {"sha256:bad": False})
    assert target == rev[1] and len(skipped) == 3, skipped
    # A known-good revision wins over a newer unknown one.
    digests[rev[3]] = "sha256:unknown"
    assert rollback_target(older, digests.get, "sha256:v2", {"sha256:v1": True})[0] == rev[1]
    assert rollback_target(older, digests.get, "sha256:v2", {})[0] == rev[3]
    # Nothing but known-bad and the image in service: no target (the operator refuses, naming why).
    assert rollback_target([rev[4], rev[2]], digests.get, "sha256:v2", {"sha256:bad": False}) == (None, [
        "f:4: the image in service", "f:2: a deployment of its image failed or was reverted"])


def test_a_restart_is_done_only_once_its_own_deployment_is_settled():
    """A restart (force new deployment) deploys the same revision again. A read that has not caught up shows the
    old deployment, settled on that revision: by revision alone the wait ended at once while the old tasks
    still ran beside the new ones (seen: test_service_operations' restart, 1 in 1000 tests, with the local
    stack's 1 s read lag). With the deployment the UpdateService answered with, only that one counts."""
    from latticedb_deploy.rollout import CONSISTENCY_GRACE_SECONDS

    old, new = {**dep(NEW), "id": "ecs-svc/1"}, {**dep(NEW, state="IN_PROGRESS", running=0), "id": "ecs-svc/2"}
    stale = service(NEW, old)
    assert rollout_status(stale, NEW).state == COMPLETED  # what the wait saw before
    assert rollout_status(stale, NEW, since=1000, now=1001, deployment_id="ecs-svc/2").state == IN_PROGRESS
    both = service(NEW, {**new, "status": "PRIMARY"}, {**old, "status": "ACTIVE"})
    assert rollout_status(both, NEW, since=1000, now=1003, deployment_id="ecs-svc/2").state == IN_PROGRESS
    done = service(NEW, {**new, "rolloutState": "COMPLETED", "runningCount": 2})
    assert rollout_status(done, NEW, since=1000, now=1010, deployment_id="ecs-svc/2").state == COMPLETED
    gone = rollout_status(stale, NEW, since=1000, now=1000 + CONSISTENCY_GRACE_SECONDS + 1, deployment_id="ecs-svc/2")
    assert gone.state == FAILED and "deployment ecs-svc/2 is gone" in gone.reason
    failed = service(NEW, {**new, "rolloutState": "FAILED", "rolloutStateReason": "circuit breaker"}, old)
    assert rollout_status(failed, NEW, since=1000, now=1001, deployment_id="ecs-svc/2").state == FAILED
