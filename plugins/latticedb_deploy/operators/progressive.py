"""latticedb_progressive_delivery: one task group per stage (notify, approval, a triggered strategy run)."""

from __future__ import annotations

from typing import Any

from latticedb_deploy.operators.base import LatticeDBOperator
from latticedb_deploy.operators.strategy_run import StrategyRunOperator, strategy_dag_id


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
