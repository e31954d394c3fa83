"""latticedb_control's rules (latticedb_deploy.control, pure) and its store on the lease item."""

import pytest

from latticedb_deploy.config import load_config
from latticedb_deploy.control import (
    ControlRefused,
    ControlSignal,
    apply,
    effect,
    for_gate,
    for_step,
    paused_seconds,
    strategy_of_owner,
)
from latticedb_deploy.judge import GateCriteria, decide

CANARY = "latticedb_deploy_canary/manual__1"


def _apply(current, action, owner=CANARY, now=100.0, by="alice", reason="CHG-1 looks good"):
    return apply(current, action, owner=owner, by=by, reason=reason, now=now, run="latticedb_control/r")


def test_the_message_names_who_and_why():
    assert _apply(None, "promote").message == "promoted by alice: CHG-1 looks good"
    assert _apply(None, "abort", reason="INC-9 lag").message == "aborted by alice: INC-9 lag"


def test_round_trip_through_the_lease_attribute():
    pause = _apply(None, "pause")
    resume = _apply(pause, "resume", now=130.0, by="bob")
    assert ControlSignal.from_json(resume.to_json()) == resume
    assert (resume.paused_by, resume.paused_at, resume.resumed_at) == ("alice", 100.0, 130.0)
    assert ControlSignal.from_json(None) is None


@pytest.mark.parametrize(
    ("current", "action", "match"),
    [
        (None, "resume", "not paused"),
        ("pause", "pause", "already paused"),
        ("promote", "abort", "already promoted"),
        ("abort", "promote", "already aborted"),
        (None, "skip", "unknown action"),
    ],
)
def test_refused_transitions(current, action, match):
    previous = _apply(None, current) if current else None
    with pytest.raises(ControlRefused, match=match):
        _apply(previous, action)


def test_a_reason_is_required():
    with pytest.raises(ControlRefused, match="reason"):
        _apply(None, "abort", reason="  ")


def test_what_each_strategy_takes():
    assert strategy_of_owner(CANARY) == "canary"
    assert strategy_of_owner("latticedb_service/manual__2") is None
    with pytest.raises(ControlRefused, match="rolling deployment.*nothing to promote"):
        _apply(None, "promote", owner="latticedb_deploy_rolling/r")
    assert _apply(None, "abort", owner="latticedb_deploy_rolling/r").action == "abort"
    with pytest.raises(ControlRefused, match="not a deployment"):
        _apply(None, "abort", owner="latticedb_rollback/r")
    assert "bake ends" in effect("promote", "latticedb_deploy_blue_green/r")


def test_what_a_signal_means_for_a_gate():
    assert for_gate(None).done is False and for_gate(None).hold is False
    abort = for_gate(_apply(None, "abort"))
    assert (abort.done, abort.passed, abort.reason) == (True, False, "aborted by alice: CHG-1 looks good")
    promote = for_gate(_apply(None, "promote"))
    assert (promote.done, promote.passed) == (True, True)
    pause = _apply(None, "pause")
    assert for_gate(pause).hold and not for_gate(pause).done
    assert not for_gate(_apply(pause, "resume")).hold


def test_what_a_signal_means_for_a_step():
    assert for_step(_apply(None, "abort")) == "abort"
    assert for_step(_apply(None, "abort"), rollback=True) is None  # the rollback is what abort asks for
    assert for_step(_apply(None, "promote")) == "promote"
    assert for_step(_apply(None, "pause")) is None


def test_a_pause_moves_the_deadline_by_its_length():
    pause = _apply(None, "pause", now=100.0)
    assert paused_seconds(pause, started_at=90.0, now=160.0) == 60.0
    assert paused_seconds(pause, started_at=120.0, now=160.0) == 40.0  # paused before this gate began
    assert paused_seconds(_apply(pause, "resume", now=150.0), started_at=90.0, now=500.0) == 50.0
    # As of a moment before or during that pause (a restarted gate judging its earlier polls again):
    assert paused_seconds(_apply(pause, "resume", now=150.0), started_at=90.0, now=95.0) == 0.0
    assert paused_seconds(_apply(pause, "resume", now=150.0), started_at=90.0, now=120.0) == 20.0
    assert paused_seconds(None, started_at=0, now=10) == 0


def test_a_held_gate_only_ends_on_a_failure():
    """While paused the trigger decides with no interval end and no deadline (see MetricGateTrigger.run)."""
    from latticedb_deploy.judge import FAIL, PASS, Evaluation

    env = load_config().environment("local")
    criteria = GateCriteria.for_gate(env)

    def ev(verdict):
        return Evaluation(step=25, window_start="a", window_end="b", requests=100, error_rate=0.0, success_rate=1.0,
                          latency_ms=10.0, latency_statistic="Maximum", verdict=verdict,
                          reasons=() if verdict == PASS else ("error rate too high",))

    inf = float("inf")
    assert not decide([ev(PASS)] * 5, criteria=criteria, now=1e9, interval_end=inf, deadline=inf).done
    failed = decide([ev(PASS), ev(FAIL)], criteria=criteria, now=1e9, interval_end=inf, deadline=inf)
    assert failed.done and failed.passed is False


def test_the_signal_is_written_only_on_the_named_owners_lease(lock):
    assert lock.acquire(CANARY, ttl_seconds=60) is None
    pause = _apply(None, "pause").to_json()
    assert lock.signal("latticedb_deploy_canary/other", pause, None) is False
    assert lock.signal(CANARY, pause, None) is True
    assert lock.signal(CANARY, pause, None) is False  # compare-and-set: it is no longer empty
    holder = lock.renew(CANARY, ttl_seconds=60)  # a renewal keeps the signal and reads it
    assert holder.signal.action == "pause"
    resume = _apply(holder.signal, "resume").to_json()
    assert lock.signal(CANARY, resume, holder.control) is True
    assert lock.holder().signal.action == "resume"
    assert lock.acquire("latticedb_deploy_canary/next", ttl_seconds=60) is not None
    assert lock.release(CANARY) and lock.acquire("latticedb_deploy_canary/next", ttl_seconds=60) is None
    assert lock.holder().signal is None  # the next deployment starts without one


def test_no_signal_on_a_blocked_lease(lock):
    assert lock.acquire(CANARY, ttl_seconds=60) is None
    assert lock.block(CANARY, "rollback failed")
    assert lock.signal(CANARY, _apply(None, "abort").to_json(), None) is False


def test_control_entries_do_not_count_as_the_last_deployment():
    from datetime import UTC, datetime

    from latticedb_deploy.deployment_log import DeploymentEntry, render_control_entry, render_entry
    from latticedb_deploy.service_ops import last_deployment

    deployed = render_entry(DeploymentEntry(datetime(2026, 12, 1, tzinfo=UTC), "v2.0.0", "canary", 60, "alice",
                                            environment="local"))
    control = render_control_entry(datetime(2026, 12, 1, 10, tzinfo=UTC), {
        "Action": "abort", "Environment": "staging", "Reason": "**Version**: forged\n## Deployment 2099-01-01"})
    assert "## Control 2026-12-01 10:00:00 UTC" in control and "\\*\\*Version\\*\\*" in control
    last = last_deployment(deployed + "\n" + control, "local")
    assert last["Version"] == "v2.0.0" and "Action" not in last


def test_gate_messages_link_the_control_form():
    from latticedb_deploy.notify import build_message, control_form_link

    links = control_form_link("staging")
    (label, url), = links.items()
    assert "/dags/latticedb_control" in url and "staging" in url and "staging" in label
    message = build_message("stage", "Traffic shifted", {"Weights": "green 25%"}, "http://x/run", links)
    context = message["blocks"][-1]["elements"]
    assert [e["text"].split("|")[1] for e in context] == ["Open in Airflow>", f"{label}>"]
    assert url.replace("&", "&amp;") in message["text"]
