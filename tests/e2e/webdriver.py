"""A tiny W3C WebDriver client over HTTP (requests) for Debian's chromium + chromium-driver.

Enough to log in, click, type, run a script and take screenshots; no selenium dependency.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000", "--lang=en-US",
]


def find_chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if not browser or not Path(driver).exists():
        raise FileNotFoundError("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    return browser, driver


class WebDriverError(RuntimeError):
    pass


class Browser:
    def __init__(self, driver_url: str, session_id: str):
        self.url = f"{driver_url}/session/{session_id}"
        self.http = requests.Session()

    @classmethod
    def start(cls, driver_url: str, browser_binary: str, user_data_dir: str) -> Browser:
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser_binary, "args": [*CHROMIUM_ARGS, f"--user-data-dir={user_data_dir}"]},
        }}}
        r = requests.post(f"{driver_url}/session", json=caps, timeout=60)
        if r.status_code != 200:
            raise WebDriverError(f"new session: {r.status_code} {r.text[:2000]}")
        return cls(driver_url, r.json()["value"]["sessionId"])

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60):
        r = self.http.request(method, f"{self.url}{path}", json=body, timeout=timeout)
        value = r.json().get("value") if r.content else None
        if r.status_code != 200:
            raise WebDriverError(f"{method} {path}: {r.status_code} {value}")
        return value

    # ------------------------------------------------------------------ verbs
    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def current_url(self) -> str:
        return self._call("GET", "/url")

    def execute(self, script: str, *args):
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def text(self) -> str:
        return self.execute("return document.body ? document.body.innerText : ''") or ""

    def find(self, css: str | None = None, xpath: str | None = None) -> str | None:
        using, value = ("xpath", xpath) if xpath else ("css selector", css)
        found = self._call("POST", "/elements", {"using": using, "value": value})
        return found[0][ELEMENT] if found else None

    def wait_find(self, css: str | None = None, xpath: str | None = None, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            el = self.find(css=css, xpath=xpath)
            if el:
                return el
            time.sleep(0.3)
        raise TimeoutError(f"no element {css or xpath} on {self.current_url()}:\n{self.text()[:1500]}")

    def wait_text(self, *needles: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.3)
        missing = [n for n in needles if n not in text]
        raise TimeoutError(f"{missing} not on {self.current_url()}:\n{text[:3000]}")

    def click(self, element: str) -> None:
        self._call("POST", f"/element/{element}/click", {})

    def type(self, element: str, text: str) -> None:
        self._call("POST", f"/element/{element}/value", {"text": text})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def quit(self) -> None:
        try:
            self._call("DELETE", "", timeout=20)
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass


class ChromeDriver:
    """chromedriver on 127.0.0.1:<port> (it only accepts local connections by default)."""

    def __init__(self, driver_binary: str, port: int, log_path: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [driver_binary, f"--port={port}", "--allowed-ips=127.0.0.1"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.user_data_dir = tempfile.mkdtemp(prefix="latticedb-e2e-chromium-")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WebDriverError(f"chromedriver exited with {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/status", timeout=2).json()["value"]["ready"]:
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.3)
        raise TimeoutError("chromedriver not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:  # its own process group: chromedriver and any browser it left
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.user_data_dir, ignore_errors=True)
