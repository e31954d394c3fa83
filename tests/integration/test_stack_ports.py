"""The session's local stack (tests/stack.py) picks free ports, then starts: a port taken in between (another
process's outgoing connection can get it as its ephemeral port) made the whole suite error at set-up. It now
starts again on other ports."""

from __future__ import annotations

import socket

import pytest

from tests import stack

pytestmark = pytest.mark.integration


def test_the_stack_starts_again_on_other_ports_when_one_was_taken(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real, picks = stack._free_ports, []

    def first_pick_has_a_taken_port(n: int) -> list[int]:
        ports = real(n)
        picks.append(ports if picks else [busy, *ports[1:]])
        return picks[-1]

    monkeypatch.setattr(stack, "_free_ports", first_pick_has_a_taken_port)
    monkeypatch.setattr(stack, "session_root", lambda factory: tmp_path)  # its own stack, not the session's
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "0")  # one environment
    try:
        state = stack.ensure_stack(None)
        used = {p for ports in state["environments"].values() for p in ports.values()}
        assert len(picks) == 2 and busy in picks[0] and busy not in used, (picks, used)
        assert not state.get("error"), state
        for port in used:  # every one of them serving
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        taken.close()
        stack.stop_stack(tmp_path)
