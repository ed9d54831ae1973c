"""FastAPI dependencies: the register, the acting principal, permission checks, CSRF.

A request is authenticated by an ``Authorization: Bearer`` API token, by HTTP Basic with an API
token as the password (for GIS clients that cannot send a bearer header), or by the session
cookie; otherwise it acts as the anonymous public. Cookie-authenticated requests that change
something must carry the session's CSRF token in the ``X-CSRF-Token`` header (a cross-site form
cannot set a header, and cannot read the token); token-authenticated requests need no CSRF token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Annotated, Any

import fastapi.routing
from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPBasic, HTTPBearer
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from safeground.domain.access import AccessDenied, LoginRequired, Principal, Role
from safeground.service import accounts
from safeground.service.register import Register
from safeground.web.settings import Settings

# Integer keys are 32-bit on PostgreSQL: larger numbers in a path or query are a 422, not a 500.
MAX_ID = 2**31 - 1
ReportId = Annotated[int, Path(ge=1, le=MAX_ID)]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]

SESSION_COOKIE = "safeground_session"
CSRF_COOKIE = "safeground_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The challenge of a 401 under /ogc (and of refused Basic credentials anywhere): clients that
# send credentials only when challenged (ArcGIS Pro) need it, and QGIS asks for them on it.
BASIC_CHALLENGE = 'Basic realm="safeground", charset="UTF-8"'
OGC_PREFIX = "/ogc"  # where the OGC API is mounted (web.ogc's router)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_register(request: Request) -> Register:
    """The application's register (one per application, opened by ``create_app``)."""
    register: Register = request.app.state.register
    return register


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def csrf_token(settings: Settings, session: str) -> str:
    """The CSRF token of a session: an HMAC keyed by the session's secret, so only the holder of
    the (HttpOnly) session cookie can know it, nothing more is stored, and it survives restarts."""
    message = b"safeground-csrf:" + settings.secret_key.encode()
    return hmac.new(session.encode(), message, hashlib.sha256).hexdigest()


def csrf_protect(request: Request, session: str) -> None:
    """Refuse an unsafe cookie-authenticated request without the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent, csrf_token(get_settings(request), session)):
        raise AccessDenied(f"missing or wrong CSRF token: send the {CSRF_HEADER} header")


class _Declared:
    """A security scheme declared to FastAPI, so that the OpenAPI documents and Swagger UI's
    *Authorize* show the credentials ``current_principal`` takes, and each operation depending
    on it lists them. It reads nothing: ``current_principal`` reads the request itself, and
    FastAPI's own classes would answer some requests differently (``HTTPBasic`` refuses
    malformed or non-ASCII credentials itself, with its own 401)."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


class _Bearer(_Declared, HTTPBearer):
    pass


class _Basic(_Declared, HTTPBasic):
    pass


class _Cookie(_Declared, APIKeyCookie):
    pass


API_TOKEN = _Bearer(
    scheme_name="apiToken",
    bearerFormat="Safeground API token (sg_…)",
    description="An account's API token (`safeground token create`, or `POST /api/tokens` "
    "while logged in), as `Authorization: Bearer sg_…`.",
    auto_error=False,
)
API_TOKEN_BASIC = _Basic(
    scheme_name="apiTokenBasic",
    description="HTTP Basic, for GIS clients that cannot send a bearer header (QGIS, "
    "ArcGIS): the user name is the account's, the password **one of that account's API "
    "tokens**, never its login password (refused). For reading only (GET, HEAD, OPTIONS).",
    auto_error=False,
)
SESSION = _Cookie(
    name=SESSION_COOKIE,
    scheme_name="session",
    description="The browser session cookie that `POST /api/login` sets. Requests other than "
    f"GET, HEAD and OPTIONS also send the session's CSRF token (`{CSRF_HEADER}`, scheme "
    "`csrfToken`).",
    auto_error=False,
)
SCHEMES: tuple[SecurityBase, ...] = (API_TOKEN, API_TOKEN_BASIC, SESSION)
# Not a credential of its own: what a cookie session sends with a change (csrf_protect).
CSRF_SCHEME: dict[str, Any] = {
    "type": "apiKey",
    "in": "header",
    "name": CSRF_HEADER,
    "description": "The session's CSRF token (`csrf_token` of `POST /api/login` and "
    f"`GET /api/me`, or the cookie `{CSRF_COOKIE}`), sent with the session cookie by requests "
    "other than GET, HEAD and OPTIONS.",
}


def security_schemes() -> dict[str, dict[str, Any]]:
    """The credentials ``current_principal`` takes, as OpenAPI security schemes."""
    return {
        scheme.scheme_name: jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        for scheme in SCHEMES
    }


def current_principal(
    request: Request,
    _bearer: Annotated[None, Depends(API_TOKEN)],
    _basic: Annotated[None, Depends(API_TOKEN_BASIC)],
    _session: Annotated[None, Depends(SESSION)],
) -> Principal:
    """Who makes the request; cached on the request so that it is looked up once. (The other
    parameters only declare the credentials it reads, to FastAPI's OpenAPI document.)"""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    register = get_register(request)
    principal = Principal.anonymous()
    header = request.headers.get("Authorization", "")
    session = request.cookies.get(SESSION_COOKIE)
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        found = _token_holder(request, credentials.strip())
        if found is None:
            raise LoginRequired("unknown or revoked API token")
        principal = found
    elif scheme.lower() == "basic":
        principal = _basic_principal(request, credentials)
    elif session:
        idle = timedelta(minutes=get_settings(request).session_idle_minutes)
        found = accounts.principal_for_session(register.store, session, idle)
        if found is not None:
            csrf_protect(request, session)
            principal = found
    request.state.principal = principal
    return principal


def _token_holder(request: Request, token: str) -> Principal | None:
    with get_register(request).store.read_statement() as conn:
        return accounts.principal_for_token(conn, token)


def _basic_principal(request: Request, credentials: str) -> Principal:
    """HTTP Basic for GIS clients (QGIS 3.22 and ArcGIS Pro send no custom header): the user
    name is an account's, the password one of **that account's API tokens**, never its password.

    A token is a revocable credential made for one script or client, and 256 random bits: it
    cannot be guessed, so it needs no rate limit, and checking it is one indexed lookup. An
    account's password sent with every request would bypass the login rate limit and its audit
    (a password-guessing oracle), cost an Argon2 hash per request, and sit in GIS project
    files; so a password is refused like any wrong token, and login failures are not counted.

    Browsers keep Basic credentials once typed and resend them by themselves, as they do cookies,
    so Basic credentials are taken for reading only (GET, HEAD, OPTIONS): a cross-site form can
    change nothing with them. Scripts that write send the token as ``Authorization: Bearer``.
    """
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise LoginRequired("malformed HTTP Basic credentials") from None
    username, colon, token = decoded.partition(":")
    if not colon or not username or not token:
        raise LoginRequired("malformed HTTP Basic credentials: send username:API token")
    if request.method not in SAFE_METHODS:
        raise AccessDenied(
            "HTTP Basic credentials are accepted for reading only: "
            "send the API token as Authorization: Bearer to change anything"
        )
    found = _token_holder(request, token)
    if found is None or found.username != username:
        raise LoginRequired(
            f"HTTP Basic: no live API token of {username!r} matches the password "
            "(the password must be an API token of that account, not its login password)"
        )
    return found


def challenge_headers(request: Request) -> dict[str, str]:
    """``WWW-Authenticate`` for a 401 under /ogc, or when Basic credentials were refused: GIS
    clients then ask for (or retry with) credentials. Not on the rest of a 401: a browser's
    ``fetch`` would pop up its own login dialog over the pages' login form."""
    path = request.url.path
    under_ogc = path == OGC_PREFIX or path.startswith(OGC_PREFIX + "/")
    scheme = request.headers.get("Authorization", "").strip().partition(" ")[0]
    if under_ogc or scheme.lower() == "basic":
        return {"WWW-Authenticate": BASIC_CHALLENGE}
    return {}


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


# The dependencies made by ``require`` that refuse the anonymous public: an operation depending
# on one needs credentials; other operations depending on ``current_principal`` answer without.
_REFUSING_ANONYMOUS: set[Callable[..., Awaitable[Principal]]] = set()


def require(
    predicate: Callable[[Principal], bool], action: str
) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the principal if ``predicate`` holds; 401 or 403 otherwise."""

    # A coroutine, so that FastAPI runs it on the event loop rather than through the thread pool:
    # it only compares, and the hop costs more than the check.
    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(predicate(principal), action)
        return principal

    if not predicate(Principal.anonymous()):
        _REFUSING_ANONYMOUS.add(dependency)
    return dependency


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    return require(lambda p: p.role in roles, f"do this (needs {' or '.join(roles)})")


def declare_security(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Complete the security FastAPI wrote into an OpenAPI ``document`` of ``routes`` from the
    schemes above (one alternative per scheme, on each operation depending on
    ``current_principal``) with what it cannot know: an operation that no ``require``
    dependency guards answers without credentials too (``{}``); HTTP Basic is for reading only;
    a cookie session changes something only with its CSRF token (``session`` and ``csrfToken``
    together). Operations that do not look at the caller stay without ``security``."""
    paths: dict[str, dict[str, Any]] = document.get("paths", {})
    for route in _api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None or "security" not in operation:
                continue
            security: list[dict[str, list[str]]] = operation["security"]
            if method not in SAFE_METHODS:
                security = [r for r in security if API_TOKEN_BASIC.scheme_name not in r]
                security = [
                    {**r, "csrfToken": []} if SESSION.scheme_name in r else r for r in security
                ]
                document["components"]["securitySchemes"]["csrfToken"] = CSRF_SCHEME
            if not any(call in _REFUSING_ANONYMOUS for call in _calls(route.dependant)):
                security = [*security, {}]
            operation["security"] = security


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """The API routes of ``routes``, with their full paths (FastAPI keeps an included router
    as one route; ``iter_route_contexts`` flattens them)."""
    for route in fastapi.routing.iter_route_contexts(routes):
        if isinstance(route.original_route, APIRoute):
            yield route


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)
