"""latticedb_nightly_staging: the newest matching image (skip when it already runs), then one summary.

The deployment itself is a triggered strategy DAG (operators/strategy_run.py)."""

from __future__ import annotations

import re
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import LatticeDBOperator, ReportedFailure
from latticedb_deploy.operators.strategy_run import strategy_dag_id, triggered_outcome

RESOLVE_TASK_ID = "resolve_image"
WAIT_TASK_ID = "wait_for_environment"
HELD_KEY = "held"  # why wait_for_environment gave up: who held the environment
NOT_DEPLOYED_KEY = "not_deployed"  # why resolve_image found nothing to deploy
TRIGGER_TASK_ID = "deploy"


def _version_key(tag: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", tag))


def newest_matching(image_details: list[dict], pattern: str) -> tuple[dict, str] | None:
    """The most recently pushed image with a tag matching `pattern` (ties: highest version), and that tag."""
    regex = re.compile(pattern)
    best: tuple[tuple, dict, str] | None = None
    for d in image_details:
        tags = sorted((t for t in d.get("imageTags") or [] if regex.search(t)), key=_version_key)
        if not tags:
            continue
        pushed = d.get("imagePushedAt")
        key = (pushed.timestamp() if hasattr(pushed, "timestamp") else float(pushed or 0), _version_key(tags[-1]))
        if best is None or key > best[0]:
            best = (key, d, tags[-1])
    return (best[1], best[2]) if best else None


def running_digest(env: Any, ecs: Any, ecr: Any, service: str) -> tuple[str | None, str]:
    """(digest, task definition) of what `service` runs; the digest is None if it cannot be told."""
    from latticedb_deploy.images import parse_image_uri

    svc = ecs.describe_service(service)
    image = ecs.container_image(ecs.describe_task_definition(svc["taskDefinition"]))
    ref = parse_image_uri(image)
    if ref.digest:
        return ref.digest, svc["taskDefinition"]
    try:
        return ecr.describe(ref).digest, svc["taskDefinition"]
    except Exception:  # noqa: BLE001 - an unknown image simply differs from the newest one
        return None, svc["taskDefinition"]


class _NightlyOperator(LatticeDBOperator):
    """The nightly DAG has no environment/image params: both come from config and the resolved image."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("environment", "")
        kwargs.setdefault("image_uri", "")
        kwargs.setdefault("notify", True)
        super().__init__(**kwargs)


class ResolveNightlyImageOperator(_NightlyOperator):
    """Newest ECR image whose tag matches `nightly.tag_pattern`; skip the run if it already runs live."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws import boto_client
        from latticedb_deploy.aws.ecr import EcrClient
        from latticedb_deploy.aws.ecs import EcsClient
        from latticedb_deploy.aws.elbv2 import TrafficClient
        from latticedb_deploy.config import load_config

        nightly = load_config().nightly
        self.environment = nightly.environment
        env = self.env
        client = boto_client(env, "ecr")
        details: list[dict] = []
        for page in client.get_paginator("describe_images").paginate(repositoryName=env.ecr_repository):
            details.extend(page.get("imageDetails", []))
        found = newest_matching(details, nightly.tag_pattern)
        if found is None:  # a night with nothing to deploy: the summary says so and why, once
            why = f"no image in ECR repository {env.ecr_repository!r} has a tag matching {nightly.tag_pattern!r}"
            context["ti"].xcom_push(key=NOT_DEPLOYED_KEY, value=why)
            raise ReportedFailure(f"nightly NOT deployed: {why}")
        image, tag = found
        repo_uri = client.describe_repositories(repositoryNames=[env.ecr_repository])["repositories"][0]["repositoryUri"]
        live, _, _ = TrafficClient(env).live_and_idle()
        digest, task_definition = running_digest(env, EcsClient(env), EcrClient(env, client), live.service)
        result = {
            "environment": env.name,
            "strategy": nightly.strategy,
            "dag_id": strategy_dag_id(nightly.strategy),
            "image_uri": f"{repo_uri}:{tag}",
            "tag": tag,
            "digest": image["imageDigest"],
            "running_digest": digest,
            "running_task_definition": task_definition,
            "live_service": live.service,
        }
        if digest == image["imageDigest"]:
            raise AirflowSkipException(
                f"{tag} ({image['imageDigest'][:19]}) already runs on {live.service} in {env.name}: nothing to deploy"
            )
        self.log.info("Nightly: %s (%s) -> %s with %s", tag, image["imageDigest"][:19], env.name, nightly.strategy)
        return result


class WaitForEnvironmentOperator(_NightlyOperator):
    """wait_for_environment: deploy into an environment nobody holds. A deployment in flight there (someone's
    canary at 02:00) is waited for, deferred in the triggerer, up to `nightly.wait_for_environment_seconds`;
    then, or at once when the environment is locked after a failed rollback, this fails naming who holds it
    (XCom `held`), the deployment is not triggered, and the summary says NOT deployed and why."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy.aws.locks import EnvironmentLock
        from latticedb_deploy.triggers.environment_free import EnvironmentFreeTrigger, lease_state

        nightly = self.config.nightly
        self.environment = nightly.environment  # what resolve_image resolved the image for
        holder = EnvironmentLock(self.env).holder()
        state, held = lease_state(holder, self.env.name)
        holder_owner = getattr(holder, "owner", None)
        if state == "free":  # the usual night: no deferral at all
            return {"environment": self.env.name, "waited_seconds": 0}
        if state == "locked":
            self._held(context, held)
        if nightly.wait_for_environment_seconds <= 0:
            self._held(context, f"{held}; nightly.wait_for_environment_seconds is 0")
        # The deadline counts from the run's start: a retry of this task does not start the wait again (a clear of a
        # finished run does: Airflow gives the run a new start).
        now = time.time()
        started = getattr(context.get("dag_run"), "start_date", None)
        deadline = min(now, started.timestamp() if started is not None else now) + nightly.wait_for_environment_seconds
        if deadline <= now:
            self._held(context, f"{held}, and this run started more than nightly.wait_for_environment_seconds "
                                f"({nightly.wait_for_environment_seconds} s) ago")
        self.log.warning("%s: waiting until %s for it to finish", held, time.strftime("%H:%M:%S UTC", time.gmtime(deadline)))
        self.defer(
            trigger=EnvironmentFreeTrigger(environment=self.env.name, poll_seconds=self.env.rollout.poll_seconds,
                                           deadline=deadline, started_at=now, config=self.config_snapshot,
                                           holder=holder_owner),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        self.environment = self.config.nightly.environment
        if not event.get("free"):
            self._held(context, event["reason"])
        self.log.info("%s is free after %s s", self.environment, event.get("waited_seconds"))
        return {"environment": self.environment, "waited_seconds": event.get("waited_seconds"),
                "waited_for": event.get("waited_for")}

    def _held(self, context: Any, why: str) -> None:
        context["ti"].xcom_push(key=HELD_KEY, value=why)
        raise ReportedFailure(f"nightly NOT deployed: {why}")  # the summary says so, once


ACQUIRE_TASK_ID = "preflight.acquire_environment"
TAKEN = (" is held by ", " is locked since ")  # acquire_environment's refusals when another run has the environment


def taken_before_held(ti: Any, dag_id: str, run_id: str) -> str | None:
    """Why a triggered deployment did not deploy when another run took the environment between the wait and its
    own lease (its acquire_environment failed: that task's reason names the holder); None otherwise."""
    from latticedb_deploy.operators.history import FAILURE_KEY

    try:
        states = ti.get_task_states(dag_id=dag_id, task_ids=[ACQUIRE_TASK_ID], run_ids=[run_id]).get(run_id) or {}
        if states.get(ACQUIRE_TASK_ID) != "failed":
            return None
        found = ti.xcom_pull(task_ids=ACQUIRE_TASK_ID, key=FAILURE_KEY, dag_id=dag_id, run_id=run_id)
    except Exception:  # noqa: BLE001 - the summary goes out without it
        return None
    reason = (found or {}).get("reason") if isinstance(found, dict) else None
    if not reason or not any(words in reason for words in TAKEN):  # a missing table, AWS refusing: not a race
        return None
    return f"the environment was taken before the deployment could hold it (not a failed deployment: nothing changed): {reason}"


def _why_not_started(context: Any) -> str | None:
    """Why the night triggered no deployment: resolve_image's or wait_for_environment's own words, else the
    first failed task and its recorded reason (an AWS error, say); None when nothing says."""
    from latticedb_deploy.operators.history import first_failure

    ti = context["ti"]
    why = ti.xcom_pull(task_ids=RESOLVE_TASK_ID, key=NOT_DEPLOYED_KEY) or ti.xcom_pull(task_ids=WAIT_TASK_ID, key=HELD_KEY)
    if why:
        return why
    step, reason = first_failure(context)
    return f"{step} failed: {reason or 'see its log'}" if step else None


class NightlySummaryOperator(_NightlyOperator):
    """After the triggered deployment: one summary message; the run fails if the deployment did."""

    def execute(self, context: Any) -> dict:
        from latticedb_deploy import notify
        from latticedb_deploy.config import load_config

        ti = context["ti"]
        resolved = ti.xcom_pull(task_ids=RESOLVE_TASK_ID)
        self.environment = (resolved or {}).get("environment") or load_config().nightly.environment
        run_id = ti.xcom_pull(task_ids=TRIGGER_TASK_ID, key="trigger_run_id")
        state = ti.get_dagrun_state(dag_id=resolved["dag_id"], run_id=run_id) if (resolved and run_id) else None
        state = getattr(state, "value", state)
        ok = state == "success"
        outcome = triggered_outcome(ti, resolved["dag_id"], run_id, state) if (resolved and run_id) else None
        fields = {
            "Environment": self.environment,
            "Image": (resolved or {}).get("image_uri"),
            "Digest": (resolved or {}).get("digest"),
            "Was running": ((resolved or {}).get("running_task_definition") or "").split("/")[-1],
            "Deployment": f"{(resolved or {}).get('dag_id')} run {run_id}: {state}" if run_id else "not started",
            "Outcome": f"{outcome['outcome']}: {outcome['reason']}" if outcome and not ok else None,
            "Why": _why_not_started(context) if not run_id else None,
            "Run": context["run_id"],
        }
        if run_id:
            waited = ti.xcom_pull(task_ids=WAIT_TASK_ID) or {}
            if waited.get("waited_for"):
                fields["Waited"] = f"{waited.get('waited_seconds')} s, for {waited['waited_for']}"
            if not ok:
                fields["Why"] = taken_before_held(ti, resolved["dag_id"], run_id)
        tag = (resolved or {}).get("tag")  # none when no image was resolved: the Why says what was looked for
        title = f"Nightly {self.environment}: " + (f"{tag} " if tag else "") + ("deployed" if ok else "NOT deployed")
        told = notify.send(self.env, "succeeded" if ok else "failed", title, fields, notify.run_link(context))
        if not ok:
            why = f"{outcome['outcome']}: {outcome['reason']}" if outcome else f"not started: {fields['Why'] or 'see the run'}"
            # Told only if Slack took the message; otherwise the task's own failure message tries again, later
            fail = ReportedFailure if told else AirflowFailException
            raise fail(f"nightly deployment NOT deployed ({why}; triggered run state: {state})")
        return {"state": state, "triggered_run_id": run_id, **(resolved or {})}
