"""One deployment per environment: a lease in DynamoDB, taken with a conditional write.

Whichever DAG starts a deployment, it takes the environment's lease first; a second run sees
who holds it. The holder renews the lease before every change and on every poll of its waits
(`renew`, a conditional UpdateItem that is also the fencing check: a run that lost its lease
learns it there and changes nothing). A crashed run's lease expires after `lock_ttl_seconds`.

The emergency rollback takes the lease by force (`take`), recording whom it pre-empted and why;
when it gives the environment back, that record stays on the item without an owner (free for the next
run), so the pre-empted run still learns who stopped it. A run whose rollback failed keeps the lease
(`block`): nobody can take it until a person clears it (`clear`, the latticedb_unlock DAG).

One item per environment (partition key `environment` = its name; nothing else is read or written):
owner, acquired_at, expires_at, renewed_at; after an emergency take: preempted_owner, preempted_by,
preempted_at, reason (and released_at, without an owner, once given back); when a rollback failed:
blocked, blocked_at; when a person acted on the deployment (latticedb_control): control, a JSON string
(latticedb_deploy.control.ControlSignal), written with a conditional update naming the owner (the
deployment writes its verify-phase marks there the same way); once a
deployment recorded what served before it (prepare.record_baseline): last_good, a JSON string of that
baseline, so an emergency rollback that pre-empts the run knows which slot and revision were good (the
weights alone do not say: a canary past 50 % takes more traffic than the stable slot); and baseline_by,
the run that last recorded a baseline (or the emergency rollback that last took the environment). The
item outlives its holders: releasing removes the owner and keeps baseline_by, so a run that lost its
lease can tell whether anyone has changed production since (`retake`, `Holder.baseline_by`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from latticedb_deploy.aws import boto_client
from latticedb_deploy.config import Environment

ATTEMPTS = 5  # conditional writes tried before giving up when the lease changes hands under us


@dataclass(frozen=True)
class Holder:
    owner: str
    acquired_at: float
    expires_at: float
    preempted_owner: str | None = None  # set when this holder took the lease by force from that run
    reason: str | None = None  # why it was taken by force
    blocked: str | None = None  # set when the lease is kept because a rollback failed
    blocked_at: float | None = None
    control: str | None = None  # latticedb_control's signal (JSON), see latticedb_deploy.control
    last_good: str | None = None  # the holder's baseline (JSON): what served before its deployment
    baseline_by: str | None = None  # the run that recorded the latest baseline (or took the lease by force)

    @property
    def baseline(self) -> dict | None:
        """The state the holder's deployment started from (prepare.record_baseline), if it recorded it."""
        return json.loads(self.last_good) if self.last_good else None

    def baseline_is_from(self, owner: str) -> bool:
        """Whether `owner` recorded the environment's latest baseline. A lease item written before
        baseline_by existed has only last_good: that baseline is its holder's."""
        return self.baseline_by == owner or (self.baseline_by is None and self.last_good is not None)

    @property
    def signal(self):
        from latticedb_deploy.control import ControlSignal

        return ControlSignal.from_json(self.control)

    def expired(self, now: float | None = None) -> bool:
        return not self.blocked and self.expires_at < (time.time() if now is None else now)


@dataclass(frozen=True)
class Preemption:
    """The record an emergency take leaves for the run it pre-empted."""

    preempted_owner: str
    preempted_by: str
    reason: str
    preempted_at: float


class LeaseLostError(RuntimeError):
    """This run no longer holds the environment; the message says who does and why."""


class TakeRefusedError(RuntimeError):
    """`take` found the lease held by another run it must not pre-empt (`holder`)."""

    def __init__(self, holder: Holder):
        super().__init__(f"held by {holder.owner}")
        self.holder = holder


class LockUnavailableError(RuntimeError):
    """The conditional write kept failing although nobody seemed to hold the lease."""


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _ttl(env: Environment, ttl_seconds: int | None) -> int:
    ttl = env.lock_ttl_seconds if ttl_seconds is None else ttl_seconds
    if ttl <= 0:
        raise ValueError(f"lock_ttl_seconds must be positive, got {ttl}")
    return ttl


class EnvironmentLock:
    def __init__(self, env: Environment, client: Any = None):
        self.env = env
        self.client = client or boto_client(env, "dynamodb")

    @property
    def _key(self) -> dict:
        return {"environment": {"S": self.env.name}}

    def _item(self) -> dict | None:
        return self.client.get_item(TableName=self.env.lock_table, Key=self._key, ConsistentRead=True).get("Item")

    # ------------------------------------------------------------------ reading
    def holder(self) -> Holder | None:
        """Who holds the environment now (None: free; a record of a past pre-emption is free too)."""
        return self._holder(self._item())

    @staticmethod
    def _holder(item: dict | None) -> Holder | None:
        if not item or "owner" not in item:
            return None

        def s(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return Holder(
            owner=item["owner"]["S"],
            acquired_at=float(item["acquired_at"]["N"]),
            expires_at=float(item["expires_at"]["N"]),
            preempted_owner=s("preempted_owner"),
            reason=s("reason"),
            blocked=s("blocked"),
            blocked_at=float(item["blocked_at"]["N"]) if "blocked_at" in item else None,
            control=s("control"),
            last_good=s("last_good"),
            baseline_by=s("baseline_by"),
        )

    def preemption(self, owner: str) -> Preemption | None:
        """The emergency take that pre-empted `owner`, if the lease item still records it."""
        item = self._item()
        if not item or item.get("preempted_owner", {}).get("S") != owner or "preempted_by" not in item:
            return None
        return Preemption(
            item["preempted_owner"]["S"], item["preempted_by"]["S"], item["reason"]["S"], float(item["preempted_at"]["N"])
        )

    def lost_message(self, owner: str) -> str:
        """Why `owner` no longer holds the environment, naming who does."""
        name = self.env.name
        notice = self.preemption(owner)
        holder = self.holder()
        if notice is not None:
            still = holder is not None and holder.owner == notice.preempted_by
            return (
                f"LEASE LOST: pre-empted by emergency rollback {notice.preempted_by} at {_clock(notice.preempted_at)} UTC "
                f"(reason: {notice.reason}); {'it owns' if still else 'it took'} environment {name!r}"
                f"{'' if still else ' and has since given it back'}. This run changes nothing more."
            )
        if holder is not None:
            return (
                f"LEASE LOST: environment {name!r} is now held by {holder.owner} (since {_clock(holder.acquired_at)} UTC); "
                f"this run's lease expired or was cleared by hand. This run changes nothing more."
            )
        return (
            f"LEASE LOST: this run no longer holds environment {name!r} (its lease was released, or expired and was "
            "cleared). This run changes nothing more."
        )

    # ------------------------------------------------------------------ a deployment's lease
    def acquire(
        self, owner: str, ttl_seconds: int | None = None, now: float | None = None, *, changes_production: bool = False
    ) -> Holder | None:
        """Take (or renew, for the same owner) the lease. Returns None on success, else who holds it.

        `changes_production`: the holder will change the service without recording a baseline (a scale or
        restart); it becomes baseline_by, so no run from before it retakes the lease to roll back (`retake`).

        None is only ever returned after a conditional write that succeeded: when the write fails
        but the holder is gone by the time we look (released, or expired), the write is tried again.
        """
        ttl = _ttl(self.env, ttl_seconds)
        fixed_now = now
        for _ in range(ATTEMPTS):
            now = time.time() if fixed_now is None else fixed_now
            try:
                self._hold(
                    owner, now, ttl,
                    condition="attribute_not_exists(#env) OR attribute_not_exists(#owner) OR "
                    "(attribute_not_exists(blocked) AND (#owner = :owner OR expires_at < :now))",
                    names={"#env": "environment"},
                    set_extra="baseline_by = :owner" if changes_production else "",
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                holder = self.holder()
                if holder is not None and (holder.blocked or (holder.owner != owner and not holder.expired(now))):
                    return holder
                continue  # the holder let go between our write and our read: write again
            return None
        raise LockUnavailableError(
            f"could not take the lease on {self.env.name!r} in {ATTEMPTS} attempts: it changed hands on every try"
        )

    # What a new holder clears: the previous holder's signal, baseline and pre-emption record.
    _PREVIOUS_HOLDERS = (
        "control, last_good, reason, released_at, blocked, blocked_at, "
        "preempted_owner, preempted_by, preempted_at, preempted_blocked"
    )

    def _hold(self, owner: str, now: float, ttl: int, *, condition: str, names: dict | None = None,
              values: dict | None = None, set_extra: str = "", remove: str = _PREVIOUS_HOLDERS) -> None:
        """Make `owner` the holder in one conditional UpdateItem (the item, and its baseline_by, outlive
        holders: see `retake`)."""
        self.client.update_item(
            TableName=self.env.lock_table,
            Key=self._key,
            UpdateExpression=(
                "SET #owner = :owner, acquired_at = :now, expires_at = :expires, renewed_at = :now"
                + (f", {set_extra}" if set_extra else "") + (f" REMOVE {remove}" if remove else "")
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#owner": "owner", **(names or {})},
            ExpressionAttributeValues={
                ":owner": {"S": owner}, ":now": {"N": f"{now:.3f}"}, ":expires": {"N": f"{now + ttl:.3f}"},
                **(values or {}),
            },
        )

    def retake(self, owner: str, ttl_seconds: int | None = None, now: float | None = None) -> bool:
        """Take the lease back for `owner`'s rollback, only if nobody has changed production since `owner`
        recorded its baseline: `owner` is still the item's baseline_by (no later run recorded one, no
        emergency rollback took the environment, nobody cleared the item by hand), nobody holds it (or
        the holder's lease expired) and it is not blocked. Returns whether it did.

        A run that took the lease after `owner` and gave it back without changing anything (its pre-flight
        failed) leaves baseline_by as it was; one that deployed does not."""
        ttl = _ttl(self.env, ttl_seconds)
        now = time.time() if now is None else now
        try:
            self._hold(
                owner, now, ttl,
                condition="baseline_by = :owner AND attribute_not_exists(blocked) AND "
                "(attribute_not_exists(#owner) OR #owner = :owner OR expires_at < :now)",
                remove="control, released_at",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def renew(self, owner: str, ttl_seconds: int | None = None, now: float | None = None) -> Holder:
        """Extend `owner`'s lease; raise LeaseLostError (saying who holds it and why) if it is not `owner`'s.

        The fencing check: called before every change and on every poll of a wait.
        """
        ttl = _ttl(self.env, ttl_seconds)
        now = time.time() if now is None else now
        try:
            # ALL_NEW: the item as this write left it (a control signal on it included), in the same call.
            item = self.client.update_item(
                TableName=self.env.lock_table,
                Key=self._key,
                UpdateExpression="SET expires_at = :expires, renewed_at = :now",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner}, ":now": {"N": f"{now:.3f}"}, ":expires": {"N": f"{now + ttl:.3f}"},
                },
                ReturnValues="ALL_NEW",
            ).get("Attributes")
        except self.client.exceptions.ConditionalCheckFailedException:
            raise LeaseLostError(self.lost_message(owner)) from None
        holder = self._holder(item)
        if holder is None or holder.owner != owner:  # cannot happen after the write above, but never claim it
            raise LeaseLostError(self.lost_message(owner))
        return holder

    def clear_signal(self, owner: str, expected: str) -> bool:
        """Remove the control signal from `owner`'s lease if it is still `expected`; whether it was removed."""
        try:
            self.client.update_item(
                TableName=self.env.lock_table,
                Key=self._key,
                UpdateExpression="REMOVE #control",
                ConditionExpression="#owner = :owner AND #control = :expected",
                ExpressionAttributeNames={"#owner": "owner", "#control": "control"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":expected": {"S": expected}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, owner: str, now: float | None = None) -> bool:
        """Give the lease back if we still hold it; returns whether we did.

        The item stays, without an owner (free): with a record of whom an emergency take pre-empted, and
        baseline_by (see `retake`)."""
        now = time.time() if now is None else now
        try:
            self.client.update_item(
                TableName=self.env.lock_table,
                Key=self._key,
                UpdateExpression=(
                    "REMOVE #owner, acquired_at, expires_at, renewed_at, blocked, blocked_at, control, last_good "
                    "SET released_at = :now"
                ),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":now": {"N": f"{now:.3f}"}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def signal(self, owner: str, control: str, expected: str | None) -> bool:
        """Write a control signal (JSON) on `owner`'s lease, if `owner` still holds it, it is not blocked,
        and its signal is still `expected` (None: none yet). Returns whether it was written."""
        names = {"#owner": "owner", "#control": "control"}
        values: dict[str, Any] = {":owner": {"S": owner}, ":control": {"S": control}}
        condition = "#owner = :owner AND attribute_not_exists(blocked) AND "
        if expected is None:
            condition += "attribute_not_exists(#control)"
        else:
            condition += "#control = :expected"
            values[":expected"] = {"S": expected}
        try:
            self.client.update_item(
                TableName=self.env.lock_table,
                Key=self._key,
                UpdateExpression="SET #control = :control",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _set_as_owner(self, owner: str, update: str, values: dict) -> bool:
        """`SET <update>` on the lease if `owner` holds it; returns whether it did."""
        try:
            self.client.update_item(
                TableName=self.env.lock_table,
                Key=self._key,
                UpdateExpression=f"SET {update}",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}, **values},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_last_good(self, owner: str, baseline: dict) -> None:
        """Write on `owner`'s lease what served before its deployment; LeaseLostError if it is not `owner`'s.

        A new holder (an emergency take too) clears it, so the record goes with the run it describes;
        baseline_by stays, naming the last run that recorded one."""
        baseline_json = {":baseline": {"S": json.dumps(baseline, sort_keys=True)}}
        if not self._set_as_owner(owner, "last_good = :baseline, baseline_by = :owner", baseline_json):
            raise LeaseLostError(self.lost_message(owner))

    # ------------------------------------------------------------------ incidents and emergencies
    def block(self, owner: str, why: str, now: float | None = None) -> bool:
        """Keep `owner`'s lease past its run, because a rollback failed: no expiry, no new holder.

        Returns False when `owner` does not hold the lease (then there is nothing of ours to keep)."""
        now = time.time() if now is None else now
        return self._set_as_owner(owner, "blocked = :why, blocked_at = :now", {":why": {"S": why}, ":now": {"N": f"{now:.3f}"}})

    def take(
        self, owner: str, reason: str, ttl_seconds: int | None = None, now: float | None = None, *,
        unless_held_by: str | None = None,
    ) -> Holder | None:
        """Take the lease by force (emergency rollback), whoever holds it. Returns the previous holder.

        The pre-empted run finds who took it and why on the lease item, also after it was given back.
        `unless_held_by` (a DAG id): a live, unblocked lease of another run of that DAG is not taken
        (TakeRefusedError): two emergency rollbacks of one environment never act at once.
        """
        ttl = _ttl(self.env, ttl_seconds)
        fixed_now = now
        for _ in range(ATTEMPTS):
            now = time.time() if fixed_now is None else fixed_now
            previous = self.holder()
            if (
                unless_held_by and previous is not None and previous.owner != owner
                and previous.owner.startswith(f"{unless_held_by}/") and not previous.blocked and not previous.expired(now)
            ):
                raise TakeRefusedError(previous)
            # The emergency decides what serves from now on: it becomes baseline_by, so no run it pre-empted
            # (or that held the environment before) takes it back to roll back (`retake`).
            sets = ["reason = :reason", "baseline_by = :owner"]
            values: dict[str, Any] = {":reason": {"S": reason}}
            remove = ["control", "last_good", "released_at", "blocked", "blocked_at"]
            if previous is not None and previous.owner != owner:
                sets += ["preempted_owner = :previous", "preempted_by = :owner", "preempted_at = :now"]
                values[":previous"] = {"S": previous.owner}
                if previous.blocked:
                    sets.append("preempted_blocked = :blocked")
                    values[":blocked"] = {"S": previous.blocked}
                else:
                    remove.append("preempted_blocked")
            elif previous is None:  # an older emergency's record goes (baseline_by still fences its run)
                remove += ["preempted_owner", "preempted_by", "preempted_at", "preempted_blocked"]
            if previous is None:
                condition = "attribute_not_exists(#owner)"
            else:
                condition = "#owner = :was"
                values[":was"] = {"S": previous.owner}
            try:
                self._hold(owner, now, ttl, condition=condition, values=values, set_extra=", ".join(sets),
                           remove=", ".join(remove))
            except self.client.exceptions.ConditionalCheckFailedException:
                continue  # someone took or released it between our read and our write: look again
            return previous
        raise LockUnavailableError(f"could not take {self.env.name!r} by force in {ATTEMPTS} attempts")

    def clear(self, expected_owner: str | None = None) -> bool:
        """Delete the lease whatever its state (a person's decision, latticedb_unlock). With it goes
        baseline_by: no run from before takes the environment back to roll back (`retake`).

        With `expected_owner`, only if that is still the holder (so a lease taken meanwhile survives)."""
        kwargs: dict[str, Any] = {}
        if expected_owner is not None:
            kwargs = {
                "ConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": expected_owner}},
            }
        try:
            self.client.delete_item(TableName=self.env.lock_table, Key=self._key, **kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
