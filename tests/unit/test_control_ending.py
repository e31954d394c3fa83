"""latticedb_control on a deployment that is ending: refused, not accepted and ignored.

Between a step failing for good and the rollback's first step marking the lease `rolling_back` (the
seconds the scheduler takes to start it), and between a rejected switch approval and the run giving the
environment back, a promote or an abort was accepted, reported with an effect, and changed nothing. The
control run now reads the deployment's task states first (`control.ending`).

The rule is pure; here it runs over every task of every deployment DAG, the task ids from the factory.
"""

from __future__ import annotations

import pytest

from latticedb_deploy.control import ACTIONS, APPROVAL_TASK_ID, SWITCH_TASK_ID, ending, ending_refusal
from latticedb_deploy.factory import build_deployment_dag
from latticedb_deploy.strategies import BLUE_GREEN, CANARY, ROLLING

STRATEGIES = {"canary": CANARY, "blue_green": BLUE_GREEN, "rolling": ROLLING}
# Every state a task that has not failed for good may be in (a retry to come is not the end).
NOT_FAILED = (None, "scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule",
              "awaiting_input", "success", "skipped", "upstream_failed", "removed")


def _task_ids(strategy: str) -> list[str]:
    dag = build_deployment_dag(STRATEGIES[strategy], dag_id=f"latticedb_test_ending_{strategy}")
    return list(dag.task_ids)


TASKS = {name: _task_ids(name) for name in STRATEGIES}
CASES = [(name, task) for name, ids in TASKS.items() for task in ids]
# What a refusal says comes next, by where the failed task sits.
NEXT = {
    "rollback": ("its rollback failed at {task}", "environment stays locked", "latticedb_rollback is what restores"),
    "deploy": ("{task} failed, so its rollback runs next", "100 % of traffic whatever is sent", "auto_rollback off"),
    "verify": ("{task} failed, so its rollback runs next", "100 % of traffic whatever is sent", "auto_rollback off"),
    "preflight": ("{task} failed before anything was changed", "ends without deploying"),
    "prepare": ("{task} failed before anything was changed", "ends without deploying"),
    "notify_start": ("{task} failed before anything was changed", "ends without deploying"),
}
AFTER_VERIFY = ("{task} failed after the deployment was verified", "latticedb_rollback is what goes back")


def _before(strategy: str, task: str, state: str | None = "success") -> dict[str, str | None]:
    """The run's states when `task` has just ended: the tasks before it in the DAG succeeded, the rest not run."""
    ids = TASKS[strategy]
    i = ids.index(task)
    return {t: (state if k < i else None) for k, t in enumerate(ids)}


@pytest.mark.parametrize(("strategy", "task"), CASES)
def test_a_task_failed_for_good_is_the_end_and_the_refusal_says_what_comes_next(strategy, task):
    states = {**_before(strategy, task), task: "failed"}
    why = ending(states)
    assert why is not None
    expected = NEXT.get(task.split(".")[0], AFTER_VERIFY)
    assert all(phrase.format(task=task) in why for phrase in expected), (task, why)
    if task.split(".")[0] in ("preflight", "prepare", "notify_start"):
        assert "its rollback" not in why, why  # nothing changed: no rollback promised
    for action in ACTIONS:
        text = ending_refusal(f"latticedb_deploy_{strategy}/manual__1", why, action)
        assert text.startswith(f"latticedb_deploy_{strategy}/manual__1 is ending: ")
        assert f"nothing to {action}" in text and text.endswith("Nothing changed.")


@pytest.mark.parametrize(("strategy", "task"), CASES)
def test_a_task_that_has_not_failed_for_good_is_not_the_end(strategy, task):
    for state in NOT_FAILED:
        if strategy == "blue_green" and task == SWITCH_TASK_ID and state == "skipped":
            continue  # after an approval that said yes, a skipped switch is a rejection: the next test
        states = {**_before(strategy, task), task: state}
        assert ending(states) is None, (task, state)


def test_the_most_telling_failure_is_named_first_among_several():
    """A failed rollback before the step that failed; the step before what failed after it."""
    states = {"preflight.check_image": "success", "deploy.gate_25pct": "failed", "notify_success": "failed",
              "cleanup.delete_old_images": "failed"}
    assert ending(states).startswith("deploy.gate_25pct failed (and 2 more), so its rollback runs next")
    states["rollback.restore_previous_revision"] = "failed"
    assert ending(states).startswith("its rollback failed at rollback.restore_previous_revision (and 3 more)")
    assert ending({"preflight.check_image": "failed", "release_environment": "failed"}).startswith(
        "preflight.check_image failed (and 1 more) before anything was changed")


@pytest.mark.parametrize("switch", [None, "scheduled", "queued", "running", "success", "skipped"])
def test_a_switch_approval_that_said_no_is_the_end(switch):
    """Rejected or timed out: the approval task succeeds and skips the switch and what follows; the run ends
    NOT deployed (notify_success fails afterwards saying so: still the rejection that is named)."""
    states = {**_before("blue_green", APPROVAL_TASK_ID), APPROVAL_TASK_ID: "success", SWITCH_TASK_ID: switch}
    why = ending(states)
    if switch == "skipped":
        assert why is not None and "approval was rejected or timed out" in why and "NOT deployed" in why, why
        assert ending({**states, "notify_success": "failed"}) == why
    else:
        assert why is None, (switch, why)


class _Ti:
    """The control task's ti as far as `_ending` uses it: get_task_states, its arguments checked against the
    Task SDK's own method, answering `answer` (or raising it)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def get_task_states(self, **kwargs):
        import inspect

        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        inspect.signature(RuntimeTaskInstance.get_task_states).bind(**kwargs)
        self.calls.append(kwargs)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


OWNER = "latticedb_deploy_canary/manual__2026-12-07T10:00:00+00:00"
RUN_ID = OWNER.split("/", 1)[1]


@pytest.mark.parametrize(("answer", "expected"), [
    ({RUN_ID: {"deploy.gate_25pct": "failed", "deploy.shift_traffic_to_25pct": "success"}}, "deploy.gate_25pct failed"),
    ({RUN_ID: {"deploy.gate_25pct": "deferred"}}, None),
    ({}, None),  # no such run (a lease naming a run this Airflow does not have)
    ({"manual__other": {"deploy.gate_25pct": "failed"}}, None),  # another run's states are not this one's
    (RuntimeError("API server unreachable"), None),  # acts on the lease alone
])
def test_the_control_task_reads_the_holder_runs_states(answer, expected):
    from latticedb_deploy.operators.control import ControlDeploymentOperator

    ti = _Ti(answer)
    why = ControlDeploymentOperator(task_id="apply")._ending({"ti": ti}, OWNER)
    assert ti.calls == [{"dag_id": "latticedb_deploy_canary", "run_ids": [RUN_ID]}]
    assert (why is None) if expected is None else why.startswith(expected), why
