"""Readers do not queue behind each other: Store.read takes no write lock. On PostgreSQL a read
is one snapshot, pooled connections are tested before use only after being idle, and a safe
web request that met a connection the server dropped runs once more."""

import sqlite3

import anyio
import pytest
from sqlalchemy import event, exc, select, text

from safeground.storage.generations import ViewChanges
from safeground.storage.schema import setting
from safeground.storage.store import PostgisStore, checked_before_use
from safeground.web.retry import DroppedConnections


def test_two_readers_hold_read_transactions_at_once(register):
    store = register.store
    with store.read() as first, store.read() as second:
        assert first.execute(select(setting.c.key)).all()
        assert second.execute(select(setting.c.key)).all()
        assert first.in_transaction() and second.in_transaction()


def test_a_writer_cannot_begin_beside_another_writer_on_a_geopackage(register):
    """The contrast that makes the test above meaningful: ``begin`` takes the write lock."""
    if register.store.dialect != "sqlite":
        pytest.skip("SQLite locking")
    raw = sqlite3.connect(register.store.location, timeout=0.1, isolation_level=None)
    with register.store.begin(), pytest.raises(sqlite3.OperationalError, match="locked"):
        raw.execute("BEGIN IMMEDIATE")
    with register.store.read():
        raw.execute("BEGIN IMMEDIATE")  # a reader leaves the write lock free
        raw.execute("ROLLBACK")
    raw.close()


def test_a_single_statement_reads_outside_any_transaction(register):
    """No BEGIN or COMMIT around a credential lookup; the pooled connection keeps working in
    transactions afterwards (pysqlite's own transaction handling stays off)."""
    store = register.store
    for _ in range(2):  # the second time on the pooled connection the first one used
        with store.read_statement() as conn:
            if store.dialect == "postgresql":
                conn.execute(text("SELECT pg_sleep(0.01)"))
                # Each statement is a transaction of its own: its start is the statement's.
                assert conn.execute(text("SELECT now() = statement_timestamp()")).scalar_one()
            else:
                assert conn.execute(select(setting.c.key)).all()
                raw = conn.connection.dbapi_connection
                assert not raw.in_transaction and raw.isolation_level is None
        with store.read() as conn:
            conn.execute(text("SELECT 1"))
            if store.dialect == "postgresql":
                conn.execute(text("SELECT pg_sleep(0.01)"))
                assert not conn.execute(text("SELECT now() = statement_timestamp()")).scalar_one()
            else:
                assert conn.connection.dbapi_connection.in_transaction
    with store.begin() as conn:
        store.after_write(conn, ViewChanges.everywhere())


def _postgis_only(register):
    if register.store.dialect != "postgresql":
        pytest.skip("PostgreSQL isolation and connection pool")


def test_a_read_sees_one_snapshot_on_postgresql(register):
    """A write committed during a read stays unseen until the read ends (READ COMMITTED would
    show it to the read's next statement)."""
    _postgis_only(register)
    store = register.store
    with store.read() as conn:
        before = store.generations(conn).views["eo_item"]
        with store.begin() as writer:
            store.after_write(writer, ViewChanges.everywhere(["eo_item"]))
        assert store.generations(conn).views["eo_item"] == before
    with store.read() as conn:
        assert store.generations(conn).views["eo_item"] == before + 1


def test_a_read_cannot_write_on_postgresql(register):
    _postgis_only(register)
    with pytest.raises(exc.InternalError, match="read-only"), register.store.read() as conn:
        register.store.after_write(conn, ViewChanges.everywhere())


def _backend(store):
    with store.read() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _terminate(store, pid):
    """End the backend and wait (up to 1 s) until it has gone."""
    with store.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid, 1000)"), {"pid": pid})


def test_an_idle_pooled_connection_that_died_is_replaced(register):
    """With the idle time passed, a connection the server dropped is replaced before use."""
    _postgis_only(register)
    store = PostgisStore(register.store.location, ping_after_idle_s=0.0)
    first = _backend(store)
    _terminate(register.store, first)
    assert _backend(store) != first  # no error: the ping found it dead
    store.engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(register):
    """The contrast that makes the test above meaningful: without the ping, the dead
    connection fails its next use; the pool then replaces it."""
    _postgis_only(register)
    store = PostgisStore(register.store.location, ping_after_idle_s=3600.0)
    first = _backend(store)
    _terminate(register.store, first)
    with pytest.raises(exc.OperationalError):
        _backend(store)
    assert _backend(store) != first
    store.engine.dispose()


def test_inside_checked_before_use_a_connection_used_a_moment_ago_is_replaced(register):
    """For work that may write (never run twice): every checkout is tested, idle or not."""
    _postgis_only(register)
    store = PostgisStore(register.store.location, ping_after_idle_s=3600.0)
    first = _backend(store)
    _terminate(register.store, first)
    with checked_before_use():
        assert _backend(store) != first  # no error: the test found it dead
    store.engine.dispose()


@pytest.fixture
def backends(app):
    """The backends of every connection the application's pool has handed out."""
    seen: set[int] = set()

    @event.listens_for(app.state.register.store.engine, "checkout")
    def _noted(dbapi, _entry, _proxy):
        seen.add(dbapi.info.backend_pid)

    return seen


def _kill(backends, scenario):
    for pid in backends:
        _terminate(scenario.register.store, pid)


def test_a_get_right_after_its_connection_died_is_answered(scenario, backends, login):
    """Each kind of page and endpoint, asked right after the server dropped its connections
    (used a moment ago, so not pinged): the first attempt fails, the second is answered."""
    _postgis_only(scenario.register)
    officer = login("officer")
    for url in (
        f"/api/records/{scenario.hazard}",
        "/ogc/collections/hazardous_area/items",
        "/tiles/layers.json",
        "/",
        f"/records/{scenario.hazard}",
    ):
        before = set(backends)
        _kill(backends, scenario)
        assert officer.get(url).status_code == 200, url
        assert backends - before, f"{url}: no new connection, so no retry was tested"


def test_a_post_after_its_connection_died_is_answered_once(scenario, backends, login):
    """A write request is never run twice; its connections are tested before use instead, so
    the ones the server dropped a moment ago are replaced before its first statement."""
    _postgis_only(scenario.register)
    clerk = login("clerk")
    draft = {
        "record_type": "organisation",
        "date_of_information": "2022-05-01",
        "changes": {"name": "Operator gamma"},
    }
    before = set(backends)
    _kill(backends, scenario)
    answer = clerk.post("/api/reports", json=draft)
    assert answer.status_code == 201, answer.text
    assert backends - before, "no new connection, so no dropped one was met"
    with scenario.register.store.read() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM report WHERE changes->>'name' = 'Operator gamma'")
        ).scalar_one()
    assert count == 1


def test_a_safe_request_runs_at_most_twice_and_not_once_its_answer_began():
    """Without a server: the retry's limits, on an application whose connection always dies
    and which reads the request's body (the client sends it once)."""
    runs: list[tuple[str, str, bytes | None]] = []

    async def dying(scope, receive, send):
        runs.append((scope["method"], scope["path"], (await receive()).get("body")))
        if scope["path"] == "/answering":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)

    async def request(method, path):
        messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(_message):
            pass

        scope = {"type": "http", "method": method, "path": path}
        with pytest.raises(exc.OperationalError):
            await DroppedConnections(dying)(scope, receive, send)

    for method, path in (("GET", "/"), ("POST", "/"), ("GET", "/answering")):
        anyio.run(request, method, path)
    assert runs == [
        ("GET", "/", b"{}"),
        ("GET", "/", b"{}"),  # the body again, as the first attempt received it
        ("POST", "/", b"{}"),
        ("GET", "/answering", b"{}"),
    ]
