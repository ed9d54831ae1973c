"""Readers do not queue behind each other: Store.read takes no write lock."""

import sqlite3

import pytest
from sqlalchemy import select

from safeground.storage.schema import setting


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
