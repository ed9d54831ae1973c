"""Logging in and out, who am I, and API tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from safeground.domain.access import Principal
from safeground.domain.errors import Problem, ValidationFailed
from safeground.service import accounts
from safeground.web.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentPrincipal,
    TokenId,
    client_address,
    csrf_token,
    get_register,
    get_settings,
    require,
)

router = APIRouter(tags=["accounts"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class Me(BaseModel):
    username: str | None
    role: str
    organisation_id: str | None
    can_draft: bool
    can_approve: bool
    can_see_personal: bool
    can_manage_users: bool
    sees_records: bool
    csrf_token: str | None = Field(
        None, description="Send back as the X-CSRF-Token header with cookie sessions"
    )


def _me(principal: Principal, csrf: str | None) -> Me:
    return Me(
        username=principal.username,
        role=principal.role,
        organisation_id=principal.organisation_id,
        can_draft=principal.can_draft,
        can_approve=principal.can_approve,
        can_see_personal=principal.can_see_personal,
        can_manage_users=principal.can_manage_users,
        sees_records=principal.sees_records,
        csrf_token=csrf,
    )


_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": Credentials.model_json_schema()}
            for media in ("application/json", "application/x-www-form-urlencoded")
        },
    }
}


async def _credentials(request: Request) -> Credentials:
    """Username and password from a JSON body or an HTML form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    data: Any
    try:
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            data = dict(await request.form())
        else:
            data = json.loads(await request.body() or b"null")
        return Credentials.model_validate(data)
    except (ValueError, ValidationError) as error:
        raise ValidationFailed(
            [Problem(None, "give username and password as JSON or as a form")]
        ) from error


@router.post("/login", openapi_extra=_LOGIN_BODY, response_model=Me)
async def login(request: Request, response: Response) -> Me:
    """Log in: sets the session cookie and returns the CSRF token (also in a cookie)."""
    credentials = await _credentials(request)
    settings = get_settings(request)
    policy = accounts.LoginPolicy(
        attempts=settings.login_attempts,
        client_attempts=settings.login_client_attempts,
        window=timedelta(seconds=settings.login_window_s),
        session_lifetime=timedelta(hours=settings.session_hours),
        session_idle=timedelta(minutes=settings.session_idle_minutes),
    )
    principal, session = await run_in_threadpool(
        accounts.login,
        get_register(request).store,
        credentials.username,
        credentials.password,
        client_address(request),
        policy,
    )
    csrf = csrf_token(settings, session)
    max_age = int(settings.session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, samesite="lax", secure=settings.cookie_secure
    )
    return _me(principal, csrf)


@router.post("/logout", status_code=204)
def logout(request: Request, principal: CurrentPrincipal) -> Response:
    """End the session (it stops working at once, on every server process)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and principal.is_authenticated:
        with get_register(request).store.begin() as conn:
            accounts.logout(conn, session, client_address(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/me", response_model=Me)
def me(request: Request, principal: CurrentPrincipal) -> Me:
    """Who is logged in, what they may do, and (for a cookie session) its CSRF token."""
    session = request.cookies.get(SESSION_COOKIE)
    csrf = (
        csrf_token(get_settings(request), session)
        if session and principal.is_authenticated
        else None
    )
    return _me(principal, csrf)


class TokenRequest(BaseModel):
    label: str | None = Field(None, max_length=200)


class NewToken(BaseModel):
    token_id: int
    token: str = Field(description="The secret: shown once; send as Authorization: Bearer")
    label: str | None


Authenticated = Annotated[
    Principal, Depends(require(lambda p: p.is_authenticated, "create API tokens"))
]


@router.post("/tokens", status_code=201, response_model=NewToken)
def create_token(
    request: Request, principal: Authenticated, body: TokenRequest | None = None
) -> NewToken:
    """A new API token for the current account."""
    label = body.label if body else None
    assert principal.username is not None
    with get_register(request).store.begin() as conn:
        token_id, secret = accounts.create_token(
            conn, principal.username, label, client_address(request)
        )
    return NewToken(token_id=token_id, token=secret, label=label)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(request: Request, token_id: TokenId, principal: Authenticated) -> Response:
    with get_register(request).store.begin() as conn:
        accounts.revoke_token(conn, principal, token_id, client_address(request))
    return Response(status_code=204)
