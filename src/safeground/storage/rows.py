"""Conversion between record models and table rows, and bulk writes keyed by record ID."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import shapely
from sqlalchemy import Connection, Table, bindparam, select

from safeground.domain.records import Record
from safeground.storage.schema import record_tables, stored_fields
from safeground.storage.types import Geometry, JsonValue


def record_row(record: Record) -> dict[str, Any]:
    """A record's stored fields as column values (its personal fields are left out)."""
    table = record_tables[record.record_type]
    as_json = record.model_dump(mode="json")
    row: dict[str, Any] = {}
    for name in stored_fields(type(record)):
        value = getattr(record, name)
        column_type = table.c[name].type
        if isinstance(column_type, JsonValue):
            row[name] = as_json[name]
        elif isinstance(value, shapely.Geometry) and not isinstance(column_type, Geometry):
            row[name] = value.wkt
        else:
            row[name] = value
    return row


def personal_row(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in type(record).personal_fields}


def upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], key: str = "record_id"
) -> None:
    """Insert rows, or update those whose key exists, keeping their fid (QGIS relies on it)."""
    if not rows:
        return
    keys = [row[key] for row in rows]
    existing: set[Any] = set()
    for chunk in _chunks(keys, 900):
        existing.update(conn.scalars(select(table.c[key]).where(table.c[key].in_(chunk))))
    new = [row for row in rows if row[key] not in existing]
    old = [row for row in rows if row[key] in existing]
    if new:
        conn.execute(table.insert(), new)
    if old:
        columns = [c for c in old[0] if c != key]
        statement = (
            table.update()
            .where(table.c[key] == bindparam("_key"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        conn.execute(
            statement, [{"_key": row[key], **{f"v_{c}": row[c] for c in columns}} for row in old]
        )


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def chunked_in(values: Iterable[Any], size: int = 900) -> Iterable[list[Any]]:
    """Split values for ``IN (...)`` lists (SQLite allows a limited number of parameters)."""
    return _chunks(list(values), size)
