"""Feature flags, the bulk kill switch and the database circuit breaker, in Redis.

Key names (the runbook's `manage-flags.sh` / `redis-cli` procedures):

| key | values | meaning |
| --- | --- | --- |
| `latticedb:flags:<flag>` | `true` / `false` | one feature flag (`new_query_optimizer`, `vector_search_v2`, `advanced_caching`); missing = disabled |
| `latticedb:flags:kill_switch:all` | `true` / `false` | bulk kill switch: every flag is effectively off while `true` |
| `latticedb:circuit:database:state` | `closed` / `open` / `half_open` | database circuit breaker; missing = closed |

Reached through the Redis provider's `RedisHook(redis_conn_id=env.redis_conn_id)`, with short
socket timeouts and one retry so an unreachable Redis is an answer, not a hang: redis-py 8's defaults
(5 s timeouts, 10 retries with backoff) took 3.6 s to report a refused connection and would take about
a minute for a host that drops packets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latticedb_deploy.config import Environment

FLAGS = ("new_query_optimizer", "vector_search_v2", "advanced_caching")
FLAG_PREFIX = "latticedb:flags:"
KILL_SWITCH_KEY = "latticedb:flags:kill_switch:all"
CIRCUIT_KEY = "latticedb:circuit:database:state"
ACTIONS = ("show", "enable", "disable", "kill_switch_on", "kill_switch_off", "circuit_show", "circuit_close")
MUTATING_ACTIONS = frozenset(ACTIONS) - {"show", "circuit_show"}
FLAG_ACTIONS = frozenset({"enable", "disable"})
SOCKET_TIMEOUT_SECONDS = 3.0
CONNECTION_RETRIES = 1  # one immediate retry: a dropped connection is retried, a dead Redis is not waited on

_TRUE = {"true", "1", "on", "yes", "enabled"}


class FlagError(ValueError):
    """An unknown flag or action, or an action without the flag it needs."""


def flag_key(flag: str) -> str:
    if flag not in FLAGS:
        raise FlagError(f"unknown flag {flag!r}; known flags: {', '.join(FLAGS)}")
    return f"{FLAG_PREFIX}{flag}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def is_true(value: Any) -> bool:
    text = _text(value)
    return text is not None and text.strip().lower() in _TRUE


def circuit_is_open(value: Any) -> bool:
    """Anything but closed (or unset) counts: open and half_open both mean the database is struggling."""
    text = _text(value)
    return text is not None and text.strip().lower() not in ("", "closed")


def redis_client(env: Environment, timeout: float = SOCKET_TIMEOUT_SECONDS) -> Any:
    """A redis-py client from the environment's Airflow connection, with bounded socket timeouts and
    at most CONNECTION_RETRIES immediate retries (the hook leaves redis-py's defaults, which wait)."""
    from airflow.providers.redis.hooks.redis import RedisHook
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = RedisHook(redis_conn_id=env.redis_conn_id).get_conn()
    pool = getattr(client, "connection_pool", None)
    if pool is not None and hasattr(pool, "connection_kwargs"):
        pool.connection_kwargs["socket_connect_timeout"] = timeout
        pool.connection_kwargs["socket_timeout"] = timeout
    if hasattr(client, "set_retry"):
        client.set_retry(Retry(NoBackoff(), CONNECTION_RETRIES))
    return client


def snapshot(client: Any) -> dict:
    """Every flag (stored and effective value), the kill switch and the circuit state, in one MGET."""
    keys = [flag_key(f) for f in FLAGS] + [KILL_SWITCH_KEY, CIRCUIT_KEY]
    values = client.mget(keys)
    kill = is_true(values[len(FLAGS)])
    circuit = _text(values[len(FLAGS) + 1]) or "closed"
    flags = {}
    for flag, raw in zip(FLAGS, values[: len(FLAGS)], strict=True):
        enabled = is_true(raw)
        flags[flag] = {"key": flag_key(flag), "enabled": enabled, "effective": enabled and not kill}
    return {
        "flags": flags,
        "kill_switch": {"key": KILL_SWITCH_KEY, "on": kill},
        "circuit": {"key": CIRCUIT_KEY, "state": circuit, "open": circuit_is_open(circuit)},
    }


def apply(client: Any, action: str, flag: str | None = None) -> dict:
    """Carry out one action (idempotent SETs); returns the snapshot afterwards plus what changed."""
    if action not in ACTIONS:
        raise FlagError(f"unknown action {action!r}; known actions: {', '.join(ACTIONS)}")
    change: dict[str, str] | None = None
    if action in FLAG_ACTIONS:
        if not flag:
            raise FlagError(f"action {action!r} needs a flag ({', '.join(FLAGS)})")
        change = {flag_key(flag): "true" if action == "enable" else "false"}
    elif action == "kill_switch_on":
        change = {KILL_SWITCH_KEY: "true"}
    elif action == "kill_switch_off":
        change = {KILL_SWITCH_KEY: "false"}
    elif action == "circuit_close":
        change = {CIRCUIT_KEY: "closed"}
    if change:
        client.mset(change)
    state = snapshot(client)
    state["action"] = action
    state["changed"] = change or {}
    return state


def incident_reasons(env: Environment) -> list[str]:
    """Active incidents as Redis records them, for the pre-flight "no active incidents" check.

    Empty when all is well. Never raises: an unreachable Redis is itself reported as a reason.
    """
    try:
        state = snapshot(redis_client(env))
    except Exception as exc:  # noqa: BLE001 - pre-flight reports it; it must not crash
        return [f"cannot read incident state from Redis (connection {env.redis_conn_id!r}): {type(exc).__name__}: {exc}"]
    reasons = []
    if state["kill_switch"]["on"]:
        reasons.append(f"kill switch {KILL_SWITCH_KEY} is on")
    if state["circuit"]["open"]:
        reasons.append(f"circuit {CIRCUIT_KEY} is {state['circuit']['state']}")
    return reasons


def describe(state: dict) -> str:
    """One line per item, for logs and notifications."""
    lines = [
        f"{name}: {'on' if s['effective'] else 'off'}"
        + (" (enabled, but the kill switch is on)" if s["enabled"] and not s["effective"] else "")
        for name, s in state["flags"].items()
    ]
    lines.append(f"kill switch: {'ON' if state['kill_switch']['on'] else 'off'}")
    lines.append(f"circuit breaker (database): {state['circuit']['state']}")
    return "\n".join(lines)
