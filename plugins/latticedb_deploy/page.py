"""The Deployments page: what runs where, the last deployments, DORA per environment.

A FastAPI app the `latticedb_deployments` Airflow plugin mounts at /latticedb on the api-server.
It reads the history table (latticedb_deploy.aws.history), the lease table (a deployment in
flight) and the production listener (the traffic split) through each environment's own Airflow
AWS connection, so it sees exactly what the deployer role may see. Every route needs an
authenticated Airflow user (the UI's session cookie or a REST API bearer token); the JSON answers
401 without one, the HTML page sends the browser to Airflow's login. Server-rendered HTML, no
JavaScript, no build step.
"""

from __future__ import annotations

import html
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

log = logging.getLogger(__name__)
PAGE_ENVIRONMENTS_ENV = "LATTICEDB_PAGE_ENVIRONMENTS"  # comma-separated; default: those with an AWS connection


async def require_user(request: Request) -> Any:
    """Airflow's own authentication: the bearer token or the UI's session cookie."""
    from airflow.api_fastapi.core_api.security import get_user, oauth2_scheme

    return await get_user(request, await oauth2_scheme(request), await _bearer(request))


async def _bearer(request: Request) -> Any:
    from airflow.api_fastapi.core_api.security import bearer_scheme

    return await bearer_scheme(request)


def _config() -> Any:
    from latticedb_deploy.config import load_config

    return load_config()


def _has_connection(conn_id: str) -> bool:
    try:
        from airflow.sdk.bases.hook import BaseHook
    except ImportError:  # pragma: no cover
        from airflow.hooks.base import BaseHook
    try:
        BaseHook.get_connection(conn_id)
        return True
    except Exception:  # noqa: BLE001 - no connection: the page leaves that environment out
        return False


def page_environments() -> list[Any]:
    config = _config()
    named = [n.strip() for n in os.environ.get(PAGE_ENVIRONMENTS_ENV, "").split(",") if n.strip()]
    if named:
        return [config.environment(n) for n in named]
    return [e for e in config.environments.values() if _has_connection(e.aws_conn_id)]


def _environment(name: str) -> Any:
    try:
        return _config().environment(name)
    except Exception as exc:  # noqa: BLE001
        raise HTTPException(status_code=404, detail=str(exc)) from None


def _records(env: Any, *, days: int | None = None, limit: int | None = None) -> list[Any]:
    from latticedb_deploy.aws.history import HistoryStore

    since = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds") if days else None
    return HistoryStore(env).query(since=since, limit=limit)


_ACTIVE = ("running", "deferred", "up_for_reschedule", "queued", "up_for_retry")
_GATE_PREFIXES = ("deploy.gate_", "deploy.bake", "verify.post_deployment_checks")


def run_progress(dag_id: str, run_id: str, session: Any = None) -> dict:
    """Where a run is: its current step (the task running or waiting in the triggerer) and its last
    gate verdict (the newest finished gate, bake or post-deployment check: passed or the failure's
    reason), read from Airflow's metadata DB (the api-server's own; `session` for another)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from latticedb_deploy.operators.history import FAILURE_KEY

    def read(s: Any) -> dict:
        rows = s.execute(select(TI.task_id, TI.state, TI.start_date, TI.end_date)
                         .where(TI.dag_id == dag_id, TI.run_id == run_id)).all()
        active = sorted((r for r in rows if r.state in _ACTIVE and not r.task_id.endswith("release_environment")),
                        key=lambda r: (r.state not in ("running", "deferred"), -(r.start_date.timestamp() if r.start_date else 0)))
        gates = sorted((r for r in rows if r.task_id.startswith(_GATE_PREFIXES) and r.state in ("success", "failed")
                        and r.end_date is not None), key=lambda r: r.end_date)
        last = None
        if gates:
            g = gates[-1]
            key = "return_value" if g.state == "success" else FAILURE_KEY
            row = s.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, task_ids=g.task_id, key=key)).first()
            value = XComModel.deserialize_value(row) if row is not None else None
            reason = value.get("reason") if isinstance(value, dict) else None
            last = {"task_id": g.task_id, "passed": g.state == "success", "reason": reason,
                    "finished": g.end_date.isoformat(timespec="seconds")}
        return {"current_step": active[0].task_id if active else None,
                "current_state": active[0].state if active else None, "last_gate": last}

    if session is not None:
        return read(session)
    from airflow.utils.session import create_session

    with create_session() as s:
        return read(s)


def environment_state(env: Any, session: Any = None) -> dict:
    """What serves now (newest good record + the live listener), and the deployment in flight (the lease)."""
    state: dict[str, Any] = {"environment": env.name}
    try:
        records = _records(env, limit=50)
        good = next((r for r in records if r.outcome == "succeeded"), None)
        state["serving"] = None if good is None else {
            "version": good.version, "image": good.image, "digest": good.digest, "since": good.finished,
            "run_id": good.run_id, "dag_id": good.dag_id, "run_link": good.run_link,
        }
        state["last_deployment"] = records[0].to_dict() if records else None
    except Exception as exc:  # noqa: BLE001 - one environment's outage must not blank the page
        state["history_error"] = str(exc)[:300]
    try:
        from latticedb_deploy.aws.elbv2 import TrafficClient

        live, idle, weights = TrafficClient(env).live_and_idle()
        state["traffic"] = {live.colour: weights.get(live.target_group_arn, 0), idle.colour: weights.get(idle.target_group_arn, 0)}
    except Exception as exc:  # noqa: BLE001
        state["traffic_error"] = str(exc)[:300]
    try:
        from latticedb_deploy.aws.locks import EnvironmentLock

        holder = EnvironmentLock(env).holder()
        if holder is None or holder.expired():
            state["in_flight"] = None
        else:
            dag_id, _, run_id = holder.owner.partition("/")
            state["in_flight"] = {"dag_id": dag_id, "run_id": run_id, "since": holder.acquired_at,
                                  "run_link": _run_link(dag_id, run_id), "blocked": holder.blocked}
    except Exception as exc:  # noqa: BLE001
        state["lease_error"] = str(exc)[:300]
    if state.get("in_flight"):
        try:
            state["in_flight"].update(run_progress(state["in_flight"]["dag_id"], state["in_flight"]["run_id"], session))
        except Exception as exc:  # noqa: BLE001 - the run's progress is a nicety: the lease already says what is in flight
            state["in_flight"]["progress_error"] = str(exc)[:300]
    return state


def _run_link(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def dora_for(env: Any, days: int) -> dict:
    from latticedb_deploy import dora

    records = _records(env, days=days + 1)  # by start; dora keeps those that finished in the window
    return {**dora.compute(records, env.name, days).to_dict(), "daily": dora.daily_counts(records, env.name, min(days, 30))}


def _deployment_json(r: Any) -> dict:
    d = r.to_dict()
    return {k: d.get(k) for k in (
        "run_id", "dag_id", "strategy", "version", "image", "digest", "outcome", "failed_step", "reason", "started",
        "finished", "duration_seconds", "time_to_restore_seconds", "triggered_by", "approved_by", "run_link",
    )}


def create_app() -> FastAPI:
    app = FastAPI(title="LatticeDB deployments", description="Deployment history, DORA metrics, what runs where.")

    @app.get("/api/environments", dependencies=[Depends(require_user)])
    def environments() -> dict:
        return {"environments": [environment_state(e) for e in page_environments()]}

    @app.get("/api/deployments", dependencies=[Depends(require_user)])
    def deployments(environment: str, limit: int = Query(20, ge=1, le=500)) -> dict:
        env = _environment(environment)
        return {"environment": env.name, "deployments": [_deployment_json(r) for r in _records(env, limit=limit)]}

    @app.get("/api/dora", dependencies=[Depends(require_user)])
    def dora_endpoint(environment: str, days: int = Query(30, ge=1, le=365)) -> dict:
        return dora_for(_environment(environment), days)

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request, days: int = Query(30, ge=1, le=365)) -> Any:
        try:
            await require_user(request)
        except HTTPException:
            return RedirectResponse(f"/auth/login/?next={request.url.path}", status_code=302)
        return HTMLResponse(render_page(page_environments(), days))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:  # 401 as JSON, never a redirect
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return app


# ---------------------------------------------------------------------------------------------- HTML
_OUTCOME_COLOUR = {"succeeded": "#1a7f37", "rolled_back": "#bf8700", "rejected": "#57606a", "failed_before_change": "#57606a",
                   "aborted": "#cf222e", "rollback_failed": "#cf222e"}
_BAND_COLOUR = {"elite": "#1a7f37", "high": "#2da44e", "medium": "#bf8700", "low": "#cf222e", None: "#8c959f"}
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2328}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1rem;min-width:16rem}
.tiles{display:flex;gap:.8rem;flex-wrap:wrap}.tile{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .9rem;min-width:11rem}
.band{color:#fff;border-radius:3px;padding:0 .35rem;font-size:.8rem}table{border-collapse:collapse;font-size:.88rem}
td,th{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}.muted{color:#57606a}
.outcome{font-weight:600}svg{display:block;margin-top:.5rem}"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _tile(title: str, value: str, detail: str, band: str | None) -> str:
    return (f'<div class="tile"><div class="muted">{_e(title)}</div><div style="font-size:1.3rem">{_e(value)}</div>'
            f'<div class="muted">{_e(detail)}</div><span class="band" style="background:{_BAND_COLOUR.get(band)}">'
            f'{_e(band or "no data")}</span></div>')


def _chart(daily: list[dict]) -> str:
    """Deployments (grey) and failures (red) per day, as inline SVG bars."""
    if not daily:
        return ""
    peak = max([d["deployments"] for d in daily] + [1])
    w, h, bar = 8, 40, 6
    parts = [f'<svg width="{len(daily) * w}" height="{h + 2}" role="img" aria-label="deployments and failures per day">']
    for i, d in enumerate(daily):
        dh, fh = h * d["deployments"] / peak, h * d["failures"] / peak
        parts.append(f'<rect x="{i * w}" y="{h - dh:.1f}" width="{bar}" height="{dh:.1f}" fill="#8c959f">'
                     f'<title>{_e(d["date"])}: {d["deployments"]} deployments, {d["failures"]} failed</title></rect>')
        if fh:
            parts.append(f'<rect x="{i * w}" y="{h - fh:.1f}" width="{bar}" height="{fh:.1f}" fill="#cf222e"/>')
    parts.append("</svg>")
    return "".join(parts)


def _progress_html(flight: dict) -> str:
    parts = []
    if flight.get("current_step"):
        parts.append(f'<div>step: <b>{_e(flight["current_step"])}</b> <span class="muted">{_e(flight.get("current_state"))}</span></div>')
    gate = flight.get("last_gate")
    if gate:
        verdict = "passed" if gate["passed"] else "failed"
        parts.append(f'<div>last gate: {_e(gate["task_id"])} {verdict}'
                     f'<div class="muted">{_e((gate.get("reason") or "")[:200])}</div></div>')
    return "".join(parts)


def render_page(environments: list[Any], days: int = 30) -> str:
    body = [f"<h1>LatticeDB deployments</h1><p class='muted'>DORA over the last {days} days "
            f"(<a href='?days=7'>7</a> · <a href='?days=30'>30</a> · <a href='?days=90'>90</a>); bands: 2023 State of DevOps Report.</p>"]
    if not environments:
        body.append("<p>No environment has an AWS connection here (set LATTICEDB_PAGE_ENVIRONMENTS).</p>")
    body.append('<div class="cards">')
    states = {e.name: environment_state(e) for e in environments}
    for name, s in states.items():
        serving = s.get("serving") or {}
        traffic = ", ".join(f"{c} {w} %" for c, w in (s.get("traffic") or {}).items()) or _e(s.get("traffic_error", "unknown"))
        flight = s.get("in_flight")
        flight_html = (f'<a href="{_e(flight["run_link"])}">{_e(flight["dag_id"])}</a> {_e(flight["run_id"])}'
                       + _progress_html(flight) if flight else "none")
        body.append(f'<div class="card"><h2 style="margin-top:0">{_e(name)}</h2>'
                    f'<div>serving <b>{_e(serving.get("version") or "unknown")}</b> '
                    f'<span class="muted">{_e((serving.get("digest") or "")[:19])}</span></div>'
                    f'<div>traffic: {traffic}</div><div>in flight: {flight_html}</div></div>')
    body.append("</div>")
    for env in environments:
        name = env.name
        body.append(f"<h2>{_e(name)}</h2>")
        try:
            m = dora_for(env, days)
        except Exception as exc:  # noqa: BLE001
            body.append(f"<p>history unavailable: {_e(exc)}</p>")
            continue
        bands = m["bands"]
        cfr = m["change_failure_rate"]
        body.append('<div class="tiles">'
                    + _tile("Deployment frequency", f'{m["deployment_frequency_per_day"]:g} / day',
                            f'{m["deployment_frequency_per_week"]:g} / week', bands["deployment_frequency"])
                    + _tile("Lead time for changes", _duration(m["lead_time_seconds"]["median"]),
                            f'P90 {_duration(m["lead_time_seconds"]["p90"])}', bands["lead_time"])
                    + _tile("Change failure rate", "–" if cfr is None else f"{cfr * 100:.0f} %",
                            f'{m["failed_changes"]} of {m["deployments_that_changed_production"]}', bands["change_failure_rate"])
                    + _tile("Time to restore", _duration(m["time_to_restore_seconds"]["median"]),
                            f'P90 {_duration(m["time_to_restore_seconds"]["p90"])}', bands["time_to_restore"])
                    + "</div>" + _chart(m["daily"]))
        rows = _records(env, limit=20)
        body.append("<table><tr><th>finished</th><th>DAG</th><th>version</th><th>outcome</th><th>failed step / reason</th>"
                    "<th>restore</th><th>by</th><th>run</th></tr>")
        for r in rows:
            body.append(
                f"<tr><td>{_e(r.finished[:19].replace('T', ' '))}</td><td>{_e(r.dag_id)}</td><td>{_e(r.version)}</td>"
                f'<td class="outcome" style="color:{_OUTCOME_COLOUR.get(r.outcome, "#1f2328")}">{_e(r.outcome)}</td>'
                f"<td>{_e(r.failed_step or '')}<div class='muted'>{_e((r.reason or '')[:200])}</div></td>"
                f"<td>{_e(_duration(r.time_to_restore_seconds) if r.time_to_restore_seconds is not None else '')}</td>"
                f"<td>{_e(r.triggered_by)}{(' / ' + _e(r.approved_by)) if r.approved_by else ''}</td>"
                f"<td><a href='{_e(_run_link(r.dag_id, r.run_id))}'>{_e(r.run_id)}</a></td></tr>"
            )
        if not rows:
            body.append("<tr><td colspan='8' class='muted'>no deployments recorded yet</td></tr>")
        body.append("</table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>LatticeDB deployments</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>")
