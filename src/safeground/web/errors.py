"""Error answers of the web application: one JSON shape for every 4xx,
``{"detail": ..., "problems": [{"field": ..., "message": ...}]}``, so that a form can show each
problem next to its field, and the OpenAPI document that says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safeground.domain.access import AccessDenied, LoginRequired
from safeground.domain.errors import (
    NotFound,
    SafegroundError,
    ValidationFailed,
    WorkflowError,
)
from safeground.service.accounts import TooManyAttempts
from safeground.web.deps import challenge_headers


class FieldProblem(BaseModel):
    field: str | None
    message: str
    record: str | None = None


class ErrorBody(BaseModel):
    detail: str
    problems: list[FieldProblem]


# Declared on the API's routes so that the OpenAPI document describes the real error answers.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (401, "Not logged in, or an unknown API token"),
        (403, "Not allowed for this role or organisation, or a missing CSRF token"),
        (404, "No such record, report or token"),
        (409, "A workflow step out of order"),
        (413, "Upload larger than the limit"),
        (422, "Invalid input: each problem names its field"),
        (429, "Too many failed logins"),
    ]
}


def problem_response(
    status: int,
    detail: str,
    problems: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "problems": problems or []}, status_code=status, headers=headers
    )


def add_error_handlers(app: FastAPI) -> None:
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

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, error: LoginRequired) -> JSONResponse:
        return problem_response(401, str(error), headers=challenge_headers(request))

    statuses: list[tuple[type[SafegroundError], int]] = [
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


def describe_errors(app: FastAPI) -> None:
    """Make the OpenAPI document say what a 422 really is here (FastAPI's default describes
    its own shape, which the handlers above replace), for every router, the API's or not."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (FieldProblem, ErrorBody):
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas[model.__name__].pop("$defs", None)
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = {"$ref": "#/components/schemas/ErrorBody"}
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


NUL_MESSAGE = "text may not contain the NUL character"
_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded")


class RequestGuard:
    """Refuses, before any route runs, a request whose declared body is larger than the upload
    limit (413), and the NUL character in the URL, JSON and form bodies (422, naming where).

    PostgreSQL cannot store NUL in text (a GeoPackage would, silently): refusing it at the
    door keeps both backends alike. Uploaded files are not text and are not checked.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` runs each request in a
    task of its own with streams between, which cost a quarter of a map request's time.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            answer = problem_response(413, f"the request is larger than {self.limit:,} bytes")
            await answer(scope, receive, send)
            return
        where = _nul_in_url(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if where is None and kind in _TEXT_BODIES:
            body = await request.body()
            where = _nul_in_body(kind, body)
            receive = _replay(body, receive)
        if where is not None:
            problem = {"field": where, "message": NUL_MESSAGE}
            await problem_response(422, f"{where}: {NUL_MESSAGE}", [problem])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, already read, for the application; then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _nul_in_body(kind: str, body: bytes) -> str | None:
    if kind == "application/x-www-form-urlencoded":
        return "body" if b"%00" in body or b"\x00" in body else None
    if b"\\u0000" not in body and b"\x00" not in body:
        return None
    try:
        return _nul_in_json(json.loads(body), "body")
    except ValueError:
        return None  # malformed JSON: the route's own validation says so


def _nul_in_url(request: Request) -> str | None:
    if "\x00" in request.scope.get("path", ""):
        return "path"
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            return f"query.{key.replace(chr(0), '')}"
    return None


def _nul_in_json(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        return where if "\x00" in value else None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        inner = f"{where}.{str(key).replace(chr(0), '')}"
        if isinstance(key, str) and "\x00" in key:
            return inner
        found = _nul_in_json(item, inner)
        if found:
            return found
    return None
