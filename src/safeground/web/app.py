"""The web application: ``create_app(settings)`` builds it on one register."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from safeground.service.layers import EnvelopeCache
from safeground.service.register import Register
from safeground.service.tiles import TileCache
from safeground.storage.generations import ChangeLog
from safeground.web import ogc, risk, tiles
from safeground.web.api import router as api_router
from safeground.web.deps import declare_security
from safeground.web.errors import (
    RequestGuard,
    add_error_handlers,
    describe_errors,
)
from safeground.web.fieldforms import router as fieldforms_router
from safeground.web.pages import add_pages
from safeground.web.retry import DroppedConnections
from safeground.web.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    register = Register.open(settings.store)
    register.store.migrate()  # a register made before the web tables gets them

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Safeground",
        summary="The national mine action register: records, reports, approval, ledger.",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.register = register
    changes = ChangeLog()  # where the views changed, read once for both caches
    app.state.tile_cache = TileCache(log=changes)
    app.state.envelopes = EnvelopeCache(settings.features_kept, changes)
    app.state.risk_verified = risk.Verified()
    add_error_handlers(app)
    app.add_middleware(DroppedConnections)  # inside the guard: a refused request never runs
    app.add_middleware(RequestGuard, limit=settings.max_upload_bytes)
    app.include_router(api_router)
    app.include_router(fieldforms_router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(risk.router)
    add_pages(app)
    describe_errors(app)
    describe_security(app)
    return app


def describe_security(app: FastAPI) -> None:
    """The credentials each operation of ``/api/openapi.json`` takes (``deps.declare_security``),
    and under /ogc the paths as ``/ogc/api`` describes them, so that the two documents agree."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        declare_security(document, app.routes)
        paths = document["paths"]
        for path in [p for p in paths if p == ogc.OGC_PREFIX or p.startswith(ogc.OGC_PREFIX + "/")]:
            del paths[path]
        paths.update(ogc.openapi_paths())
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
