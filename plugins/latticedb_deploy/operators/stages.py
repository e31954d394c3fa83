"""Operations that span deployments: the nightly redeploy and progressive delivery's stages.

Each stage of work is a triggered strategy DAG (TriggerDagRunOperator, waited for deferrably);
these operators decide what to trigger and tell stakeholders how it went.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from latticedb_deploy.operators.base import LatticeDBOperator

RESOLVE_TASK_ID = "resolve_image"
TRIGGER_TASK_ID = "deploy"


OUTCOME_TASK_ID = "notify_success"  # in a strategy run: XCom `outcome` says whether it deployed
OUTCOME_KEY = "outcome"


def triggered_outcome(ti: Any, dag_id: str, run_id: str, state: str | None) -> dict:
    """What a triggered strategy run did: {"deployed": bool, "outcome", "reason"}.

    A run that ended `success` deployed. A failed run either was not deployed on purpose (an
    approval rejected or timed out: its notify_success recorded that in XCom `outcome`) or failed.
    """
    if state == "success":
        return {"deployed": True, "outcome": "deployed", "reason": None}
    recorded = None
    try:
        recorded = ti.xcom_pull(task_ids=OUTCOME_TASK_ID, key=OUTCOME_KEY, dag_id=dag_id, run_id=run_id)
    except Exception:  # noqa: BLE001 - without it the run simply failed
        recorded = None
    if isinstance(recorded, dict) and recorded.get("deployed") is False:
        return {"deployed": False, "outcome": recorded.get("outcome") or "rejected", "reason": recorded.get("reason")}
    return {"deployed": False, "outcome": "failed", "reason": f"run state {state}"}


class StrategyRunOperator(TriggerDagRunOperator):
    """Trigger a strategy DAG and wait for it deferrably; its failure fails this task *without retries*.

    A failed deployment run is an outcome, not a hiccup: retrying would deploy the same image again.
    The run id is derived from this run and task (`<run_id>__<task_id>`), so a retry after a
    transient error cannot start a second deployment either. A run that was not deployed because
    its approval was rejected (or timed out) fails this task with "NOT deployed: rejected ...":
    promotion stops there. This task's XCom `outcome` says which.
    """

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("trigger_run_id", "{{ run_id }}__{{ ti.task_id }}")
        kwargs.setdefault("wait_for_completion", True)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("poke_interval", 5)
        kwargs.setdefault("allowed_states", ["success"])
        kwargs.setdefault("failed_states", ["failed"])
        super().__init__(**kwargs)

    def execute_complete(self, context: Any, event: Any) -> Any:
        try:
            result = super().execute_complete(context, event)
        except AirflowFailException:
            raise
        except Exception as exc:  # noqa: BLE001 - the triggered deployment failed: final
            _, data = event
            run_id = (data.get("run_ids") or [None])[0]
            outcome = triggered_outcome(context["ti"], self.trigger_dag_id, run_id, data.get(run_id) if run_id else None)
            context["ti"].xcom_push(key=OUTCOME_KEY, value=outcome)
            if outcome["outcome"] in ("rejected", "timed_out"):
                raise AirflowFailException(
                    f"{self.trigger_dag_id} run {run_id}: NOT deployed ({outcome['outcome']}: {outcome['reason']}); "
                    "promotion stops here"
                ) from None
            raise AirflowFailException(str(exc)) from None
        context["ti"].xcom_push(key=OUTCOME_KEY, value={"deployed": True, "outcome": "deployed", "reason": None})
        return result


def strategy_dag_id(strategy: str) -> str:
    return f"latticedb_deploy_{strategy}"


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
        if found is None:
            raise AirflowFailException(
                f"no image in ECR repository {env.ecr_repository!r} has a tag matching {nightly.tag_pattern!r}"
            )
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
            "Run": context["run_id"],
        }
        title = f"Nightly {self.environment}: {(resolved or {}).get('tag', '?')} " + ("deployed" if ok else "NOT deployed")
        notify.send(self.env, "succeeded" if ok else "failed", title, fields, notify.run_link(context))
        if not ok:
            why = f"{outcome['outcome']}: {outcome['reason']}" if outcome else "not started"
            raise AirflowFailException(f"nightly deployment NOT deployed ({why}; triggered run state: {state})")
        return {"state": state, "triggered_run_id": run_id, **(resolved or {})}


class StageNotifyOperator(LatticeDBOperator):
    """Progressive delivery: say that a stage starts, waits for approval, or is done."""

    template_fields = (*LatticeDBOperator.template_fields, "title")

    def __init__(self, *, event: str, title: str, strategy: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.event = event
        self.title = title
        self.strategy = strategy

    def execute(self, context: Any) -> None:
        from latticedb_deploy import notify

        if not self.notify_enabled(context):
            return
        notify.send(
            self.env,
            self.event,
            self.title,
            {"Environment": self.environment, "Strategy": self.strategy, "Image": self.image_uri, "Run": context["run_id"]},
            notify.run_link(context),
        )


def build_stages(stages: Any) -> list:
    """Progressive delivery's graph, one task group per stage, each waiting for the previous one:

    notify_start -> [notify_approval -> approval] -> deploy (triggered strategy DAG, deferrable wait)
    -> notify_done. A failed deploy fails its task and everything after it stays upstream_failed;
    so does a deploy that was not deployed because its own approval said no ("NOT deployed").
    """
    from datetime import timedelta

    from airflow.sdk import TaskGroup, chain

    from latticedb_deploy.config import load_config
    from latticedb_deploy.operators.approval import DeploymentApprovalOperator

    config = load_config()
    groups: list = []
    previous = None
    total = len(stages)
    for i, stage in enumerate(stages, 1):
        env, strategy = stage.environment, stage.strategy
        label = f"Stage {i}/{total}: {env} ({strategy})"
        common = {"environment": env, "strategy": strategy, "image_uri": "{{ params.image_uri }}"}
        with TaskGroup(f"stage{i}_{env}_{strategy}", tooltip=label) as group:
            tasks = [StageNotifyOperator(task_id="notify_start", event="stage", title=f"{label} started", **common)]
            if stage.require_approval:
                tasks.append(
                    StageNotifyOperator(
                        task_id="notify_approval", event="approval_requested",
                        title=f"{label}: approval needed to promote", **common,
                    )
                )
                tasks.append(
                    DeploymentApprovalOperator(  # four eyes where the stage's environment requires it
                        task_id="approval",
                        environment=env,
                        subject=f"Promote {{{{ params.image_uri }}}} to {env} ({strategy})?",
                        body=f"Every earlier stage succeeded. Approve to start the {strategy} deployment to {env}; "
                        "reject to stop promotion here.",
                        response_timeout=timedelta(seconds=config.environment(env).blue_green.approval_timeout_seconds),
                        defaults=None,  # no answer in time fails the stage (as before), rather than rejecting it
                    )
                )
            tasks.append(
                StrategyRunOperator(
                    task_id="deploy",
                    trigger_dag_id=strategy_dag_id(strategy),
                    conf={"image_uri": "{{ params.image_uri }}", "environment": env},
                )
            )
            tasks.append(StageNotifyOperator(task_id="notify_done", event="succeeded", title=f"{label} succeeded", **common))
            chain(*tasks)
        if previous is not None:
            chain(previous, group)
        previous = group
        groups.append(group)
    return groups
