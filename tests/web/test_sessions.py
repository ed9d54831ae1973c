"""Sessions end after a period without use; using one keeps it alive without a write per
request. Time is the accounts service's ``now``, moved by hand; on GeoPackage and PostGIS."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import column, event, select, table
from sqlalchemy.exc import OperationalError

from safeground.service import accounts
from safeground.service.register import now as real_now
from safeground.storage import migrations
from safeground.storage.schema import account, web_session
from safeground.storage.store import GeoPackageStore, open_store
from safeground.storage.types import Timestamp
from safeground.web.app import create_app
from safeground.web.deps import SESSION_COOKIE
from safeground.web.settings import Settings
from tests.web.conftest import logged_in


class Clock:
    def __init__(self) -> None:
        self.at = real_now().replace(microsecond=0)  # the GeoPackage keeps milliseconds

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(accounts, "now", lambda: moved.at)
    return moved


def last_seen(app, username: str) -> datetime:
    with app.state.register.store.read() as conn:
        query = select(web_session.c.last_seen_at).where(web_session.c.username == username)
        return conn.execute(query).scalar_one()


def role(client: TestClient) -> str:
    return client.get("/api/me").json()["role"]


def test_a_session_unused_for_longer_than_the_idle_timeout_is_refused(app, login, clock):
    officer = login("officer")
    clock.advance(minutes=29)
    assert role(officer) == "im_officer"
    clock.advance(minutes=30, seconds=1)
    assert role(officer) == "public"
    refused = officer.post("/api/tokens")
    assert refused.status_code == 401
    assert role(login("officer")) == "im_officer"  # logging in again is the way back
    with app.state.register.store.read() as conn:
        kept = conn.execute(select(web_session).where(web_session.c.username == "officer"))
        assert len(kept.all()) == 1  # the idle session went at the login


def test_using_a_session_keeps_it_alive(app, login, clock):
    officer = login("officer")
    for _ in range(6):  # three hours, never 30 minutes unused
        clock.advance(minutes=25)
        assert role(officer) == "im_officer"
    assert last_seen(app, "officer") == clock.at


def test_last_use_is_written_at_most_once_a_minute(app, login, clock):
    officer = login("officer")
    opened = clock.at
    updates: list[str] = []

    @event.listens_for(app.state.register.store.engine, "before_cursor_execute")
    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("UPDATE WEB_SESSION"):
            updates.append(statement)

    for _ in range(10):
        clock.advance(seconds=5)
        assert role(officer) == "im_officer"
    assert (updates, last_seen(app, "officer")) == ([], opened)

    clock.advance(seconds=11)  # a minute since the login
    assert role(officer) == "im_officer"
    assert (len(updates), last_seen(app, "officer")) == (1, clock.at)
    for _ in range(10):
        clock.advance(seconds=5)
        assert role(officer) == "im_officer"
    assert len(updates) == 1


def test_a_session_is_used_while_an_import_holds_the_geopackage_lock(app, login, clock):
    """The use cannot be written then; the request goes on, and a later one writes it."""
    store = app.state.register.store
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    session = login("officer").cookies[SESSION_COOKIE]
    opened = clock.at
    impatient = GeoPackageStore(str(store.path), lock_timeout_s=0.1)
    clock.advance(minutes=2)
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"), impatient.begin():
            pass
        found = accounts.principal_for_session(impatient, session, timedelta(minutes=30))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert found is not None and found.username == "officer"
    assert last_seen(app, "officer") == opened
    accounts.principal_for_session(impatient, session, timedelta(minutes=30))
    assert last_seen(app, "officer") == clock.at
    impatient.engine.dispose()


def test_an_idle_timeout_shorter_than_the_resolution_still_counts_each_use(scenario, clock):
    settings = scenario.settings.model_copy(update={"session_idle_minutes": 1.0})
    app = create_app(settings)
    officer = logged_in(app, "officer")
    for _ in range(5):
        clock.advance(seconds=40)
        assert role(officer) == "im_officer"
    clock.advance(seconds=61)
    assert role(officer) == "public"
    app.state.register.store.engine.dispose()


def test_the_idle_timeout_comes_from_the_environment(monkeypatch):
    assert Settings().session_idle_minutes == 30
    monkeypatch.setenv("SAFEGROUND_SESSION_IDLE_MINUTES", "5")
    assert Settings.from_env().session_idle_minutes == 5


def _alembic(store, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with store.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_sessions_open_at_the_upgrade_count_as_used_when_opened(store_location):
    store = open_store(store_location)
    _alembic(store, "0005")
    opened = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    session_0005 = table(
        "web_session",
        column("session_hash"),
        column("username"),
        column("created_at", Timestamp()),
        column("expires_at", Timestamp()),
    )
    with store.begin() as conn:
        conn.execute(
            account.insert().values(
                username="officer", password_hash="x", role="im_officer", created_at=opened
            )
        )
        conn.execute(
            session_0005.insert().values(
                session_hash="h",
                username="officer",
                created_at=opened,
                expires_at=opened + timedelta(hours=12),
            )
        )
    store.migrate()
    with store.read() as conn:
        assert conn.execute(select(web_session.c.last_seen_at)).scalar_one() == opened
    _alembic(store, "0005", down=True)
    with store.read() as conn:
        assert conn.execute(select(session_0005.c.session_hash)).scalar_one() == "h"
    store.migrate()
    store.engine.dispose()
