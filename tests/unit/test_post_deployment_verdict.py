"""verify.post_deployment_checks: what a round of checks means (latticedb_deploy.post_deployment.verdict),
and that the wait is deferred to the triggerer (no worker slot held for up to the 600 s timeout)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from latticedb_deploy.post_deployment import verdict


def _checks(**failing: str) -> list[dict]:
    names = ("service steady", "targets healthy", "metrics within thresholds", "no new alarms")
    out = []
    for name in names:
        kind = failing.get(name.split()[0])
        check = {"check": name, "passed": kind is None, "detail": kind or "ok"}
        if name.startswith("metrics"):
            check["evaluation"] = {"verdict": "inconclusive" if kind == "quiet" else ("fail" if kind else "pass")}
        out.append(check)
    return out


WINDOW, TIMEOUT, POLL = 20.0, 60.0, 2.0


@pytest.mark.parametrize(
    ("case", "checks", "elapsed", "done", "passed", "failure_has"),
    [
        ("all pass", _checks(), 21, True, True, None),
        ("a slot not steady yet keeps watching", _checks(service="1/2 running"), 5, False, False, None),
        ("not steady at the timeout fails", _checks(service="1/2 running"), 59, True, False, "not healthy after 59s"),
        ("a new alarm fails at once", _checks(no="newly in ALARM since pre-flight: x"), 1, True, False, "newly in ALARM"),
        ("bad metrics keep watching", _checks(metrics="error 9%"), 10, False, False, None),
        ("bad metrics at the timeout fail", _checks(metrics="error 9%"), 58.5, True, False, "metrics within thresholds"),
        ("bad metrics over a whole window fail at once", _checks(metrics="error 9%"), 20, True, False,
         "metrics outside the limits over the whole 20s window"),
        ("bad metrics and a slot still settling fail after a whole window", _checks(metrics="error 9%", service="1/2"),
         21, True, False, "service steady: 1/2"),
        ("quiet metrics before a whole window keep watching", _checks(metrics="quiet"), 10, False, False, None),
        ("quiet metrics over a whole window pass, warned", _checks(metrics="quiet"), 20, True, True, None),
        ("quiet metrics and an unhealthy target do not pass", _checks(metrics="quiet", targets="1/2"), 30, False, False, None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_round_means(case, checks, elapsed, done, passed, failure_has):
    v = verdict(checks, rounds=3, elapsed=elapsed, window_seconds=WINDOW, timeout=TIMEOUT, poll=POLL)
    assert v.done is done, case
    assert (v.failure is None) is (failure_has is None), v.failure
    if failure_has:
        assert v.failure.startswith("post-deployment checks failed: ") and failure_has in v.failure
    if done and passed:
        assert v.report["passed"] is True
        assert bool(v.report["warnings"]) is ("quiet" in case)
    assert v.report["rounds"] == 3 and v.report["timeout_seconds"] == TIMEOUT


class _TI:
    def __init__(self, alarms):
        self.alarms, self.pushed = alarms, {}

    def xcom_pull(self, task_ids, key="return_value"):
        return None  # the operator's input (pre-flight's alarms) is an argument, not pulled by task id

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_the_checks_defer_with_the_preflight_alarms_and_resume_to_a_verdict():
    from latticedb_deploy.operators.post_deployment import PostDeploymentChecksOperator
    from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger
    from tests.unit.test_deferral import _roundtrip

    op = PostDeploymentChecksOperator(task_id="post_deployment_checks",
                                      preflight_incidents={"data": {"alarms": ["latticedb-local-old"]}})
    op.environment = "local"
    ti = _TI(["latticedb-local-old"])
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti, "params": {}})
    trigger = _roundtrip(deferred.value.trigger)
    assert isinstance(trigger, PostDeploymentChecksTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.baseline_alarms == ["latticedb-local-old"]
    assert (trigger.timeout_seconds, trigger.poll_seconds) == (40.0, 2.0)  # the local environment's config
    report = {"passed": True, "checks": _checks(), "rounds": 11, "warnings": []}
    assert op.execute_complete({"ti": ti}, {"passed": True, "report": report, "failure": None}) == report
    failed = {**report, "passed": False}
    with pytest.raises(AirflowFailException, match="post-deployment checks failed: not healthy"):
        op.execute_complete({"ti": ti}, {"passed": False, "report": failed,
                                         "failure": "post-deployment checks failed: not healthy after 60s"})
    assert ti.pushed["return_value"] == failed  # the report stays readable after a failure


@pytest.mark.parametrize(
    ("case", "reuse_seconds", "rounds", "clients_per_round"),
    [
        # Every round of one wait asks AWS with the same clients (a new client is a connection lookup, in a
        # triggerer a round trip to its supervisor); a round that failed to read AWS gets new ones, so a
        # rotated connection is read at the next round rather than failing every round until the timeout.
        ("one set per wait, a new one after a round that could not read AWS", 300.0,
         ["not steady", "ExpiredToken", "not steady", "not steady", "pass"], [0, 0, 1, 1, 1]),
        # A wait that outlives CLIENT_REUSE_SECONDS gets new clients, as any boto_client caller would: an
        # edited connection (new keys, another role) is read within that time even if no round fails.
        ("a new set every CLIENT_REUSE_SECONDS", 0.0, ["not steady", "not steady", "pass"], [0, 1, 2]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_checks_wait_reuses_its_aws_clients(monkeypatch, case, reuse_seconds, rounds, clients_per_round):
    import asyncio
    import time

    from latticedb_deploy import aws, post_deployment
    from latticedb_deploy.triggers.post_deployment import PostDeploymentChecksTrigger

    built: list[object] = []
    used: list[object] = []
    outcomes = iter(rounds)

    class CountedClients:
        def __init__(self, env):
            built.append(self)

    def one_round(env, alarms, since, clients=None):
        used.append(clients)
        outcome = next(outcomes)
        if outcome == "ExpiredToken":
            raise RuntimeError(outcome)
        return _checks() if outcome == "pass" else _checks(service="1/2 running")

    monkeypatch.setattr(post_deployment, "RoundClients", CountedClients)
    monkeypatch.setattr(post_deployment, "checks_round", one_round)
    monkeypatch.setattr(aws, "CLIENT_REUSE_SECONDS", reuse_seconds)
    trigger = PostDeploymentChecksTrigger(environment="local", since=time.time() - 100, baseline_alarms=[],
                                          timeout_seconds=1000, poll_seconds=0.01)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first_event())["passed"] is True
    assert [built.index(c) for c in used] == clients_per_round
    assert len(built) == max(clients_per_round) + 1
