"""The HTML pages: the map, record pages, the review queue, report forms, the dashboard, login.

Pages are Jinja2 templates with plain ES modules; the data they show comes from the REST API
(``/api/...``) and the vector tiles (``/tiles/...``), so that permissions and organisation
scoping are enforced in one place, the API. A page itself carries only what every visitor of it
may see: the district and operator lists for the map's filters, the form definitions, and for
administrators the disabled accounts whose drafts they may withdraw.
Report forms are the field forms (``io/fieldforms``), which derive their questions from the
record models, so the browser form and the KoboToolbox form ask the same questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import shapely
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, select

from safeground.domain import codes
from safeground.domain.access import Principal
from safeground.domain.errors import NotFound
from safeground.io.fieldforms import FORMS, get_form
from safeground.service import accounts
from safeground.storage.schema import record_tables
from safeground.web import basemap, dashboard, risk
from safeground.web.deps import MAX_ID, CurrentPrincipal, get_register, get_settings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# The map's layers, bottom to top, with the legend's wording.
MAP_LAYERS = (
    ("admin_area", "Districts"),
    ("hazardous_area", "Hazardous areas"),
    ("processed_land", "Processed land"),
    ("task", "Tasks"),
    ("eo_item", "Items found"),
    ("accident", "Accidents"),
)
# Whole world, until the register has admin areas or hazards to frame.
WORLD = (-180.0, -60.0, 180.0, 75.0)
# Hazards sampled to frame the map when there are no admin areas.
FRAME_SAMPLE = 5000


def add_pages(app: FastAPI) -> None:
    """The pages, their static files, the base map and the dashboard API, on ``app``."""
    app.include_router(router)
    app.include_router(basemap.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


def _render(
    request: Request, template: str, principal: Principal, status_code: int = 200, **context: Any
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {"me": principal, "forms": FORMS, "page": template.removesuffix(".html"), **context},
        status_code=status_code,
    )


def _login_first(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: CurrentPrincipal, next: str = "/") -> Response:
    # Only a path on this site, never another host.
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return _render(request, "login.html", principal, next=target)


@router.get("/", response_class=HTMLResponse)
async def map_page(request: Request, principal: CurrentPrincipal) -> Response:
    store = get_register(request).store

    def read() -> dict[str, Any]:
        with store.read() as conn:
            return {
                "districts": _names(conn, "admin_area"),
                "operators": _names(conn, "organisation") if principal.sees_records else [],
                "bounds": _frame(conn, principal.sees_records),
            }

    context = await run_in_threadpool(read)
    risk_entries = await run_in_threadpool(risk.layer_entries, request, principal)
    return _render(
        request,
        "map.html",
        principal,
        layers=MAP_LAYERS,
        statuses=list(codes.HazardStatus),
        classifications=list(codes.Classification),
        land_types=list(codes.LandType),
        **_base_map(request),
        risk=risk_entries[0] if risk_entries else None,
        **context,
    )


def _base_map(request: Request) -> dict[str, Any]:
    """The configured base map as the pages' maps draw it (``base_map``, for ``data-base-map``;
    None without one), and why it cannot be drawn (``base_map_problem``). A missing or broken
    file is said on the page, above the register's own layers, rather than failing the page:
    a clerk can still file a report while the base map is mended."""
    try:
        base = basemap.describe(get_settings(request).base_map)
    except NotFound as problem:
        return {"base_map": None, "base_map_problem": str(problem)}
    return {"base_map": base.as_dict() if base else None, "base_map_problem": None}


def _names(conn: Connection, record_type: str) -> list[tuple[str, str]]:
    table = record_tables[record_type]
    query = select(table.c.record_id, table.c.name).order_by(table.c.name)
    return [(row.record_id, row.name) for row in conn.execute(query)]


def _frame(conn: Connection, hazards: bool) -> tuple[float, float, float, float]:
    """Bounds to open the map on: (a sample of) the hazardous areas for those who see them,
    else the admin areas, else the world."""
    sources = [("hazardous_area", FRAME_SAMPLE)] if hazards else []
    for record_type, limit in [*sources, ("admin_area", None)]:
        table = record_tables[record_type]
        query = select(table.c.geometry).where(table.c.geometry.is_not(None)).limit(limit)
        geometries = [g for g in conn.scalars(query) if g is not None]
        if geometries:
            minx, miny, maxx, maxy = shapely.total_bounds(geometries)
            return (float(minx), float(miny), float(maxx), float(maxy))
    return WORLD


@router.get("/records/{record_id}", response_class=HTMLResponse)
def record_page(request: Request, record_id: str, principal: CurrentPrincipal) -> Response:
    if not principal.is_authenticated:
        return _login_first(request)
    return _render(request, "record.html", principal, record_id=record_id, **_base_map(request))


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, principal: CurrentPrincipal) -> Response:
    if not principal.is_authenticated:
        return _login_first(request)
    # An administrator withdraws the drafts of disabled accounts: the Drafts tab offers it.
    disabled: list[str] = []
    if principal.can_manage_users:
        with get_register(request).store.read() as conn:
            disabled = [a.username for a in accounts.list_accounts(conn) if a.disabled_at]
    return _render(request, "reports.html", principal, disabled_accounts=disabled)


@router.get("/reports/new", response_class=HTMLResponse)
async def report_form_page(
    request: Request,
    principal: CurrentPrincipal,
    form: str = "clearance_progress",
    report: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """A new report, or with ``report`` the draft to reopen: form.js loads it from the API."""
    if not principal.is_authenticated:
        return _login_first(request)
    principal.require(principal.can_draft, "write reports")
    try:
        definition = get_form(form)
    except NotFound:
        known = ", ".join(FORMS)
        message = f"No form {form!r}; the forms are {known}."
        return _render(request, "not_found.html", principal, status_code=404, message=message)
    store = get_register(request).store

    def frame() -> tuple[float, float, float, float]:
        with store.read() as conn:
            return _frame(conn, principal.sees_records)

    return _render(
        request,
        "form.html",
        principal,
        form=definition,
        bounds=await run_in_threadpool(frame),
        **_base_map(request),
        report_id=report,
        prefill={k: v for k, v in request.query_params.items() if k not in ("form", "report")},
    )


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, principal: CurrentPrincipal) -> Response:
    return _render(request, "dashboard.html", principal)
