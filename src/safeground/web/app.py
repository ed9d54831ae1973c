"""The web application: ``create_app(settings)`` builds it on one register.

Errors the register raises become 4xx JSON answers of one shape, ``{"detail": ..., "problems":
[{"field": ..., "message": ...}]}``, so that a form can show each problem next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from safeground.domain.access import AccessDenied, LoginRequired
from safeground.domain.errors import (
    NotFound,
    SafegroundError,
    ValidationFailed,
    WorkflowError,
)
from safeground.service.accounts import TooManyAttempts
from safeground.service.register import Register
from safeground.web.api import router as api_router
from safeground.web.fieldforms import router as fieldforms_router
from safeground.web.pages import add_pages
from safeground.web.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    register = Register.open(settings.store)
    register.store.migrate()  # a register made before the web tables gets them
    app = FastAPI(
        title="Safeground",
        summary="The national mine action register: records, reports, approval, ledger.",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.register = register
    _add_error_handlers(app)
    _limit_request_size(app, settings.max_upload_bytes)
    app.include_router(api_router)
    app.include_router(fieldforms_router)
    add_pages(app)
    return app


def problem_response(
    status: int,
    detail: str,
    problems: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "problems": problems or []}, status_code=status, headers=headers
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ValidationFailed)
    async def invalid(_request: Request, error: ValidationFailed) -> JSONResponse:
        problems = [
            {"field": p.field, "message": p.reason, "record": p.record} for p in error.problems
        ]
        return problem_response(422, str(error), problems)

    @app.exception_handler(RequestValidationError)
    async def malformed(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(part) for part in e["loc"][1:]) or None, "message": e["msg"]}
            for e in error.errors()
        ]
        return problem_response(422, "the request is not valid", problems)

    statuses: list[tuple[type[SafegroundError], int]] = [
        (LoginRequired, 401),
        (AccessDenied, 403),
        (NotFound, 404),
        (WorkflowError, 409),
    ]
    for kind, status in statuses:
        app.add_exception_handler(kind, _plain(status))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(error.status_code, str(error.detail), headers=error.headers)

    @app.exception_handler(TooManyAttempts)
    async def too_many(_request: Request, error: TooManyAttempts) -> JSONResponse:
        return problem_response(429, str(error), headers={"Retry-After": str(error.retry_after_s)})

    @app.exception_handler(SafegroundError)
    async def other(_request: Request, error: SafegroundError) -> JSONResponse:
        return problem_response(400, str(error))


def _plain(status: int) -> Any:
    async def handler(_request: Request, error: Exception) -> JSONResponse:
        return problem_response(status, str(error))

    return handler


def _limit_request_size(app: FastAPI, limit: int) -> None:
    """Refuse a request whose declared body exceeds the upload limit before reading it."""

    @app.middleware("http")
    async def limit_size(request: Request, call_next: Any) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return problem_response(413, f"the request is larger than {limit:,} bytes")
        return await call_next(request)
