"""FastAPI dependencies: the register, the acting principal, permission checks, CSRF.

A request is authenticated by an ``Authorization: Bearer`` API token or by the session cookie;
otherwise it acts as the anonymous public. Cookie-authenticated requests that change something
must carry the session's CSRF token in the ``X-CSRF-Token`` header (a cross-site form cannot
set a header, and cannot read the token); token-authenticated requests need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Query, Request

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


def current_principal(request: Request) -> Principal:
    """Who makes the request; cached on the request so that it is looked up once."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    register = get_register(request)
    principal = Principal.anonymous()
    header = request.headers.get("Authorization", "")
    session = request.cookies.get(SESSION_COOKIE)
    if header.lower().startswith("bearer "):
        with register.store.read_statement() as conn:
            found = accounts.principal_for_token(conn, header[7:].strip())
        if found is None:
            raise LoginRequired("unknown or revoked API token")
        principal = found
    elif session:
        idle = timedelta(minutes=get_settings(request).session_idle_minutes)
        found = accounts.principal_for_session(register.store, session, idle)
        if found is not None:
            csrf_protect(request, session)
            principal = found
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(
    predicate: Callable[[Principal], bool], action: str
) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the principal if ``predicate`` holds; 401 or 403 otherwise."""

    # A coroutine, so that FastAPI runs it on the event loop rather than through the thread pool:
    # it only compares, and the hop costs more than the check.
    async def dependency(principal: CurrentPrincipal) -> Principal:
        principal.require(predicate(principal), action)
        return principal

    return dependency


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    return require(lambda p: p.role in roles, f"do this (needs {' or '.join(roles)})")
