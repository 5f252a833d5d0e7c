"""The review app's HTTP wiring (FastAPI + server-rendered Jinja2): pages, the decisions API, files, export.

Everything a page shows comes from `ReviewDesk` (pipelines/production/review.py); this file only maps
requests to it, checks sessions and CSRF, and sets the security headers.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from catalog.state import ReviewDecision
from pipelines.presets import Preset
from pipelines.production.decisions import REJECT_REASONS, REVIEW_STATES
from pipelines.production.layout import LocalStorage
from pipelines.production.review import CATALOGUE_RUN, GalleryFilter, ReviewDesk
from pipelines.production.stages import derive_from_master
from webapp.review.security import (
    CSRF_HEADER,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    ReviewAuth,
    Session,
    safe_key,
    within,
)

HERE = Path(__file__).resolve().parent
MAX_BATCH = 200  # images per decision request (a product's images, with room)
KEYS = [
    ("j / →", "next"), ("k / ←", "previous"), ("a", "approve"), ("r", "reject (then 1-6 for the reason)"),
    ("u", "undo"), ("Enter", "open / zoom"), ("n / p", "next / previous product"), ("?", "these keys"),
]  # fmt: skip


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["q"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    environment.filters["when"] = lambda stamp: str(stamp).replace("T", " ")[:16]  # to the minute, UTC
    return environment


def _record(record: ReviewDecision | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "decision_id": record.decision_id, "job_id": record.job_id, "decision": record.decision,
        "reason": record.reason, "comment": record.comment, "reviewer": record.reviewer,
        "decided_at": record.decided_at,
    }  # fmt: skip


def create_review_app(
    desk: ReviewDesk, auth: ReviewAuth, presets: dict[str, Preset], *, exports_dir: Path | None = None
) -> FastAPI:
    """The app for one output folder; `exports_dir` is where folder exports go (default: <out>/exports)."""
    app = FastAPI(title="onmodel review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = _templates()
    root = desk.storage.root
    exports = exports_dir or root / "exports"

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # Sessions, CSRF and headers ------------------------------------------------------------------------------

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        session = auth.read_session(request.cookies.get(SESSION_COOKIE))
        fresh_cookie = ""
        if session is None and not auth.required:
            fresh_cookie = auth.new_session(auth.local_reviewer)
            session = auth.read_session(fresh_cookie)
        request.state.session = session
        path = request.url.path
        public = path.startswith("/static/") or path in ("/login", "/health")
        if session is None and not public:
            if request.method == "GET" and not path.startswith("/api/"):
                response: Response = RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)
            else:
                response = JSONResponse({"error": "log in first (the session is missing or expired)"}, 401)
        elif request.method not in ("GET", "HEAD") and path != "/login" and not _csrf_ok(request, session):
            response = JSONResponse(
                {"error": "the request lacks this session's CSRF token; reload the page and try again"}, 403
            )
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if fresh_cookie:
            _set_cookie(response, fresh_cookie)
        return response

    def _csrf_ok(request: Request, session: Session | None) -> bool:
        if session is None:
            return False
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host", ""):
            return False  # another site's page posting here
        token = request.headers.get(CSRF_HEADER) or request.query_params.get("csrf")
        return session.csrf_ok(token)

    def page(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        session: Session | None = request.state.session
        html = templates.get_template(name).render(
            reviewer=session.reviewer if session else "",
            csrf=session.csrf if session else "",
            login_needed=auth.required,
            keys=KEYS,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page("message.html.j2", request, 404, title="Not found", message=what)

    # Pages -------------------------------------------------------------------------------------------------

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return page("login.html.j2", request, next=_local_path(next), error="", users=bool(auth.users))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        target = _local_path(str(form.get("next", "/")))
        reviewer = (
            await run_in_threadpool(auth.login, name, password) if auth.required else auth.local_reviewer
        )
        if reviewer is None:
            error = "Wrong name or password." if auth.users else "Wrong token (or no name given)."
            return page("login.html.j2", request, 401, next=target, error=error, users=bool(auth.users))
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, auth.new_session(reviewer))
        return response

    @app.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request) -> HTMLResponse:
        return page("runs.html.j2", request, runs=desk.runs(), catalogue=CATALOGUE_RUN)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def gallery(
        request: Request,
        run_id: str,
        state: str = "",
        flag: str = "",
        category: str = "",
        q: str = "",
        page_no: int = Query(1, alias="page", ge=1, le=100_000),
    ) -> HTMLResponse:
        filters = GalleryFilter(
            state=state if state in REVIEW_STATES else "", flag=flag, category=category, query=q
        )
        shown = desk.gallery(run_id, filters, page=page_no)
        if shown is None:
            return not_found(request, f"There is no run {run_id!r} in this folder.")
        params = {"state": filters.state, "flag": flag, "category": category, "q": q}
        return page(
            "gallery.html.j2", request, gallery=shown, params=params, states=REVIEW_STATES, run_id=run_id,
            reasons=REJECT_REASONS, presets=sorted(presets), catalogue=CATALOGUE_RUN,
        )  # fmt: skip

    @app.get("/runs/{run_id}/products/{sku}", response_class=HTMLResponse)
    def product(request: Request, run_id: str, sku: str) -> HTMLResponse:
        found = desk.product(run_id, sku)
        if found is None:
            return not_found(request, f"There is no product {sku!r} in run {run_id!r}.")
        item, (previous, following) = found
        metadata = {image.job.job_id: desk.image_metadata(image.image) for image in item.images}
        histories = {image.job.job_id: desk.history(image.job.job_id) for image in item.images}
        return page(
            "product.html.j2", request, item=item, run_id=run_id, previous=previous, following=following,
            metadata=metadata, histories=histories, reasons=REJECT_REASONS, catalogue=CATALOGUE_RUN,
        )  # fmt: skip

    # Decisions ---------------------------------------------------------------------------------------------

    @app.post("/api/runs/{run_id}/decisions")
    async def decide(request: Request, run_id: str) -> JSONResponse:
        session: Session = request.state.session
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "send JSON: {job_ids, decision, reason, comment, seen}"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "send a JSON object"}, 400)
        job_ids = body.get("job_ids")
        if not isinstance(job_ids, list) or not job_ids or len(job_ids) > MAX_BATCH:
            return JSONResponse({"error": f"job_ids: a list of 1..{MAX_BATCH} image ids"}, 400)
        seen = body.get("seen") if isinstance(body.get("seen"), dict) else None
        try:
            outcomes = await run_in_threadpool(
                desk.decide, run_id, [str(j) for j in job_ids], str(body.get("decision", "")),
                reviewer=session.reviewer, reason=str(body.get("reason", "")), comment=str(body.get("comment", "")),
                seen={str(k): int(v) for k, v in seen.items()} if seen else None,
            )  # fmt: skip
        except LookupError as error:
            return JSONResponse({"error": str(error)}, 404)
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": str(error)}, 422)
        return JSONResponse(
            {"decisions": [{**(_record(o.record) or {}), "overrode": _record(o.overrode)} for o in outcomes]}
        )

    @app.post("/api/runs/{run_id}/undo")
    async def undo(request: Request, run_id: str) -> JSONResponse:
        session: Session = request.state.session
        try:
            body = await request.json()
            job_id = str(body["job_id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send JSON: {job_id}"}, 400)
        try:
            record = await run_in_threadpool(desk.undo, run_id, job_id, reviewer=session.reviewer)
        except LookupError as error:
            return JSONResponse({"error": str(error)}, 404)
        return JSONResponse({"decision": _record(record), "undone": record is not None})

    @app.get("/api/jobs/{job_id}/history")
    def history(job_id: str) -> JSONResponse:
        return JSONResponse({"history": [_record(r) for r in desk.history(job_id)]})

    # Files and export --------------------------------------------------------------------------------------

    @app.get("/files/{path:path}")
    def files(request: Request, path: str) -> Response:
        key = safe_key(path)
        found = within(root, key) if key else None
        if found is None:
            return not_found(request, "No such file.")
        return FileResponse(found, headers={"Cache-Control": "private, max-age=60"})

    @app.post("/runs/{run_id}/export")
    async def export(request: Request, run_id: str) -> Response:
        form = await request.form()
        preset = presets.get(str(form.get("preset", "")))
        if preset is None:
            return JSONResponse({"error": f"choose a preset: {', '.join(sorted(presets))}"}, 422)
        jobs = await run_in_threadpool(desk.approved_jobs, run_id)
        if not jobs:
            return page("message.html.j2", request, 409, title="Nothing to export",
                        message="No image of this run is approved yet.")  # fmt: skip
        as_zip = str(form.get("as", "zip")) == "zip"
        name = f"{run_id}-{preset.name}"
        if as_zip:
            staging = Path(tempfile.mkdtemp(prefix="onmodel-export-"))
            archive = await run_in_threadpool(_export_zip, desk, jobs, preset, staging, name)
            return FileResponse(
                archive, media_type="application/zip", filename=f"{name}.zip",
                background=BackgroundTask(shutil.rmtree, staging, ignore_errors=True),
            )  # fmt: skip
        target = exports / name
        await run_in_threadpool(_export_folder, desk, jobs, preset, target)
        return page("message.html.j2", request, title="Exported",
                    message=f"{len(jobs)} approved images in {preset.name} written to {target}.")  # fmt: skip

    return app


def _export_folder(desk: ReviewDesk, jobs: list[Any], preset: Preset, target: Path) -> None:
    storage = LocalStorage(target)
    for job in jobs:
        derive_from_master(job.sku, job.job_id, [preset], desk.storage, desk.layout, target=storage)


def _export_zip(desk: ReviewDesk, jobs: list[Any], preset: Preset, staging: Path, name: str) -> Path:
    folder = staging / name
    _export_folder(desk, jobs, preset, folder)
    archive = staging / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:  # JPEG/PNG do not compress further
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive


def _set_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/"
    )


def _local_path(target: str) -> str:
    """Only paths on this app after login (no open redirect to another site)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
