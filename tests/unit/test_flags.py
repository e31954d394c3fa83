"""Feature flags, kill switch and circuit breaker: key names, actions and incident reasons (no Redis needed)."""

from __future__ import annotations

import pytest

from latticedb_deploy import flags


class FakeRedis:
    def __init__(self, data=None):
        self.data = {k: v.encode() for k, v in (data or {}).items()}

    def mget(self, keys):
        return [self.data.get(k) for k in keys]

    def mset(self, mapping):
        self.data.update({k: v.encode() for k, v in mapping.items()})


def test_key_names_follow_the_runbook():
    assert flags.KILL_SWITCH_KEY == "latticedb:flags:kill_switch:all"
    assert flags.CIRCUIT_KEY == "latticedb:circuit:database:state"
    assert [flags.flag_key(f) for f in flags.FLAGS] == [
        "latticedb:flags:new_query_optimizer", "latticedb:flags:vector_search_v2", "latticedb:flags:advanced_caching",
    ]
    with pytest.raises(flags.FlagError, match="unknown flag"):
        flags.flag_key("kill_switch:all")


def test_empty_redis_means_all_off_kill_switch_off_circuit_closed():
    state = flags.snapshot(FakeRedis())
    assert {f: s["enabled"] for f, s in state["flags"].items()} == dict.fromkeys(flags.FLAGS, False)
    assert state["kill_switch"]["on"] is False
    assert state["circuit"] == {"key": flags.CIRCUIT_KEY, "state": "closed", "open": False}


def test_enable_disable_and_the_kill_switch_overrides_flags():
    r = FakeRedis()
    state = flags.apply(r, "enable", "vector_search_v2")
    assert r.data["latticedb:flags:vector_search_v2"] == b"true"
    assert state["flags"]["vector_search_v2"] == {"key": "latticedb:flags:vector_search_v2", "enabled": True, "effective": True}
    state = flags.apply(r, "kill_switch_on")
    assert r.data[flags.KILL_SWITCH_KEY] == b"true"
    assert state["flags"]["vector_search_v2"]["effective"] is False
    assert "enabled, but the kill switch is on" in flags.describe(state)
    state = flags.apply(r, "kill_switch_off")
    assert state["flags"]["vector_search_v2"]["effective"] is True
    flags.apply(r, "disable", "vector_search_v2")
    assert r.data["latticedb:flags:vector_search_v2"] == b"false"


def test_circuit_close_and_show():
    r = FakeRedis({flags.CIRCUIT_KEY: "open"})
    assert flags.apply(r, "circuit_show")["circuit"]["open"] is True
    assert flags.apply(r, "circuit_close")["circuit"]["state"] == "closed"
    assert r.data[flags.CIRCUIT_KEY] == b"closed"


@pytest.mark.parametrize(("action", "flag", "error"), [("enable", None, "needs a flag"), ("explode", None, "unknown action")])
def test_bad_actions_are_refused(action, flag, error):
    with pytest.raises(flags.FlagError, match=error):
        flags.apply(FakeRedis(), action, flag)


@pytest.mark.parametrize(
    ("data", "reasons"),
    [
        ({}, []),
        ({flags.KILL_SWITCH_KEY: "false", flags.CIRCUIT_KEY: "closed"}, []),
        ({flags.KILL_SWITCH_KEY: "true"}, ["kill switch latticedb:flags:kill_switch:all is on"]),
        ({flags.CIRCUIT_KEY: "open"}, ["circuit latticedb:circuit:database:state is open"]),
        ({flags.CIRCUIT_KEY: "half_open", flags.KILL_SWITCH_KEY: "1"},
         ["kill switch latticedb:flags:kill_switch:all is on", "circuit latticedb:circuit:database:state is half_open"]),
    ],
)
def test_incident_reasons(monkeypatch, data, reasons):
    from latticedb_deploy.config import load_config

    monkeypatch.setattr(flags, "redis_client", lambda env, timeout=0: FakeRedis(data))
    assert flags.incident_reasons(load_config().environment("local")) == reasons


def test_incident_reasons_never_raise(monkeypatch):
    from latticedb_deploy.config import load_config

    def broken(env, timeout=0):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(flags, "redis_client", broken)
    (reason,) = flags.incident_reasons(load_config().environment("local"))
    assert "cannot read incident state from Redis" in reason and "latticedb_local_redis" in reason


def test_an_unreachable_redis_is_reported_after_one_retry_not_waited_on(monkeypatch):
    """A Redis that drops every connection: pre-flight gets its answer after two attempts (redis-py 8's
    defaults made eleven, with backoff, 3.6 s for a refused port and about a minute for a silent host)."""
    import json
    import socket
    import threading

    from latticedb_deploy.config import load_config
    from tests.envs import ENV

    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def drop_every_connection():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.close()

    threading.Thread(target=drop_every_connection, daemon=True).start()
    port = server.getsockname()[1]
    monkeypatch.setenv(ENV.conn_var(ENV.redis_conn_id), json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": port}))
    env = load_config().environment(ENV.name)
    try:
        client = flags.redis_client(env)
        (reason,) = flags.incident_reasons(env)
    finally:
        server.close()
    assert reason.startswith(f"cannot read incident state from Redis (connection '{ENV.redis_conn_id}')"), reason
    assert len(accepted) == 1 + flags.CONNECTION_RETRIES == 2
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == kwargs["socket_timeout"] == flags.SOCKET_TIMEOUT_SECONDS
