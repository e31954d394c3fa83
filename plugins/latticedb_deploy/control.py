"""Acting on a deployment in flight: promote, pause, resume, abort (latticedb_control). Pure logic.

The signal lives on the environment's lease item (attribute `control`, a JSON string), written by
the control run with a conditional update naming the lease's owner, and read where the deployment
already reads the item: the metric gate's trigger on every poll (it renews the lease there) and every
step that changes anything (`LatticeDBOperator.hold_lease`). Nothing here talks to AWS or Airflow.

One signal per lease, the latest decision:

- `promote`: the canary goes to 100 % at once; the remaining shifts and gates skip; a bake ends.
- `pause`: the gate keeps evaluating (a failure still fails it) but does not pass, and a shift between
  gates waits still judging the share the new slot has; resume lifts it. A pause longer than the
  environment's `max_pause_seconds` fails the held wait (pause_expired): the rollback runs.
- `resume`: a paused gate may pass again; its deadline moves by the time it was paused.
- `abort`: the gate (or the next step) fails with the reason; the run's rollback runs.

promote and abort are final: nothing is accepted after them, until the deployment marks its verify phase.

The deployment marks its phase on the same attribute (markers, not actions a person sends; written with
the same conditional update, so a marker and a person's signal cannot both win):

- `verifying` (verify.smoke_tests starts): traffic is 100 % on the new version; the smoke tests and the
  post-deployment checks run to their verdict. Only `abort` applies: the checks fail with the reason and
  the run's rollback restores the previous version. promote (nothing left to promote), pause and resume
  (no gate or bake to hold) are refused.
- `verified` (verify.post_deployment_checks passed): the run only cleans up and records; its rollback no
  longer runs, so every action is refused: latticedb_rollback is what goes back.
- `rolling_back` (rollback.restore_previous_revision starts putting the last good version back): the
  run's rollback runs to its end whatever is sent, so every action is refused (before, a promote or
  abort sent now was accepted, reported with an effect, and ignored).

- `failing` (a metric gate's trigger, or a paused shift's hold, judged the new version failing, or a
  deployment's rollout wait failed; over no person's signal, a spent resume, or a pause, which the mark
  keeps): the wait's task still has to resume on a worker and fail before
  the rollback starts (seconds); promote, pause and resume are refused from the verdict on, not from the
  failure. An abort goes through (the rollback runs anyway, with its reason). The next deployment step
  that holds the lease clears a mark that outlived its failure (a retried wait that passed), or puts back
  the pause it kept.

A deployment whose steps say it is ending is refused too (`ending`, from the run's task states, read by
the control run before it writes): a step failed for good (the rollback is starting, before its mark), or
its switch approval said no (it ends NOT deployed).

A control run may name the deployment it means (`target`, "<dag_id>/<run_id>" or a run id alone, as
the lease's owner is spelled): a lease held by any other run is refused, nothing written.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict

from latticedb_deploy.models import frozen_model

ACTIONS = ("promote", "pause", "resume", "abort")
FINAL = ("promote", "abort")
# The deployment's own phase markers (not a person's actions).
VERIFYING, VERIFIED, ROLLING_BACK, FAILING = "verifying", "verified", "rolling_back", "failing"
PHASES = (VERIFYING, VERIFIED, ROLLING_BACK, FAILING)
DEPLOYMENT_DAGS = {
    "latticedb_deploy_canary": "canary",
    "latticedb_deploy_blue_green": "blue_green",
    "latticedb_deploy_rolling": "rolling",
}
# What each strategy can act on (rolling has no traffic steps, gates or bake: only abort).
SUPPORTED = {
    "canary": ("promote", "pause", "resume", "abort"),
    "blue_green": ("promote", "pause", "resume", "abort"),
    "rolling": ("abort",),
}


class ControlRefused(ValueError):
    """The action cannot apply to this deployment now; nothing was changed."""


@frozen_model
class ControlSignal:
    action: str
    by: str
    reason: str
    at: float
    run: str = ""  # the latticedb_control run that wrote it
    paused_by: str | None = None  # the pause this signal lifted or holds
    paused_at: float | None = None
    resumed_at: float | None = None
    replaced: str | None = None  # a phase marker: the message of the signal it replaced (e.g. a promote)

    @property
    def paused(self) -> bool:
        return self.action == "pause"

    @property
    def phase(self) -> str | None:
        """The deployment's phase marker (VERIFYING, VERIFIED, ROLLING_BACK, FAILING), or None for a person's signal."""
        return self.action if self.action in PHASES else None

    @property
    def message(self) -> str:
        """What every message of the deployment says about it: "promoted by alice: confident"."""
        verb = {"promote": "promoted", "pause": "paused", "resume": "resumed", "abort": "aborted",
                VERIFYING: "verifying", VERIFIED: "verified", ROLLING_BACK: "rolling back",
                FAILING: "failing"}.get(self.action, self.action)
        return f"{verb} by {self.by}: {self.reason}"

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ControlSignal | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if v is not None}, "message": self.message, "at_utc": clock(self.at)}


def clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "?"


def strategy_of_owner(owner: str) -> str | None:
    """The strategy of the deployment run that holds a lease ("<dag_id>/<run_id>"), or None (not a deployment)."""
    return DEPLOYMENT_DAGS.get(owner.split("/", 1)[0])


# The deployment a control run names (its `deployment` param): "<dag_id>/<run_id>", as the lease's owner
# is spelled, or the run id alone. Run ids as Airflow allows them ([core] allowed_run_id_pattern's default).
_DAG_ID = r"[A-Za-z0-9_.-]{1,250}"
_RUN_ID = r"[A-Za-z0-9_.~:+-]{1,250}"
TARGET_PATTERN = rf"^\s*(?:(?:{_DAG_ID})/)?{_RUN_ID}\s*$|^\s*$"  # empty: whichever deployment holds it


@frozen_model
class Target:
    """The deployment a control run means; `dag_id` None when it named the run id alone."""

    run_id: str
    dag_id: str | None = None

    def __str__(self) -> str:
        return f"{self.dag_id}/{self.run_id}" if self.dag_id else self.run_id

    def matches(self, owner: str) -> bool:
        dag_id, _, run_id = owner.partition("/")
        return run_id == self.run_id and (self.dag_id is None or dag_id == self.dag_id)


def parse_target(text: str | None) -> Target | None:
    """The `deployment` a control run names, or None (empty: whichever deployment holds the environment).

    A malformed value, or a DAG that is not a deployment DAG, is ControlRefused before anything is read."""
    text = (text or "").strip()
    if not text:
        return None
    if not re.fullmatch(TARGET_PATTERN, text):
        raise ControlRefused(
            f"deployment {text!r} is not a deployment run: give \"<dag_id>/<run_id>\" (as the Slack message's control "
            "link names it, e.g. latticedb_deploy_canary/manual__2026-11-26T07:42:36+00:00) or the run id alone; "
            "run ids use letters, digits and _ . ~ : + -. Nothing changed."
        )
    dag_id, slash, run_id = text.rpartition("/") if "/" in text else ("", "", text)
    if slash and dag_id not in DEPLOYMENT_DAGS:
        raise ControlRefused(
            f"deployment {text!r} names DAG {dag_id!r}, which is not a deployment DAG "
            f"({', '.join(DEPLOYMENT_DAGS)}): latticedb_control acts only on deployments. Nothing changed."
        )
    return Target(run_id=run_id, dag_id=dag_id or None)


def phase_marker(phase: str, current: ControlSignal | None, *, owner: str, now: float,
                 reason: str | None = None) -> ControlSignal:
    """The deployment's own mark that it entered `phase` (VERIFYING, VERIFIED, ROLLING_BACK, FAILING), replacing
    `current` (a person's signal it replaces is kept in `replaced`: "aborted by bob: INC-3"); `reason` what the
    mark says, if not the phase's own words."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; one of {', '.join(PHASES)}")
    reason = reason or {VERIFYING: "smoke tests and post-deployment checks running",
                        VERIFIED: "post-deployment checks passed",
                        ROLLING_BACK: "the rollback is putting the last good version back",
                        FAILING: "a wait failed: the rollback starts next"}[phase]
    replaced = current.message if current is not None and current.phase is None else (
        current.replaced if current is not None else None)
    # A failing wait's mark keeps the pause it replaces (who and when: kept_pause puts it back if the mark outlives
    # its failure) or the one a resume lifted.
    paused_by = paused_at = resumed_at = None
    if phase == FAILING and current is not None and current.paused:
        paused_by, paused_at = current.by, current.at
    elif phase == FAILING and current is not None and current.resumed_at is not None:
        paused_by, paused_at, resumed_at = current.paused_by, current.paused_at, current.resumed_at
    return ControlSignal(action=phase, by=owner, reason=reason, at=now, run=owner, replaced=replaced,
                         paused_by=paused_by, paused_at=paused_at, resumed_at=resumed_at)


def kept_pause(mark: ControlSignal | None) -> ControlSignal | None:
    """The person's pause a failing mark kept (phase_marker over a pause), as it was on the lease, or None: what
    goes back on the lease when the mark outlives its failure (a step of the run runs again), so clearing the
    mark does not lift the pause."""
    if mark is None or mark.phase != FAILING or mark.paused_at is None or mark.resumed_at is not None:
        return None
    prefix = f"paused by {mark.paused_by}: "
    reason = mark.replaced[len(prefix):] if (mark.replaced or "").startswith(prefix) else (mark.replaced or "paused")
    return ControlSignal(action="pause", by=mark.paused_by or "?", reason=reason, at=mark.paused_at)


def markable_over(signal: ControlSignal | None) -> bool:
    """Whether a wait that fails may mark the lease FAILING over `signal`: none, a resume (spent: it lifted a
    pause and asks nothing more), or a pause (the wait failed under it: the rollback runs whatever is sent, so a
    resume or promote sent after it must be refused like any other; the mark keeps the pause's who and when).
    A pending promote or abort, or a phase marker, stays as it is."""
    return signal is None or signal.action in ("resume", "pause")


def _refuse_in_phase(current: ControlSignal, action: str, owner: str) -> None:
    """Refuse what a deployment rolling back, in verify or past it cannot act on; abort in verify passes through."""
    if current.action == ROLLING_BACK:
        why = f" (after it was {current.replaced})" if current.replaced else ""
        raise ControlRefused(
            f"{owner} is rolling back{why} since {clock(current.at)}: its rollback puts the last good version back "
            f"with 100 % of traffic and runs to its end whatever is sent, so there is nothing to {action}. The "
            "run's messages say when it is done; latticedb_rollback is for after it. Nothing changed."
        )
    if current.action == FAILING and action != "abort":
        raise ControlRefused(
            f"{owner} is failing since {clock(current.at)} ({current.reason}): its rollback starts next and puts the "
            f"last good version back with 100 % of traffic whatever is sent (with auto_rollback off it leaves traffic "
            f"where it is: latticedb_rollback restores), so there is nothing to {action}. An abort still goes through "
            "(its reason joins the rollback's messages). Nothing changed."
        )
    if current.action == VERIFIED:
        raise ControlRefused(
            f"{owner} is past verify: its post-deployment checks passed at {clock(current.at)} and it is now cleaning "
            f"up and recording the deployment, with 100 % of traffic on the new version. Its rollback no longer runs, "
            f"so there is nothing to {action}: to go back to the previous version, trigger latticedb_rollback (it takes "
            "the environment by force). Nothing changed."
        )
    if current.action == VERIFYING and action != "abort":
        why = ("traffic is already 100 % on the new version: nothing to promote" if action == "promote" else
               f"the smoke tests and post-deployment checks run to their verdict and there is no gate or bake to hold: "
               f"a {action} would be ignored")
        raise ControlRefused(
            f"{owner} is in verify (since {clock(current.at)}): {why}. abort still stops it (the checks fail and the "
            "run's rollback restores the previous version). Nothing changed."
        )


def apply(current: ControlSignal | None, action: str, *, owner: str, by: str, reason: str,
          now: float, run: str = "") -> ControlSignal:
    """The new signal for `action` on the deployment `owner`, or ControlRefused saying why not."""
    if action not in ACTIONS:
        raise ControlRefused(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not reason or not reason.strip():
        raise ControlRefused("a reason is required")
    strategy = strategy_of_owner(owner)
    if strategy is None:
        raise ControlRefused(f"{owner} holds the environment but is not a deployment run: nothing to {action}")
    if action not in SUPPORTED[strategy]:
        raise ControlRefused(
            f"{owner} is a {strategy} deployment: it has no traffic steps, gates or bake, so there is nothing to "
            f"{action} (abort is the only control it takes). Nothing changed."
        )
    if current is not None and current.phase is not None:
        _refuse_in_phase(current, action, owner)
    if current is not None and current.action in FINAL:
        raise ControlRefused(f"{owner} was already {current.message} (at {clock(current.at)}): nothing changed")
    if action == "resume" and (current is None or not current.paused):
        raise ControlRefused(f"{owner} is not paused: nothing to resume")
    if action == "pause" and current is not None and current.paused:
        raise ControlRefused(f"{owner} is already {current.message} (since {clock(current.at)})")
    signal = ControlSignal(action=action, by=by, reason=reason.strip(), at=now, run=run)
    if action == "resume":
        signal = ControlSignal(action=action, by=by, reason=reason.strip(), at=now, run=run,
                               paused_by=current.by, paused_at=current.at, resumed_at=now)
    return signal


@frozen_model
class GateControl:
    """What a signal means for a gate at one poll: finish now (passed or not), or hold a pass."""

    done: bool = False
    passed: bool | None = None
    reason: str = ""
    hold: bool = False  # paused: keep evaluating, but no pass (and no deadline) until resumed


def for_gate(signal: ControlSignal | None) -> GateControl:
    """A gate's reading of the signal: abort fails it, promote passes it, pause holds it (a phase marker or a
    resume: nothing)."""
    if signal is None or signal.action not in ("abort", "promote", "pause"):
        return GateControl()
    if signal.action == "abort":
        return GateControl(done=True, passed=False, reason=signal.message)
    if signal.action == "promote":
        return GateControl(done=True, passed=True, reason=signal.message)
    return GateControl(hold=True, reason=signal.message)


PAUSE_EXPIRED = "longer than max_pause_seconds"


def pause_expired(signal: ControlSignal | None, now: float, max_seconds: float) -> str | None:
    """Why a pause has lasted too long (the environment's `max_pause_seconds`), or None: a forgotten pause
    fails the held wait, so the rollback puts the last good version back rather than leaving the new one
    serving its share, and the environment held, until someone remembers."""
    if signal is None or not signal.paused or now - signal.at <= max_seconds:
        return None
    return (f"{signal.message} for {(now - signal.at) / 60:.0f} min, {PAUSE_EXPIRED} ({max_seconds:g} s) "
            "with no resume: rolling back to the last good version")


def paused_too_long(signal: ControlSignal | None, now: float, max_seconds: float) -> str | None:
    """What the rollback says of a pause that outlasted `max_pause_seconds`: read from the pause itself, or from
    the `failing` mark the held wait wrote over it as it failed on that (pause_expired's words), else None."""
    if signal is not None and signal.phase == FAILING and PAUSE_EXPIRED in signal.reason:
        return signal.reason
    return pause_expired(signal, now, max_seconds)


def failed_already(signal: ControlSignal | None, since: float | None) -> str | None:
    """The verdict a wait finds on its run's lease as it polls: the reason of a `failing` mark written since the wait
    began (`since`; None: any), or None.

    A wait's trigger restarted (the triggerer restarted) after it marked the run failing must not judge again: a
    pause the mark replaced can no longer be lifted (control refuses a resume over the mark), so a judgement that
    came out otherwise would hold for good. The verdict was made; the wait fails with it. A mark from before the
    wait began is another wait's that outlived its failure (the step before this wait could not clear it:
    LatticeDBOperator.hold_lease is best effort): not a verdict on this one, which judges as ever."""
    if signal is None or signal.phase != FAILING or (since is not None and signal.at < since):
        return None
    return signal.reason


def held_at(signal: ControlSignal | None, at: float) -> bool:
    """Whether latticedb_control's `signal` (the latest) held a gate at moment `at`: paused since before it, or
    paused then and resumed after it."""
    if signal is None:
        return False
    if signal.paused:
        return signal.at <= at
    if signal.paused_at is not None and signal.resumed_at is not None:  # a resume, or a marker written over one
        return signal.paused_at <= at < signal.resumed_at
    return False


def paused_seconds(signal: ControlSignal | None, started_at: float, now: float) -> float:
    """How long a gate that started at `started_at` had been paused by `now`: its deadline moves that much. A
    `now` before the pause (a restarted gate judging its earlier polls again) counts none of it."""
    if signal is None:
        return 0.0
    if signal.paused:
        return max(0.0, now - max(signal.at, started_at))
    if signal.paused_at is not None and signal.resumed_at is not None:  # a resume, or a marker written over one
        return max(0.0, min(now, signal.resumed_at) - max(signal.paused_at, started_at))
    return 0.0


def aborted_by(signal: ControlSignal | None) -> str | None:
    """latticedb_control's abort on the lease ("aborted by bob: INC-3"), also once the rollback's own mark
    replaced it (a retry of the rollback's first step reads the mark)."""
    if signal is None:
        return None
    if signal.action == "abort":
        return signal.message
    if signal.action == ROLLING_BACK and (signal.replaced or "").startswith("aborted by "):
        return signal.replaced
    return None


APPROVAL_TASK_ID, SWITCH_TASK_ID = "deploy.approve_switch", "deploy.switch_traffic"
# What a failed task means for the run, by where it sits (its task group, or its own id at the top level),
# most telling first: the failed task a refusal names, and what happens next.
BEFORE_CHANGE = ("notify_start", "preflight", "prepare")
_ENDINGS = (
    (("rollback",), "its rollback failed at {task}{more}: production may be half restored and the environment stays "
                    "locked (ROLLBACK FAILED); latticedb_rollback is what restores it now"),
    (("deploy", "verify"), "{task} failed{more}, so its rollback runs next and puts the last good version back with "
                           "100 % of traffic whatever is sent (with auto_rollback off it leaves traffic where it is: "
                           "latticedb_rollback restores)"),
    (BEFORE_CHANGE, "{task} failed{more} before anything was changed: the run ends without deploying"),
    ((), "{task} failed{more} after the deployment was verified: the run only finishes up (latticedb_rollback is "
         "what goes back)"),
)


def _phase(task_id: str) -> int:
    group = task_id.split(".")[0]
    return next((i for i, (groups, _) in enumerate(_ENDINGS) if group in groups), len(_ENDINGS) - 1)


def ending(states: dict[str, str | None]) -> str | None:
    """Why a deployment run with these task states ends whatever is sent, or None while a signal can still act.

    A task that failed for good (its retries spent) starts the rollback, or ends the run, some seconds before
    the rollback's first step marks the lease `rolling_back`; a switch approval that said no skips the switch
    and what follows. A signal written in either window was accepted, reported with an effect, and ignored.
    Still not seen here: a wait whose trigger has decided "fail" until its task resumes on a worker (a metric
    gate, a paused shift's hold and a deployment's rollout wait mark the lease FAILING at their verdict instead),
    and a rejection until the approval task has scaled the idle colour down and succeeded."""
    if states.get(APPROVAL_TASK_ID) == "success" and states.get(SWITCH_TASK_ID) == "skipped":
        return "its switch approval was rejected or timed out, so traffic never moved and it ends NOT deployed"
    failed = sorted((t for t, s in states.items() if s == "failed"), key=lambda t: (_phase(t), t))
    if not failed:
        return None
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return _ENDINGS[_phase(failed[0])][1].format(task=failed[0], more=more)


def ending_refusal(owner: str, why: str, action: str) -> str:
    """Why `action` is refused on a deployment that is ending (`why`, from `ending`)."""
    return f"{owner} is ending: {why}. There is nothing to {action}; the run's messages say how it ends. Nothing changed."


def for_step(signal: ControlSignal | None, *, rollback: bool = False) -> str | None:
    """What a step that changes traffic does: "abort" (fail, changing nothing), "promote" (100 % on the
    new slot, then skip), or None (carry on). Rollback steps always carry on: they are what abort asks for."""
    if signal is None or rollback:
        return None
    return signal.action if signal.action in FINAL else None


EFFECTS = {
    "promote": {
        "canary": "100 % on the new slot at the next gate poll (or step); the remaining shifts and gates skip; "
                  "verify and cleanup run as usual",
        "blue_green": "the bake ends at its next poll (traffic is already on the new colour); the old colour is "
                      "scaled down, then verify and cleanup run as usual",
    },
    "pause": {
        "canary": "traffic stays at its weight and is still judged (a failure still rolls back): the gate does not "
                  "pass, nor the next shift start, until resume; past max_pause_seconds the deployment rolls back",
        "blue_green": "the bake keeps evaluating (a failure still rolls back) but does not end until resume; past "
                      "max_pause_seconds the deployment rolls back",
    },
    "resume": {
        "canary": "the gate may pass again at its next poll; its deadline moves by the time it was paused",
        "blue_green": "the bake may end again at its next poll; its deadline moves by the time it was paused",
    },
    "abort": {
        "canary": "the gate (or the next step) fails with the reason at its next poll; the run's rollback puts 100 % "
                  "back on the stable slot",
        "blue_green": "the bake (or the next step) fails with the reason; the run's rollback switches back",
        "rolling": "the rollout wait (or the next step) fails with the reason; the run's rollback restores the "
                   "previous revision",
    },
}


IN_VERIFY = {
    "abort": "the smoke tests or post-deployment checks fail with the reason (the checks at their next poll); the "
             "run's rollback puts 100 % back on the previous version",
}


def effect(action: str, owner: str, current: ControlSignal | None = None) -> str:
    """What the deployment will do about the action (for the control run's messages), given the signal it
    replaces (`current`: a VERIFYING marker means the deployment is in verify)."""
    if current is not None and current.action == VERIFYING and action in IN_VERIFY:
        return IN_VERIFY[action]
    if current is not None and current.action == FAILING and action == "abort":
        return (f"it is failing already ({current.reason}): its rollback starts next whatever is sent, with this abort's "
                "reason in its messages (and the run recorded as aborted)")
    return EFFECTS.get(action, {}).get(strategy_of_owner(owner) or "", "")
