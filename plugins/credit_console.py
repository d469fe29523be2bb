"""The credit console inside Airflow: a FastAPI app mounted at /console by the api-server, and a
link in the Airflow UI's navigation.

Airflow does not protect a plugin's FastAPI endpoints: every route here resolves the caller's
Airflow JWT (the ``Authorization: Bearer`` header, or the ``_token`` cookie the Airflow UI sets at
login) through Airflow's auth manager and checks the caller's roles itself (scoring.console.access).
State-changing requests take JSON bodies only, so a cross-site form cannot post them (and the
cookie is SameSite=Lax). Heavy imports (pandas, the store) happen inside the handlers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

app = FastAPI(
    title="公共信用综合评价控制台 Credit console", docs_url=None, redoc_url=None, openapi_url=None
)
_store = None
_store_lock = threading.Lock()
_bases: dict[tuple, dict] = {}  # planner bases by (agency, period, latest run, plans)
_overdue: dict[tuple, list] = {}  # overdue objections by (run id, status)


def store():
    """The credit store named by CREDIT_DB_URL / CREDIT_HOME, opened once per process."""
    global _store
    with _store_lock:
        if _store is None:
            from scoring.history.store import Store

            _store = Store.open(
                os.environ.get("CREDIT_DB_URL") or None, os.environ.get("CREDIT_HOME") or None
            )
        return _store


async def caller(request: Request) -> tuple[str, list[str]]:
    """The caller's user name and Airflow roles; 401 without a valid token."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    token = token or request.cookies.get("_token")
    try:
        user = await resolve_user_from_token(token)
    except HTTPException as exc:
        raise HTTPException(
            status_code=401, detail=f"未登录 not authenticated: {exc.detail}"
        ) from None
    except Exception:  # a token naming a deleted or inactive user
        raise HTTPException(status_code=401, detail="未登录 not authenticated") from None
    roles = sorted({r.name for r in (getattr(user, "roles", None) or [])})
    return user.get_name(), roles


async def allowed(request: Request, page: str) -> tuple[str, list[str]]:
    from scoring.console.access import Forbidden, require_page

    name, roles = await caller(request)
    try:
        require_page(roles, page)
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    return name, roles


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _agency_ids() -> list[str]:
    from scoring.sampling.rules import agency_ids, registry

    return agency_ids(registry())


def _scope(roles: list[str], agency_id: str) -> None:
    from scoring.console.access import Forbidden, require_agency

    try:
        require_agency(roles, agency_id, _agency_ids())
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc).splitlines()[0])


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException):
    """JSON for the API; a page with the one-line reason (and a way to log in) for the pages."""
    if request.url.path.startswith(_root(request) + "/api/"):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    from console_pages import esc, page

    login = (
        f'<p><a href="/auth/login/?next={esc(request.url.path)}">登录 Airflow Log in</a></p>'
        if exc.status_code == 401
        else ""
    )
    body = f'<p role="alert" class="error">{esc(exc.detail)}</p>{login}'
    title = {401: "请先登录 Please log in", 403: "无权访问 Not allowed"}.get(
        exc.status_code, "错误 Error"
    )
    return HTMLResponse(page(_root(request), title, body), status_code=exc.status_code)


# ------------------------------------------------------------------------------------ pages


@app.get("/", response_class=HTMLResponse)
async def index(request: Request):
    from console_pages import index as render

    from scoring.console.access import pages_for

    name, roles = await caller(request)
    if not pages_for(roles):
        raise HTTPException(
            status_code=403, detail=f"您的角色没有控制台页面 no console page for {name}"
        )
    return render(_root(request), name, pages_for(roles))


def _basis(agency_id: str, period: str | None) -> dict:
    import sqlalchemy as sa

    from scoring.console.planner import basis
    from scoring.history.store import runs, sampling_plans

    s = store()
    with s.engine.connect() as conn:
        latest = conn.execute(
            sa.select(sa.func.max(runs.c.run_id)).where(runs.c.status == "published")
        ).scalar()
        n_plans = conn.execute(sa.select(sa.func.count()).select_from(sampling_plans)).scalar()
    key = (agency_id, period or "", latest, n_plans)
    if key not in _bases:
        _bases.clear()  # one department-period at a time is what a page needs
        _bases[key] = basis(s, agency_id, period or None)
    return _bases[key]


@app.get("/planner", response_class=HTMLResponse)
def planner_page(request: Request, agency: str = "", period: str = ""):
    from console_pages import planner as render

    from scoring.common.errors import PipelineError
    from scoring.console.access import agencies_for, pages_for
    from scoring.sampling.rules import registry

    name, roles = _sync(allowed, request, "planner")
    reg = registry()
    mine = agencies_for(roles, [a["id"] for a in reg["agencies"]])
    shown = [a for a in reg["agencies"] if a["id"] in mine]
    if not shown:
        raise HTTPException(
            status_code=403, detail="您的角色不对应任何部门 no department in your roles"
        )
    agency = agency or shown[0]["id"]
    _scope(roles, agency)
    b, err = None, None
    try:
        b = _basis(agency, period or None)
    except (PipelineError, ValueError) as exc:
        err = str(exc).splitlines()[0]
    return render(_root(request), name, pages_for(roles), shown, b, err)


def _sync(fn, *args):
    """Run an async check from a sync handler (FastAPI runs those in a worker thread)."""
    import anyio.from_thread

    return anyio.from_thread.run(fn, *args)


@app.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_page(request: Request, plan_id: str):
    from console_pages import plan as render

    from scoring.common.errors import PipelineError
    from scoring.console.access import pages_for
    from scoring.console.planner import plan_summary

    name, roles = _sync(allowed, request, "planner")
    try:
        s = plan_summary(store(), plan_id)
    except (PipelineError, ValueError) as exc:
        raise _refused(exc) from None
    _scope(roles, s["agency_id"])
    return render(_root(request), name, pages_for(roles), s)


@app.get("/plans/{plan_id}/files/{filename}")
def plan_file(request: Request, plan_id: str, filename: str):
    from scoring.common.errors import PipelineError
    from scoring.console.planner import public_file
    from scoring.sampling.plans import load_plan

    _, roles = _sync(allowed, request, "planner")
    try:
        _scope(roles, load_plan(store(), plan_id)["agency_id"])
        path = public_file(store(), plan_id, filename)
    except (PipelineError, ValueError) as exc:
        raise _refused(exc) from None
    return FileResponse(path, filename=path.name)


@app.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, run_id: str = "", mode: str = "as-known-then"):
    from console_airflow import rerun_status
    from console_pages import audit as render

    from scoring.console import audit
    from scoring.console.access import pages_for

    name, roles = _sync(allowed, request, "audit")
    s = store()
    manifest = result = err = None
    if run_id:
        try:
            audit.check_mode(mode)
            manifest = audit.readable_manifest(audit.check_run_id(s, run_id))
            state = rerun_status(s.home, run_id, mode)
            result = (
                audit.rerun_result(s.home, run_id, mode) if state.get("state") == "done" else None
            )
        except ValueError as exc:
            err = str(exc)
    return render(
        _root(request),
        name,
        pages_for(roles),
        audit.past_runs(s),
        run_id,
        mode,
        manifest,
        result,
        err,
    )


@app.get("/nights", response_class=HTMLResponse)
def nights_page(request: Request):
    from console_pages import nights as render

    from scoring.console.access import pages_for
    from scoring.console.nights import overdue_objections, overview

    name, roles = _sync(allowed, request, "nights")
    rows = overview(store())
    late = {}
    for n in rows:  # a stored run's batches and date are fixed: its answer is kept
        key = (n["run_id"], n["status"])
        if key not in _overdue:
            _overdue[key] = overdue_objections(store(), n["run_id"])
        late[n["run_id"]] = _overdue[key]
    return render(_root(request), name, pages_for(roles), rows, late)


def _their_agencies(roles: list[str]) -> list[dict] | None:
    """The departments whose scope bounds a user's entity lookups: those of its department
    roles; None (every entity) for the credit agency's own staff, who hold no department role."""
    from scoring.console.access import entity_scope
    from scoring.sampling.rules import registry

    reg = registry()
    mine = entity_scope(roles, [a["id"] for a in reg["agencies"]])
    return None if mine is None else [a for a in reg["agencies"] if a["id"] in mine]


@app.get("/entity", response_class=HTMLResponse)
def entity_page(request: Request, uscc: str = "", run_id: str = ""):
    from console_pages import entity as render

    from scoring.console import entity
    from scoring.console.access import Forbidden, pages_for

    name, roles = _sync(allowed, request, "entity")
    e = err = None
    if uscc:
        try:
            e = entity.lookup(store(), uscc, run_id or None, name, _their_agencies(roles))
        except Forbidden as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from None
        except ValueError as exc:
            err = str(exc)
    return render(
        _root(request),
        name,
        pages_for(roles),
        uscc,
        run_id,
        e,
        err,
        entity.entity_report_available(),
    )


@app.get("/entity/report")
def entity_report(request: Request, uscc: str, run_id: str = ""):
    import shutil
    import tempfile

    from starlette.background import BackgroundTask

    from scoring.common.errors import PipelineError
    from scoring.console import entity
    from scoring.console.access import Forbidden

    name, roles = _sync(allowed, request, "entity")
    if not entity.entity_report_available():
        raise HTTPException(
            status_code=404, detail="信用报告尚不可用 the entity report is not available"
        )
    try:
        e = entity.lookup(store(), uscc, run_id or None, name, _their_agencies(roles))
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except ValueError as exc:
        raise _refused(exc) from None
    from scoring.reporting.entity_report import write_entity_report

    out = Path(tempfile.mkdtemp(prefix="entity-report-"))
    try:
        path = Path(write_entity_report(store(), e["uscc"], e["as_of"], out))
    except (PipelineError, ValueError) as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise _refused(exc) from None
    if path.with_suffix(".pdf").exists():  # the printable copy, where chromium made one
        path = path.with_suffix(".pdf")
    return FileResponse(
        path, filename=Path(path).name, background=BackgroundTask(shutil.rmtree, out, True)
    )


# -------------------------------------------------------------------------------------- API


@app.get("/api/planner")
def api_basis(request: Request, agency: str, period: str = ""):
    from scoring.common.errors import PipelineError

    _, roles = _sync(allowed, request, "planner")
    _scope(roles, agency)
    try:
        return _basis(agency, period or None)
    except (PipelineError, ValueError) as exc:
        raise _refused(exc) from None


@app.get("/api/planner/consequences")
def api_consequences(
    request: Request,
    agency: str,
    period: str = "",
    A: str = "",
    B: str = "",
    C: str = "",
    D: str = "",
):  # noqa: N803
    from scoring.common.errors import PipelineError
    from scoring.console.planner import consequences

    _, roles = _sync(allowed, request, "planner")
    _scope(roles, agency)
    try:
        b = _basis(agency, period or None)
    except (PipelineError, ValueError) as exc:
        raise _refused(exc) from None
    return consequences(b, {"A": A, "B": B, "C": C, "D": D})


@app.post("/api/plans")
async def api_commit(request: Request):
    from starlette.concurrency import run_in_threadpool

    from scoring.common.errors import PipelineError
    from scoring.console.planner import commit

    name, roles = await allowed(request, "planner")
    body = await _json(request)
    agency, period = str(body.get("agency", "")), str(body.get("period", ""))
    _scope(roles, agency)
    try:
        out = await run_in_threadpool(
            commit,
            store(),
            agency,
            period,
            body.get("ratios") or {},
            str(body.get("task") or "routine"),
        )
    except (PipelineError, ValueError) as exc:
        raise _refused(exc) from None
    _bases.clear()
    return out


async def _json(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(
            status_code=415, detail="JSON body required (Content-Type: application/json)"
        )
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return body


@app.post("/api/audit/reruns")
async def api_rerun(request: Request):
    from scoring.console import audit

    name, _ = await allowed(request, "audit")
    body = await _json(request)
    run_id, mode = str(body.get("run_id", "")).strip(), str(body.get("mode", "as-known-then"))
    s = store()
    try:
        audit.check_mode(mode)
        audit.check_run_id(s, run_id)
    except ValueError as exc:
        raise _refused(exc) from None
    from console_airflow import rerun_status, trigger_audit
    from starlette.concurrency import run_in_threadpool

    state = await run_in_threadpool(rerun_status, s.home, run_id, mode)
    if state["state"] in ("queued", "running"):
        return {**state, "run_id": run_id, "mode": mode}
    try:
        dag_run_id = await run_in_threadpool(trigger_audit, run_id, mode, name)
    except ValueError as exc:
        raise _refused(exc) from None
    audit.set_rerun_state(s.home, run_id, mode, state="queued", by=name, dag_run_id=dag_run_id)
    return {"state": "queued", "run_id": run_id, "mode": mode, "dag_run_id": dag_run_id}


@app.get("/api/audit/reruns")
async def api_rerun_state(request: Request, run_id: str, mode: str = "as-known-then"):
    from scoring.console import audit

    await allowed(request, "audit")
    from console_airflow import rerun_status
    from starlette.concurrency import run_in_threadpool

    try:
        state = await run_in_threadpool(rerun_status, store().home, run_id, mode)
        if state["state"] == "done":
            state["result"] = audit.rerun_result(store().home, run_id, mode)
    except ValueError as exc:
        raise _refused(exc) from None
    return state


class CreditConsolePlugin(AirflowPlugin):
    name = "credit_console"
    fastapi_apps = [{"app": app, "url_prefix": "/console", "name": "公共信用控制台 Credit console"}]
    external_views = [
        {
            "name": "信用控制台 Credit console",
            "href": "console/",
            "destination": "nav",
            "url_route": "credit-console",
        }
    ]
