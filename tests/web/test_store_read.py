"""Readers do not queue behind each other: Store.read takes no write lock. On PostgreSQL a read
is one snapshot, and pooled connections are tested before use only after being idle."""

import sqlite3

import pytest
from sqlalchemy import exc, select, text

from safeground.storage.schema import setting
from safeground.storage.store import PostgisStore


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


def _postgis_only(register):
    if register.store.dialect != "postgresql":
        pytest.skip("PostgreSQL isolation and connection pool")


def test_a_read_sees_one_snapshot_on_postgresql(register):
    """A write committed during a read stays unseen until the read ends (READ COMMITTED would
    show it to the read's next statement)."""
    _postgis_only(register)
    store = register.store
    with store.read() as conn:
        before = store.generation(conn)
        with store.begin() as writer:
            store.after_write(writer)
        assert store.generation(conn) == before
    with store.read() as conn:
        assert store.generation(conn) == before + 1


def test_a_read_cannot_write_on_postgresql(register):
    _postgis_only(register)
    with pytest.raises(exc.InternalError, match="read-only"), register.store.read() as conn:
        register.store.after_write(conn)


def _backend(store):
    with store.read() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


def _terminate(store, pid):
    with store.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


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
