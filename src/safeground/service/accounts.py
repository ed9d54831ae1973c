"""Accounts, sessions, API tokens and the audit log of the web application.

Passwords are hashed with Argon2id (argon2-cffi) and rehashed when its parameters change.
Sessions and tokens are random secrets; only their SHA-256 is stored, so a copy of the
database gives nobody a way in. A role change or logout takes effect on the next request,
because every request looks its session up. A session ends after ``session_lifetime``, or
sooner when unused for ``session_idle``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    Table,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.exc import OperationalError

from safeground.domain.access import AccessDenied, LoginRequired, Principal, Role
from safeground.domain.errors import NotFound, Problem, SafegroundError, ValidationFailed
from safeground.domain.reports import Report
from safeground.service.register import now
from safeground.storage.schema import account, api_token, audit_log, record_tables, web_session
from safeground.storage.store import Store, insert_new

_HASHER = PasswordHasher()
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD_LENGTH = 10
LOGIN_FAILED = "login.failed"
# A session's last use is written when the stored one is older than this (or than half the idle
# timeout, if shorter), not on every request: each request looks its session up, and on a
# GeoPackage every write takes the database's write lock.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


class TooManyAttempts(SafegroundError):
    """Too many failed logins for this username, or from this client (HTTP 429)."""

    def __init__(self, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins: try again in {retry_after_s} s")


@dataclass(frozen=True)
class LoginPolicy:
    """At most ``attempts`` failed logins per username and client within ``window``, and at
    most ``client_attempts`` from one client whatever the usernames (password spraying)."""

    attempts: int = 5
    client_attempts: int = 30
    window: timedelta = timedelta(minutes=5)
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle: timedelta = timedelta(minutes=30)


@dataclass
class Account:
    username: str
    role: Role
    organisation_id: str | None
    created_at: datetime
    disabled_at: datetime | None

    @property
    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.organisation_id)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


# -- audit ----------------------------------------------------------------------------------


def audit(
    conn: Connection,
    username: str | None,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Append to the audit log, inside the caller's transaction so it lands with the change."""
    conn.execute(
        audit_log.insert().values(
            at=now(), username=username, action=action, target=target, detail=detail, client=client
        )
    )


def audit_entries(conn: Connection, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Newest first."""
    rows = conn.execute(
        select(audit_log).order_by(audit_log.c.audit_id.desc()).limit(limit).offset(offset)
    )
    return [dict(r._mapping) for r in rows]


# -- accounts -------------------------------------------------------------------------------


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationFailed(
            [Problem("role", f"unknown role {value!r}; one of {', '.join(Role)}")]
        ) from None


def _check_organisation(conn: Connection, role: Role, organisation_id: str | None) -> None:
    if role is Role.DATA_ENTRY and not organisation_id:
        raise ValidationFailed(
            [Problem("organisation", "a data_entry account belongs to an organisation")]
        )
    if organisation_id is None:
        return
    table = record_tables["organisation"]
    found = conn.execute(select(table.c.record_id).where(table.c.record_id == organisation_id))
    if found.first() is None:
        raise ValidationFailed(
            [Problem("organisation", f"no organisation {organisation_id} in the register")]
        )


def get_account(conn: Connection, username: str) -> Account:
    row = conn.execute(select(account).where(account.c.username == username)).first()
    if row is None:
        raise NotFound(f"no account {username!r}")
    return _account(row)


def _account(row: Any) -> Account:
    return Account(
        row.username, Role(row.role), row.organisation_id, row.created_at, row.disabled_at
    )


def is_administrator(conn: Connection, username: str) -> bool:
    """Whether ``username`` is an enabled account with the administrator's role (the command
    line's --user, which has no session to look up)."""
    row = conn.execute(
        select(account.c.role).where(
            account.c.username == username, account.c.disabled_at.is_(None)
        )
    ).first()
    return row is not None and Role(row.role) is Role.ADMIN


def withdrawal_detail(rep: Report, by: str, withdrawn: list[Report]) -> dict[str, Any]:
    """The audit detail of one report of a withdrawal (``withdrawn``, the draft first): its
    reason, and ``on_behalf_of`` its author when an administrator withdrew someone else's."""
    detail: dict[str, Any] = {"reason": rep.review_reason}
    if rep is withdrawn[0] and rep.author != by:
        detail["on_behalf_of"] = rep.author
    return detail


def list_accounts(conn: Connection) -> list[Account]:
    return [_account(r) for r in conn.execute(select(account).order_by(account.c.username))]


def add_account(
    conn: Connection,
    username: str,
    role: str,
    password: str,
    organisation_id: str | None = None,
    by: str | None = None,
) -> Account:
    if not USERNAME.match(username):
        raise ValidationFailed([Problem("username", "2-64 letters, digits or . _ @ - (no spaces)")])
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed([Problem("password", f"at least {MIN_PASSWORD_LENGTH} characters")])
    chosen = _role(role)
    _check_organisation(conn, chosen, organisation_id)
    stamp = now()
    # Not a check first: two administrators adding one name at once both found it free, and
    # the second insert failed on the primary key.
    added = conn.execute(
        insert_new(conn, account)
        .values(
            username=username,
            password_hash=_HASHER.hash(password),
            role=chosen,
            organisation_id=organisation_id,
            created_at=stamp,
        )
        .returning(account.c.username)
    ).first()
    if added is None:
        raise ValidationFailed([Problem("username", f"{username!r} exists already")])
    audit(conn, by, "account.add", username, {"role": chosen, "organisation_id": organisation_id})
    return Account(username, chosen, organisation_id, stamp, None)


def set_role(
    conn: Connection,
    username: str,
    role: str,
    organisation_id: str | None = None,
    by: str | None = None,
) -> Account:
    """Change an account's role (and organisation, when given); effective on the next request."""
    current = get_account(conn, username)
    chosen = _role(role)
    organisation = organisation_id if organisation_id is not None else current.organisation_id
    _check_organisation(conn, chosen, organisation)
    conn.execute(
        account.update()
        .where(account.c.username == username)
        .values(role=chosen, organisation_id=organisation)
    )
    audit(
        conn,
        by,
        "account.role",
        username,
        {"from": current.role, "to": chosen, "organisation_id": organisation},
    )
    return get_account(conn, username)


# -- logging in -----------------------------------------------------------------------------


def login(
    store: Store,
    username: str,
    password: str,
    client: str | None,
    policy: LoginPolicy = LoginPolicy(),
) -> tuple[Principal, str]:
    """Check a password and open a session; returns the principal and the session's secret.

    A failure is written to the audit log (committed), and the count of recent failures for
    this username from this client is the rate limit.
    """
    with store.begin() as conn:
        _check_rate(conn, username, client, policy)
        row = conn.execute(select(account).where(account.c.username == username)).first()
        if row is not None and row.disabled_at is None and _verify(conn, row, password):
            principal = _account(row).principal
            session = _open_session(conn, username, policy)
            audit(conn, username, "login", username, None, client)
            return principal, session
        audit(conn, username, LOGIN_FAILED, username, None, client)
    raise LoginRequired("wrong username or password")


def _check_rate(conn: Connection, username: str, client: str | None, policy: LoginPolicy) -> None:
    since = now() - policy.window
    recent = (audit_log.c.action == LOGIN_FAILED, audit_log.c.at >= since)
    same_client = (
        audit_log.c.client == client if client is not None else audit_log.c.client.is_(None)
    )
    limits: list[tuple[int, tuple[ColumnElement[bool], ...]]] = [
        (policy.attempts, (*recent, same_client, audit_log.c.username == username))
    ]
    if client is not None:  # the command line has no client address, and no spraying
        limits.append((policy.client_attempts, (*recent, same_client)))
    for attempts, where in limits:
        failures, oldest = conn.execute(
            select(func.count(), func.min(audit_log.c.at)).where(*where)
        ).one()
        if failures >= attempts:
            retry = int((oldest + policy.window - now()).total_seconds()) + 1
            raise TooManyAttempts(max(retry, 1))


def _verify(conn: Connection, row: Any, password: str) -> bool:
    try:
        _HASHER.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _HASHER.check_needs_rehash(row.password_hash):
        conn.execute(
            account.update()
            .where(account.c.username == row.username)
            .values(password_hash=_HASHER.hash(password))
        )
    return True


def disable_account(conn: Connection, username: str, by: str | None) -> None:
    """Shut an account out at once: its sessions end and its tokens stop working."""
    get_account(conn, username)
    conn.execute(
        account.update()
        .where(account.c.username == username, account.c.disabled_at.is_(None))
        .values(disabled_at=now())
    )
    conn.execute(web_session.delete().where(web_session.c.username == username))
    audit(conn, by, "account.disable", username)


def set_password(conn: Connection, username: str, password: str, by: str | None) -> None:
    """A new password; the account's open sessions end."""
    get_account(conn, username)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed([Problem("password", f"at least {MIN_PASSWORD_LENGTH} characters")])
    conn.execute(
        account.update()
        .where(account.c.username == username)
        .values(password_hash=_HASHER.hash(password))
    )
    conn.execute(web_session.delete().where(web_session.c.username == username))
    audit(conn, by, "account.password", username)


def _open_session(conn: Connection, username: str, policy: LoginPolicy) -> str:
    secret = secrets.token_urlsafe(32)
    stamp = now()
    # Expired and idle sessions of the account go now: nothing else would ever delete them.
    conn.execute(
        web_session.delete().where(
            web_session.c.username == username,
            or_(
                web_session.c.expires_at <= stamp,
                web_session.c.last_seen_at <= stamp - policy.session_idle,
            ),
        )
    )
    conn.execute(
        web_session.insert().values(
            session_hash=digest(secret),
            username=username,
            created_at=stamp,
            expires_at=stamp + policy.session_lifetime,
            last_seen_at=stamp,
        )
    )
    return secret


def logout(conn: Connection, session: str, client: str | None) -> None:
    found = conn.execute(
        web_session.delete()
        .where(web_session.c.session_hash == digest(session))
        .returning(web_session.c.username)
    ).first()
    if found is not None:
        audit(conn, found.username, "logout", found.username, None, client)


def principal_for_session(store: Store, session: str, idle: timedelta) -> Principal | None:
    """The account behind a session cookie, if the session is live, used within ``idle`` and
    the account enabled; the use keeps the session alive.

    One read, with the query built once; the use is written in a short transaction of its own
    only when the stored one is stale (``LAST_SEEN_RESOLUTION``), about once a minute per
    session at most. While a long write (an import) holds a GeoPackage's lock past its
    timeout, the use goes unwritten rather than the request failing: a later one writes it.
    """
    hashed, stamp = digest(session), now()
    with store.read_statement() as conn:
        row = conn.execute(
            _SESSION_HOLDER, {"hash": hashed, "now": stamp, "idle_since": stamp - idle}
        ).first()
    if row is None:
        return None
    stale = stamp - min(LAST_SEEN_RESOLUTION, idle / 2)
    if row.last_seen_at <= stale:
        try:
            with store.begin() as conn:
                conn.execute(_SESSION_SEEN, {"hash": hashed, "seen": stamp, "stale": stale})
        except OperationalError as error:
            if not store.lock_timed_out(error):
                raise
    return _principal(row)


def _enabled_holder_query(
    credentials: Table, hashed: Column[str], *live: ColumnElement[bool]
) -> Select[Any]:
    """The enabled account holding a live credential (a session or an API token), if any.

    Built once: every request looks its credential up, and building the query each time cost
    more than running it.
    """
    return (
        select(account.c.username, account.c.role, account.c.organisation_id)
        .join(credentials, credentials.c.username == account.c.username)
        .where(hashed == bindparam("hash"), *live, account.c.disabled_at.is_(None))
    )


_SESSION_HOLDER = _enabled_holder_query(
    web_session,
    web_session.c.session_hash,
    web_session.c.expires_at > bindparam("now"),
    web_session.c.last_seen_at > bindparam("idle_since"),
).add_columns(web_session.c.last_seen_at)
# Guarded by the stored value, so that concurrent requests of one session write it once.
_SESSION_SEEN = (
    web_session.update()
    .where(
        web_session.c.session_hash == bindparam("hash"),
        web_session.c.last_seen_at <= bindparam("stale"),
    )
    .values(last_seen_at=bindparam("seen"))
)
_TOKEN_HOLDER = _enabled_holder_query(
    api_token, api_token.c.token_hash, api_token.c.revoked_at.is_(None)
)


def _principal(row: Any) -> Principal:
    return Principal(row.username, Role(row.role), row.organisation_id)


# -- API tokens -----------------------------------------------------------------------------


def create_token(
    conn: Connection,
    username: str,
    label: str | None = None,
    client: str | None = None,
    by: str | None = None,
) -> tuple[int, str]:
    """A new API token for an account: (its id, the secret, shown only now); ``by`` who made
    it when not the account itself (an administrator on the command line)."""
    get_account(conn, username)
    secret = "sg_" + secrets.token_urlsafe(32)
    token_id = conn.execute(
        api_token.insert()
        .values(username=username, token_hash=digest(secret), label=label, created_at=now())
        .returning(api_token.c.token_id)
    ).scalar_one()
    audit(
        conn,
        by or username,
        "token.create",
        str(token_id),
        {"label": label, "account": username},
        client,
    )
    return token_id, secret


def revoke_token(
    conn: Connection, principal: Principal, token_id: int, client: str | None = None
) -> None:
    """Revoke one of the principal's tokens (an administrator may revoke anyone's)."""
    row = conn.execute(
        select(api_token).where(api_token.c.token_id == token_id, api_token.c.revoked_at.is_(None))
    ).first()
    if row is None:
        raise NotFound(f"no live token {token_id}")
    if row.username != principal.username and not principal.can_manage_users:
        raise AccessDenied(f"token {token_id} belongs to another account")
    conn.execute(
        api_token.update().where(api_token.c.token_id == token_id).values(revoked_at=now())
    )
    audit(conn, principal.username, "token.revoke", str(token_id), None, client)


def principal_for_token(conn: Connection, token: str) -> Principal | None:
    row = conn.execute(_TOKEN_HOLDER, {"hash": digest(token)}).first()
    return None if row is None else _principal(row)


def organisations_of(conn: Connection, usernames: set[str]) -> dict[str, str | None]:
    """Each author's organisation (authors without an account, e.g. CLI users, have none)."""
    if not usernames:
        return {}
    rows = conn.execute(
        select(account.c.username, account.c.organisation_id).where(
            account.c.username.in_(sorted(usernames))
        )
    )
    return {r.username: r.organisation_id for r in rows}


def members_of(conn: Connection, organisation_id: str | None) -> list[str]:
    """Usernames of an organisation's accounts."""
    if organisation_id is None:
        return []
    query = select(account.c.username).where(account.c.organisation_id == organisation_id)
    return list(conn.scalars(query))
