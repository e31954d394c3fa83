"""After the rollout: smoke tests, post-deployment checks, cleanup and the deployment log."""

from __future__ import annotations

import os
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DagRunTriggerException

from latticedb_deploy.deployment_log import render_entry
from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.deploy import BASELINE_TASK_ID, REGISTER_TASK_ID, NotifyOperator, revision_fields
from latticedb_deploy.operators.preflight import INCIDENTS_TASK_ID, VERDICT_TASK_ID, strategy_of

REPORT_DIR_ENV = "LATTICEDB_REPORT_DIR"
DEFAULT_REPORT_DIR = "/tmp/latticedb-reports"
SMOKE_TASK_ID = "verify.smoke_tests"
POST_DEPLOYMENT_TASK_ID = "verify.post_deployment_checks"
RECORD_TASK_ID = "record_deployment"
WATCH_TASK_ID = "schedule_post_deployment_watch"
# After verify passed the deployment is done: these steps only warn (see BestEffortMixin).
BEST_EFFORT_TASK_IDS = ("cleanup.deregister_old_revisions", "cleanup.delete_old_images", RECORD_TASK_ID, WATCH_TASK_ID)
APPROVAL_TASK_ID = "deploy.approve_switch"
OUTCOME_KEY = "outcome"


class SmokeTestOperator(LatticeDBOperator):
    """Run the smoke tests, save the JSON report (LATTICEDB_REPORT_DIR), return it; fail on any failed check."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.smoke import run_smoke_tests, save_report

        new = context["ti"].xcom_pull(task_ids=REGISTER_TASK_ID)
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


class PostDeploymentChecksOperator(LatticeDBOperator):
    """The runbook's post-deployment-checks.sh --timeout 600: poll until every check passes or time runs out.

    Service steady (running = desired, one deployment, 100 % of traffic), targets healthy,
    metrics within the SLO/thresholds over the last `post_deployment.window_seconds`, and
    no alarm in ALARM that was not already in ALARM at pre-flight (a new alarm fails at once).
    Metrics that stay inconclusive (too little traffic) for a whole window pass with a warning
    (latticedb_deploy.post_deployment). The wait is deferred: the rounds run in the triggerer
    (PostDeploymentChecksTrigger), no worker slot is held. A verdict fails with
    AirflowFailException (no retry: the timeout is the budget); a round that cannot reach AWS
    is tried again at the next poll until the timeout.
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, timeout_seconds: int | None = None, poll_seconds: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds

    def execute(self, context: Any) -> None:
        from latticedb_deploy.operators.base import owner_or_none
        from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger

        preflight = context["ti"].xcom_pull(task_ids=INCIDENTS_TASK_ID) or {}
        timeout = float(self.timeout_seconds or self.env.post_deployment.timeout_seconds)
        poll = float(self.poll_seconds or self.env.metrics.poll_seconds)
        self.log.info("Watching the live slot for %ss (timeout %.0fs, a round every %.0fs)",
                      self.env.post_deployment.window_seconds, timeout, poll)
        self.defer(
            trigger=PostDeploymentChecksTrigger(
                environment=self.env.name, since=time.time(),
                baseline_alarms=sorted((preflight.get("data") or {}).get("alarms") or []),
                timeout_seconds=timeout, poll_seconds=poll, owner=owner_or_none(context),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        if event.get("lease_lost"):
            self.lease_lost(context, event["reason"])
        report = event["report"]
        for c in report.get("checks") or []:
            self.log.info("%s %s: %s", "✓" if c["passed"] else ("⚠" if report["passed"] else "✗"), c["check"], c["detail"])
        if event.get("failure"):
            context["ti"].xcom_push(key="return_value", value=report)
            raise AirflowFailException(event["failure"])
        return report


class BestEffortMixin:
    """A step after verify passed: its failure is a warning on a succeeded deployment, never a failure.

    The step's own errors still get the task's retries (a throttled or briefly unreachable AWS
    converges); on the last try, or at once for an error that retrying cannot fix
    (AirflowFailException), the task logs the error, posts a Slack warning naming the task and
    the reason, returns {"warning": true, "task", "reason", "attempts"} and succeeds. The run
    then succeeds too and notify_success lists the warning. Subclasses implement `run`.
    """

    def run(self, context: Any) -> Any:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def execute(self, context: Any) -> Any:
        try:
            return self.run(context)
        except (AirflowSkipException, DagRunTriggerException):  # a skip; a trigger handed to the task runner
            raise
        except Exception as exc:
            ti = context["ti"]
            tries_left = int(getattr(ti, "max_tries", 0) or 0) - int(getattr(ti, "try_number", 1) or 1) + 1
            if not isinstance(exc, AirflowFailException) and tries_left > 0:
                raise  # retried by Airflow
            reason = f"{type(exc).__name__}: {exc}"[:1000]
            attempts = int(getattr(ti, "try_number", 1) or 1)
            self.log.warning(
                "%s failed after %d attempt(s); the deployment itself succeeded, so this is a warning: %s",
                ti.task_id, attempts, reason, exc_info=True,
            )
            self.send(  # type: ignore[attr-defined]
                context, "warning", f"Warning: {ti.task_id} failed; the deployment succeeded",
                {"Task": ti.task_id, "Reason": reason, "Attempts": attempts,
                 "Deployment": "succeeded and verified; this step is best-effort"},
            )
            return {"warning": True, "task": ti.task_id, "reason": reason, "attempts": attempts}


def best_effort_warnings(ti: Any) -> list[dict]:
    """The warnings the best-effort steps of this run returned (empty when all went well)."""
    found = []
    for task_id in BEST_EFFORT_TASK_IDS:
        value = ti.xcom_pull(task_ids=task_id)
        if isinstance(value, dict) and value.get("warning"):
            found.append(value)
    return found


def _protected_task_definitions(env: Any, ecs: Any, ti: Any) -> set[str]:
    """In use by either slot's service, the rollback target (baseline), and the revision just deployed."""
    protected = {ecs.describe_service(s)["taskDefinition"] for s in env.services}
    baseline = ti.xcom_pull(task_ids=BASELINE_TASK_ID)
    if baseline:
        protected.add(baseline["task_definition"])
    new = ti.xcom_pull(task_ids=REGISTER_TASK_ID)
    if new:
        protected.add(new["task_definition"])
    return protected


class CleanupRevisionsOperator(BestEffortMixin, LatticeDBOperator):
    """Deregister revisions beyond the newest N; never the one in use or the rollback target."""

    def run(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.revisions import revisions_to_deregister

        ecs = EcsClient(self.env)
        protected = _protected_task_definitions(self.env, ecs, context["ti"])
        doomed = revisions_to_deregister(ecs.list_revisions(), self.env.keep_task_definitions, protected)
        for arn in doomed:
            ecs.deregister(arn)
            self.log.info("Deregistered %s", arn)
        self.log.info("Kept the newest %d revisions; deregistered %d", self.env.keep_task_definitions, len(doomed))
        return {"deregistered": doomed}


class CleanupImagesOperator(BestEffortMixin, LatticeDBOperator):
    """Delete ECR images beyond the newest `keep_images`; never one that any environment may run.

    Environments share the repository, so protected are: every image referenced by a task
    definition that is ACTIVE, or run by a slot service, in any configured environment that can
    use this repository (latticedb_deploy.aws.in_use), plus this run's rollback target and new
    revision. If such an environment cannot be looked up (another account or region, an error),
    nothing is deleted and the step ends with a warning saying which one.
    """

    def run(self, context: Any) -> dict:
        from latticedb_deploy.aws.ecr import EcrClient, image_digests_referenced, images_to_delete
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.in_use import images_in_use
        from latticedb_deploy.config import load_config

        ti = context["ti"]
        ecs, ecr = EcsClient(self.env), EcrClient(self.env)
        in_use = images_in_use(self.env, list(load_config().environments.values()))
        if in_use.unseen:
            raise AirflowFailException(
                "deleted no image: environments that may run images from this repository cannot be looked up "
                "with this connection: " + "; ".join(in_use.unseen)
            )
        where = dict(in_use.images)
        for arn in sorted(_protected_task_definitions(self.env, ecs, ti)):  # rollback target, new revision
            image = ecs.container_image(ecs.describe_task_definition(arn))
            where.setdefault(image, []).append(f"{self.env.name}: {arn.split('/')[-1]} (this run)")
        images = ecr.list_images()
        by_tag = {tag: info.digest for info in images for tag in info.tags}
        protected = image_digests_referenced(sorted(where), by_tag)
        new = ti.xcom_pull(task_ids=REGISTER_TASK_ID)
        if new and new.get("digest"):
            protected.add(new["digest"])
        doomed = images_to_delete(images, self.env.keep_images, protected)
        labels = {info.digest: ",".join(info.tags) or "untagged" for info in images}
        for info in images[self.env.keep_images :]:
            if info.digest in protected:
                users = [w for ref, ws in where.items() for w in ws if info.digest in image_digests_referenced([ref], by_tag)]
                self.log.info("Kept %s (%s), in use: %s", info.digest[:19], labels[info.digest], "; ".join(users) or "this run")
        deleted = ecr.delete_images(doomed)
        for digest in deleted:
            self.log.info("Deleted %s (%s)", digest[:19], labels.get(digest))
        self.log.info(
            "Environments checked: %s (ignored: %s). Kept the newest %d of %d images and %d in use; deleted %d",
            ", ".join(in_use.checked), "; ".join(in_use.ignored) or "none",
            self.env.keep_images, len(images), len(protected), len(deleted),
        )
        return {"deleted": deleted, "protected": sorted(protected), "environments_checked": in_use.checked}


class RecordDeploymentOperator(BestEffortMixin, LatticeDBOperator):
    """The run's history record (`succeeded`) and the runbook's deployment-log entry rendered from it.

    Best-effort like cleanup: a retry after the log was written does not append it twice, and a
    history table that stays unwritable ends as a warning on a succeeded deployment."""

    def __init__(self, *, strategy: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.strategy = strategy

    def run(self, context: Any) -> dict:
        from latticedb_deploy.deployment_log import inline, resolve_log_path
        from latticedb_deploy.operators.history import append_log, build_record, write_history

        ti = context["ti"]
        issues: list[str] = []
        for result in ti.xcom_pull(task_ids=VERDICT_TASK_ID) or []:
            data = result.get("data") or {}
            if data.get("override_reason"):
                issues.append(f"deployment window overridden by {data.get('override_by')}: {data['override_reason']}")
            elif result.get("status") == "warn":
                issues.append(f"pre-flight warning: {result['check']}: {result['reason']}")
        post = ti.xcom_pull(task_ids=POST_DEPLOYMENT_TASK_ID) or {}
        issues.extend(f"post-deployment: {w}" for w in post.get("warnings") or [])
        issues.extend(f"{w['task']} failed (warning): {w['reason']}" for w in best_effort_warnings(ti))
        approval = ti.xcom_pull(task_ids=APPROVAL_TASK_ID, key=OUTCOME_KEY) if _has_task(context, APPROVAL_TASK_ID) else None
        approved_by = (approval.get("by") or "unknown") if approval and approval.get("outcome") == "approved" else None
        record = build_record(
            context, self.env, "succeeded", strategy=strategy_of(self, self.strategy), issues=issues, approved_by=approved_by,
        )
        path = resolve_log_path(self.env.deployment_log)
        marker = f"- **Run**: {inline(record.run_id)}\n"
        try:
            done = path.exists() and marker in path.read_text(encoding="utf-8")
            text = None if done else append_log(self.env, record)
        except OSError as exc:
            raise OSError(f"cannot append to the deployment log {path}: {exc}") from exc
        if text:
            self.log.info("Appended to %s:\n%s", path, text)
        else:
            self.log.info("%s already has this run's entry (a retry): not appended again", path)
        try:
            write_history(self.env, record)
        except Exception as exc:
            raise RuntimeError(f"cannot write the history record to {self.env.history_table}: {exc}") from exc
        self.log.info("History: %s succeeded -> %s", record.owner, self.env.history_table)
        return {"path": str(path), "entry": text or render_entry(record.to_log_entry()), "history": record.key}


def _has_task(context: Any, task_id: str) -> bool:
    dag = context.get("dag")
    return dag is not None and task_id in getattr(dag, "task_ids", ())


class DeploymentOutcomeOperator(NotifyOperator):
    """notify_success: the run's outcome, for people (Slack) and for callers (XCom `outcome`).

    Runs when nothing upstream failed (trigger rule none_failed):
    - deployed (record_deployment ran): posts "<strategy> deployment succeeded", naming who
      approved and any warning of the best-effort steps; outcome {"deployed": true, ...}.
    - not deployed because an approval said no (rejected or timed out): outcome
      {"deployed": false, "outcome": "rejected", ...} and the task fails with
      "rejected: not deployed", so the run ends failed: whatever waits on the run (progressive
      delivery, the nightly, a CI job polling the REST API) sees that nothing was deployed.
      No rollback runs (nothing to restore) and no failure is paged: the approval step has
      already said "Deployment rejected" in Slack and scaled the idle colour down.
    """

    def execute(self, context: Any) -> dict:
        ti = context["ti"]
        approval = ti.xcom_pull(task_ids=APPROVAL_TASK_ID, key=OUTCOME_KEY) if _has_task(context, APPROVAL_TASK_ID) else None
        recorded = ti.xcom_pull(task_ids=RECORD_TASK_ID)
        if recorded is None:
            if approval and not approval.get("approved"):
                outcome = {"deployed": False, "outcome": approval.get("outcome", "rejected"), "reason": approval.get("reason")}
                ti.xcom_push(key=OUTCOME_KEY, value=outcome)
                from latticedb_deploy.operators.history import record_outcome

                record_outcome(  # a timed-out approval is a rejection too: nothing was deployed
                    self.env, context, "rejected", logger=self.log, failed_step=APPROVAL_TASK_ID,
                    # "rejected by <who>" says it all; a timeout says so ("timed out: no answer within 3600s").
                    reason=(approval.get("reason") if approval.get("outcome", "rejected") == "rejected"
                            else f"{str(approval.get('outcome')).replace('_', ' ')}: {approval.get('reason')}"),
                )
                raise AirflowFailException(f"{approval.get('outcome', 'rejected')}: not deployed: {approval.get('reason')}")
            raise AirflowSkipException("nothing was deployed")
        warnings = best_effort_warnings(ti)
        fields = revision_fields(ti)
        if approval and approval.get("outcome") == "approved":
            fields["Approved by"] = approval.get("by")
        watch = ti.xcom_pull(task_ids=WATCH_TASK_ID, key="watch") if _has_task(context, WATCH_TASK_ID) else None
        if watch and not any(w["task"] == WATCH_TASK_ID for w in warnings):
            fields["Post-deployment watch"] = f"{watch['due']} (run {watch['run_id']})"
            if watch.get("paused"):
                warnings.append({"task": WATCH_TASK_ID, "reason": "latticedb_post_deployment_watch is paused: "
                                 "unpause it or its checks never run"})
        if warnings:
            fields["Warnings"] = "\n".join(f"{w['task']}: {w['reason']}" for w in warnings)
        title = self.title + (f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else "")
        self.send(context, self.event, title, fields)
        outcome = {
            "deployed": True, "outcome": "deployed", "approved_by": (approval or {}).get("by"),
            "warnings": [f"{w['task']}: {w['reason']}" for w in warnings],
        }
        ti.xcom_push(key=OUTCOME_KEY, value=outcome)
        return outcome
