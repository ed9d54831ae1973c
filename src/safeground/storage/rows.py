"""Conversion between record models and table rows, and bulk writes keyed by record ID."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from functools import cache, lru_cache
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Table, bindparam, func, select

from safeground.domain.records import RECORD_TYPES, Record
from safeground.storage import gpkg
from safeground.storage.schema import record_tables, stored_fields, unwrap
from safeground.storage.types import Geometry, JsonValue, encode_geometries


def record_row(record: Record) -> dict[str, Any]:
    """A record's stored fields as column values (its personal fields are left out)."""
    json_fields, wkt_fields = _special_fields(record.record_type)
    values = record.__dict__  # the fields' values, without pydantic's attribute lookup
    row = {name: values[name] for name in _stored_fields(record.record_type)}
    if json_fields:
        row.update(record.model_dump(mode="json", include=json_fields))
    for name in wkt_fields:
        if row[name] is not None:
            row[name] = row[name].wkt
    return row


def record_columns(record_type: str, records: list[Record]) -> dict[str, list[Any]]:
    """``record_row`` of many records of one type, column by column (for ``insert_columns``)."""
    json_fields, wkt_fields = _special_fields(record_type)
    values = [record.__dict__ for record in records]
    columns = {name: [v[name] for v in values] for name in _stored_fields(record_type)}
    if json_fields:
        dumped = [r.model_dump(mode="json", include=json_fields) for r in records]
        for name in json_fields:
            columns[name] = [d[name] for d in dumped]
    for name in wkt_fields:
        columns[name] = [None if g is None else g.wkt for g in columns[name]]
    return columns


@cache
def _stored_fields(record_type: str) -> tuple[str, ...]:
    return tuple(stored_fields(RECORD_TYPES[record_type]))


@cache
def _special_fields(record_type: str) -> tuple[set[str], tuple[str, ...]]:
    """Fields stored as JSON, and geometry fields stored as WKT text, of a record type."""
    table = record_tables[record_type]
    json_fields = {c.name for c in table.c if isinstance(c.type, JsonValue)}
    wkt_fields = tuple(
        name
        for name, info in RECORD_TYPES[record_type].model_fields.items()
        if name != "geometry" and name in table.c and _is_geometry(unwrap(info.annotation))
    )
    return json_fields, wkt_fields


def _is_geometry(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseGeometry)


def personal_row(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in type(record).personal_fields}


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows (all with the same keys); see ``insert_columns``."""
    if rows:
        insert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]})


def insert_columns(
    conn: Connection,
    table: Table,
    columns: dict[str, list[Any]],
    rtrees: gpkg.RtreeBatches | None = None,
) -> None:
    """Insert rows given column by column, in one DB-API ``executemany`` (or one COPY).

    SQLAlchemy's executemany converts each row's parameters one row at a time, which cost more
    than SQLite's own work in a bulk import; here each column is converted in one pass, through
    the column type's own bind processor (once per distinct value), and geometries in one
    vectorised call. On a GeoPackage, a layer's R-tree is filled in bulk too; on PostgreSQL the
    rows go in with COPY. With ``rtrees``, a layer's features are indexed when they are closed
    (a filing in several parts), not after this insert.
    """
    names = list(columns)
    count = len(columns[names[0]]) if names else 0
    if not count:
        return
    dialect = conn.dialect
    bound: dict[str, list[Any]] = {}
    for name, values in columns.items():
        kind = table.c[name].type
        if isinstance(kind, Geometry):
            bound[name] = encode_geometries(values, dialect.name)
        else:
            bound[name] = _converted(values, kind.dialect_impl(dialect).bind_processor(dialect))
    # Many features into a GeoPackage layer: its R-tree is filled in bulk rather than by the
    # trigger (whose fixed cost, a schema change each way, outweighs it for a few features).
    layer = "geometry" in names and dialect.name == "sqlite"
    layer = layer and (rtrees is not None or count >= gpkg.BULK_INDEX_ROWS)
    if layer:
        last = conn.execute(select(func.coalesce(func.max(table.c.fid), 0))).scalar_one()
        bound["fid"] = list(range(last + 1, last + count + 1))
        names.append("fid")
    if dialect.name == "postgresql":
        _copy(conn, table, bound)
        return
    sql, positions = _insert_statement(table, tuple(names), dialect)
    if positions is not None:
        ordered = [bound[name] for name in positions]
        params: list[Any] = list(zip(*ordered, strict=True))
    else:
        params = [dict(zip(names, r, strict=True)) for r in zip(*bound.values(), strict=True)]
    if not layer:
        conn.exec_driver_sql(sql, params)
        return
    if rtrees is not None:
        rtrees.of(conn, table.name).add(bound["fid"], columns["geometry"])
        conn.exec_driver_sql(sql, params)
        return
    with gpkg.rtree_filled_in_bulk(conn, table.name, bound["fid"], columns["geometry"]):
        conn.exec_driver_sql(sql, params)


@lru_cache(maxsize=256)
def _insert_statement(
    table: Table, names: tuple[str, ...], dialect: Any
) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT's SQL and, for positional parameters, their order (compiling costs 1 ms)."""
    statement = table.insert().inline().compile(dialect=dialect, column_keys=list(names))
    positions = statement.positiontup
    return str(statement), None if positions is None else tuple(positions)


def _copy(conn: Connection, table: Table, columns: dict[str, list[Any]]) -> None:
    """PostgreSQL's COPY, in the connection's transaction: faster than batched INSERTs."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
        for row in zip(*columns.values(), strict=True):
            copy.write_row(row)


def _converted(values: list[Any], process: Any) -> list[Any]:
    if process is None:
        first = next((v for v in values if v is not None), None)
        if not isinstance(first, Enum):
            return values
        # Codes as plain text: sqlite3 looks up an adapter for every str subclass it binds,
        # which cost a bulk import 0.06 s of its 0.43 s of inserts.
        process = _plain
    try:
        distinct = {v: process(v) for v in dict.fromkeys(values)}
    except TypeError:  # unhashable values (JSON documents): each on its own
        return [process(v) for v in values]
    return [distinct[v] for v in values]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


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
    insert_rows(conn, table, new)
    update_rows(conn, table, old, key)


def update_rows(
    conn: Connection, table: Table, rows: list[dict[str, Any]], key: str = "record_id"
) -> None:
    """Update rows (all with the same keys) found by their ``key`` column, in one executemany."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    statement = (
        table.update()
        .where(table.c[key] == bindparam("_key"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    conn.execute(
        statement, [{"_key": row[key], **{f"v_{c}": row[c] for c in columns}} for row in rows]
    )


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def chunked_in(values: Iterable[Any], size: int = 900) -> Iterable[list[Any]]:
    """Split values for ``IN (...)`` lists (SQLite allows a limited number of parameters)."""
    return _chunks(list(values), size)
