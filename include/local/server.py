"""Entry point of the local environment's one long-running process (started by ctl.py up)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latticedb_local.runtime import LocalRuntime  # noqa: E402
from latticedb_local.settings import load_settings  # noqa: E402


def _check_ports_free(settings) -> None:
    for name, port in settings.all_ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((settings.host, port))
            except OSError as exc:
                sys.exit(f"port {port} ({name}) on {settings.host} is not free: {exc}")


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LATTICEDB_LOCAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    _check_ports_free(settings)
    runtime = LocalRuntime(settings)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    runtime.start()
    done.wait()
    logging.getLogger(__name__).info("stopping")
    try:
        runtime.stop()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
