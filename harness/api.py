"""A user's REST client for Airflow 3's public API (/api/v2), authenticated through /auth/token."""

from __future__ import annotations

import time

import requests

from harness.airflow_stack import ADMIN

TERMINAL = {"success", "failed"}


class ApiClient:
    def __init__(self, base_url: str, username: str = ADMIN[0], password: str = ADMIN[1]):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self._credentials = {"username": username, "password": password}
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            r = requests.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=10)
            r.raise_for_status()
            self._token = r.json()["access_token"]
            self.session.headers["Authorization"] = f"Bearer {self._token}"
        return self._token

    def request(self, method: str, path: str, **kw) -> requests.Response:
        self.token()
        kw.setdefault("timeout", 30)
        return self.session.request(method, f"{self.base_url}/api/v2{path}", **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw) -> requests.Response:
        return self.request("PATCH", path, **kw)

    # ------------------------------------------------------------- a user's verbs
    def unpause(self, dag_id: str) -> None:
        r = self.patch(f"/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text

    def trigger(self, dag_id: str, conf: dict) -> requests.Response:
        return self.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})

    def run(self, dag_id: str, run_id: str) -> dict:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        r.raise_for_status()
        return r.json()

    def runs(self, dag_id: str) -> list[dict]:
        r = self.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "-start_date", "limit": 100})
        r.raise_for_status()
        return r.json()["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})
        r.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in r.json()["task_instances"]}

    def wait(self, dag_id: str, run_id: str, timeout: float = 300, on_poll=None, interval: float = 1.0) -> dict:
        """Poll a run to a terminal state; `on_poll(task_states)` sees every intermediate state."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if on_poll is not None:
                on_poll(self.task_states(dag_id, run_id))
            if run["state"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout}s: "
                                   f"{self.task_states(dag_id, run_id)}")
            time.sleep(interval)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task try's log as the UI shows it, one event per line."""
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                     params={"full_content": "true"}, headers={"Accept": "application/json"})
        r.raise_for_status()
        content = r.json()["content"]
        return "\n".join(str(e.get("event", "")) if isinstance(e, dict) else str(e) for e in content)

    def hitl(self, dag_id: str, run_id: str, task_id: str) -> requests.Response:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, params: dict | None = None):
        return self.patch(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": params or {}},
        )
