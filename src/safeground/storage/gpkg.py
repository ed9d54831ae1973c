"""What makes a SQLite file a GeoPackage (OGC 12-128r18): the application id, the required
metadata tables, the layer registry, and the R-tree spatial index with its triggers.

The triggers call ``ST_MinX`` and friends; GDAL defines them when it opens a file, and
``register_functions`` defines them on Safeground's own connections. Safeground's bulk inserts
index their rows themselves (``rtree_filled_in_bulk``), which is much faster than the triggers;
into an empty R-tree they write a packed tree straight into its tables (``write_packed_rtree``).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from safeground.storage.types import SRID, gpkg_envelope

APPLICATION_ID = 0x47504B47  # "GPKG"
# From this many features on, an insert indexes them in bulk (``rtree_filled_in_bulk``): the
# trigger costs about 45 µs a feature in Python callbacks, dropping and restoring it about 1 ms.
BULK_INDEX_ROWS = 50
USER_VERSION = 10400  # GeoPackage 1.4

_CORE_TABLES = [
    """CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
        srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
        organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE IF NOT EXISTS gpkg_contents (
        table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
        identifier TEXT UNIQUE, description TEXT DEFAULT '',
        last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
        CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
        table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
        srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
        CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
        CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
        CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_extensions (
        table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
        definition TEXT NOT NULL, scope TEXT NOT NULL,
        CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))""",
]

_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
_SRS_ROWS = [
    (
        "Undefined cartesian SRS",
        -1,
        "NONE",
        -1,
        "undefined",
        "undefined cartesian coordinate reference system",
    ),
    (
        "Undefined geographic SRS",
        0,
        "NONE",
        0,
        "undefined",
        "undefined geographic coordinate reference system",
    ),
    (
        "WGS 84 geodetic",
        SRID,
        "EPSG",
        4326,
        _WGS84_WKT,
        "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid",
    ),
]


def register_functions(dbapi_connection: sqlite3.Connection) -> None:
    """Define the SQL functions the GeoPackage R-tree triggers call."""

    def bound(i: int) -> Any:
        def f(blob: bytes | None) -> float | None:
            envelope = gpkg_envelope(blob) if blob is not None else None
            return None if envelope is None else envelope[i]

        return f

    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        dbapi_connection.create_function(name, 1, bound(i), deterministic=True)
    dbapi_connection.create_function(
        "ST_IsEmpty",
        1,
        lambda blob: None if blob is None else int(bool(blob[3] & 0b0001_0000)),
        deterministic=True,
    )


def create_core(conn: Any) -> None:
    """Make an empty SQLite database a GeoPackage (conn: a DB-API or SQLAlchemy connection)."""
    conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.exec_driver_sql(f"PRAGMA user_version = {USER_VERSION}")
    for ddl in _CORE_TABLES:
        conn.exec_driver_sql(ddl)
    for row in _SRS_ROWS:
        conn.exec_driver_sql(
            "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", row
        )


def register_layer(conn: Any, name: str, geometry_type: str | None, description: str) -> None:
    """Add a table to gpkg_contents: a feature layer with an R-tree, or an attribute table."""

    conn.exec_driver_sql(
        "INSERT OR REPLACE INTO gpkg_contents "
        "(table_name, data_type, identifier, description, srs_id) VALUES (?, ?, ?, ?, ?)",
        (
            name,
            "features" if geometry_type else "attributes",
            name,
            description,
            SRID if geometry_type else None,
        ),
    )
    if not geometry_type:
        return
    conn.exec_driver_sql(
        "INSERT OR REPLACE INTO gpkg_geometry_columns VALUES (?, 'geometry', ?, ?, 0, 0)",
        (name, geometry_type, SRID),
    )
    rtree = f"rtree_{name}_geometry"
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {rtree} USING rtree(id, minx, maxx, miny, maxy)"
    )
    conn.exec_driver_sql(
        "INSERT OR REPLACE INTO gpkg_extensions VALUES (?, 'geometry', 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        (name,),
    )
    for suffix, body in _rtree_triggers(name).items():
        conn.exec_driver_sql(f"CREATE TRIGGER IF NOT EXISTS {rtree}_{suffix} {body}")


def _rtree_triggers(name: str) -> dict[str, str]:
    """The triggers that keep a layer's R-tree in step (GeoPackage's rtree extension)."""
    rtree = f"rtree_{name}_geometry"
    values = (
        "NEW.fid, ST_MinX(NEW.geometry), ST_MaxX(NEW.geometry), "
        "ST_MinY(NEW.geometry), ST_MaxY(NEW.geometry)"
    )
    present = "(NEW.geometry NOT NULL AND NOT ST_IsEmpty(NEW.geometry))"
    absent = "(NEW.geometry IS NULL OR ST_IsEmpty(NEW.geometry))"
    return {
        "insert": f"AFTER INSERT ON {name} WHEN {present} BEGIN "
        f"INSERT OR REPLACE INTO {rtree} VALUES ({values}); END",
        "update1": f"AFTER UPDATE OF geometry ON {name} WHEN OLD.fid = NEW.fid AND {present} "
        f"BEGIN INSERT OR REPLACE INTO {rtree} VALUES ({values}); END",
        "update2": f"AFTER UPDATE OF geometry ON {name} WHEN OLD.fid = NEW.fid AND {absent} "
        f"BEGIN DELETE FROM {rtree} WHERE id = OLD.fid; END",
        "update3": f"AFTER UPDATE ON {name} WHEN OLD.fid != NEW.fid AND {present} BEGIN "
        f"DELETE FROM {rtree} WHERE id = OLD.fid; "
        f"INSERT OR REPLACE INTO {rtree} VALUES ({values}); END",
        "update4": f"AFTER UPDATE ON {name} WHEN OLD.fid != NEW.fid AND {absent} BEGIN "
        f"DELETE FROM {rtree} WHERE id IN (OLD.fid, NEW.fid); END",
        "delete": f"AFTER DELETE ON {name} WHEN OLD.geometry NOT NULL BEGIN "
        f"DELETE FROM {rtree} WHERE id = OLD.fid; END",
    }


@contextmanager
def rtree_filled_in_bulk(
    conn: Any, name: str, fids: Sequence[int], geometries: Sequence[BaseGeometry | None]
) -> Iterator[None]:
    """Insert features with fids ``fids`` (in the ``with`` block) and index them in bulk.

    The insert trigger calls back into Python five times per feature, which cost more than the
    insert itself; it is dropped for the block, and the R-tree entries are computed from the
    geometries in one vectorised call. An empty R-tree (a first import into a layer) is then
    written packed, straight into its tables (``write_packed_rtree``); one that already holds
    entries gets them with one INSERT. Run inside the transaction of the insert, so that a
    failure restores the trigger and the R-tree with everything else.
    """
    batch = RtreeBatch(conn, name)
    try:
        yield
    except BaseException:
        batch.restore_trigger()
        raise
    batch.add(fids, geometries)
    batch.close()


class RtreeBatch:
    """A layer's features inserted in several statements of one transaction, indexed together
    by ``close`` as ``rtree_filled_in_bulk`` indexes one statement's: a bulk import adds its
    rows file by file, and a first import's tree is still written packed, once.

    Until ``close`` the layer's R-tree lacks these features: close before anything reads it.
    """

    def __init__(self, conn: Any, name: str):
        self.conn, self.name = conn, name
        self.fids: list[int] = []
        self.geometries: list[BaseGeometry | None] = []
        conn.exec_driver_sql(f"DROP TRIGGER rtree_{name}_geometry_insert")

    def add(self, fids: Sequence[int], geometries: Sequence[BaseGeometry | None]) -> None:
        self.fids += fids
        self.geometries += geometries

    def restore_trigger(self) -> None:
        trigger = _rtree_triggers(self.name)["insert"]
        self.conn.exec_driver_sql(f"CREATE TRIGGER rtree_{self.name}_geometry_insert {trigger}")

    def close(self) -> None:
        self.restore_trigger()
        rtree = f"rtree_{self.name}_geometry"
        ids, boxes = rtree_entries(self.fids, self.geometries)
        if not len(ids):
            return
        node_size = _empty_rtree_node_size(self.conn, rtree)
        # An infinite or NaN bound, for which SQLite has rules of its own, goes through SQLite.
        if node_size is not None and np.isfinite(boxes).all():
            write_packed_rtree(self.conn, rtree, node_size, ids, boxes)
            return
        entries = list(zip(ids.tolist(), *boxes.T.tolist(), strict=True))
        self.conn.exec_driver_sql(f"INSERT OR REPLACE INTO {rtree} VALUES (?, ?, ?, ?, ?)", entries)


class RtreeBatches:
    """The ``RtreeBatch`` of each layer a filing inserts into, opened at its first insert."""

    def __init__(self) -> None:
        self._open: dict[str, RtreeBatch] = {}

    def of(self, conn: Any, name: str) -> RtreeBatch:
        if name not in self._open:
            self._open[name] = RtreeBatch(conn, name)
        return self._open[name]

    def close(self) -> None:
        for batch in self._open.values():
            batch.close()
        self._open.clear()


def rtree_entries(
    fids: Sequence[int], geometries: Sequence[BaseGeometry | None]
) -> tuple[np.ndarray, np.ndarray]:
    """The ids and (minx, maxx, miny, maxy) boxes of the geometries the trigger would index."""
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    indexed = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
    boxes = shapely.bounds(geoms[indexed]).reshape(-1, 4)[:, [0, 2, 1, 3]]
    return np.asarray(fids, dtype=np.int64)[indexed], boxes


# The on-disk format of SQLite's R-tree module (ext/rtree/rtree.c; "rtreecheck" verifies it).
# An R-tree table ``t`` keeps its nodes in ``t_node`` (nodeno INTEGER PRIMARY KEY, data), node 1
# being the root; every node is a blob of the same length: a 2-byte depth of the tree (read on
# the root only, 0 elsewhere), a 2-byte cell count, then the cells, zero-padded. A cell is an
# 8-byte rowid (leaf) or child node number, then minx, maxx, miny, maxy as 4-byte floats, all
# big-endian. ``t_rowid`` maps each rowid to its leaf, ``t_parent`` each node but the root to
# its parent. The node size is fixed when the table is created (the page size less 64, at most
# 51 cells) and learnt from the root's length when it is opened.
_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])
_ROUND_TOWARDS_ZERO = 1.0 - 1.0 / 8388608.0
_ROUND_AWAY_FROM_ZERO = 1.0 + 1.0 / 8388608.0


def _empty_rtree_node_size(conn: Any, rtree: str) -> int | None:
    """The node size of an empty R-tree that is its root node alone, else None."""
    nodes, size, used = conn.exec_driver_sql(
        f'SELECT (SELECT count(*) FROM "{rtree}_node"), '
        f'(SELECT length(data) FROM "{rtree}_node" WHERE nodeno = 1), '
        f'EXISTS (SELECT 1 FROM "{rtree}_rowid")'
    ).one()
    return int(size) if nodes == 1 and size and not used else None


def write_packed_rtree(
    conn: Any, rtree: str, node_size: int, ids: np.ndarray, boxes: np.ndarray
) -> None:
    """Write an empty R-tree's tables directly: a packed tree of ``ids`` and their ``boxes``.

    SQLite's R-tree inserts one entry at a time, each a descent from the root with splits and
    reinsertions (6 µs an entry, 0.14 s for 22,653 points); a tree packed by Sort-Tile-Recursive
    is computed with numpy and written as one blob per node. No library writes SQLite's R-tree
    tables, so this is by hand, as GDAL does in C for its bulk GeoPackage writes. The result is
    an ordinary R-tree: SQLite's triggers and queries then use it as they would their own.

    ``boxes`` are (minx, maxx, miny, maxy) doubles, rounded outwards to 32-bit floats as SQLite
    does (``rtreeValueDown`` and ``rtreeValueUp``): the entries are those SQLite would store.
    """
    if not len(ids):
        return
    per_node = (node_size - 4) // _CELL.itemsize
    boxes = np.column_stack([_rounded(boxes[:, i], down=i % 2 == 0) for i in range(4)])
    # Bottom up: each level's cells in node order, the nodes' sizes and numbers (root: 1).
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    while len(ids) > per_node:
        order, sizes = _tiles(boxes, per_node)
        first = 2 + sum(len(level[3]) for level in levels)
        numbers = np.arange(first, first + len(sizes))
        ids, boxes = ids[order], boxes[order]
        levels.append((ids, boxes, sizes, numbers))
        starts = np.cumsum(sizes) - sizes
        ids = numbers
        boxes = np.column_stack(
            [
                np.minimum.reduceat(boxes[:, 0], starts),
                np.maximum.reduceat(boxes[:, 1], starts),
                np.minimum.reduceat(boxes[:, 2], starts),
                np.maximum.reduceat(boxes[:, 3], starts),
            ]
        )
    levels.append((ids, boxes, np.array([len(ids)]), np.array([1])))
    nodes: list[tuple[int, bytes]] = []
    for ids, boxes, sizes, numbers in levels:
        blobs = _node_blobs(ids, boxes, sizes, node_size)
        nodes.extend(zip(numbers.tolist(), blobs, strict=True))
    root = bytearray(nodes.pop()[1])
    root[:2] = (len(levels) - 1).to_bytes(2, "big")  # the depth of the tree, on the root only
    conn.exec_driver_sql(f'UPDATE "{rtree}_node" SET data = ? WHERE nodeno = 1', (bytes(root),))
    if nodes:
        conn.exec_driver_sql(f'INSERT INTO "{rtree}_node" (nodeno, data) VALUES (?, ?)', nodes)
    for depth, (ids, _, sizes, numbers) in enumerate(levels):
        if depth == 0:  # the leaves' cells are rows: _rowid gives each row's leaf
            sql = f'INSERT INTO "{rtree}_rowid" (rowid, nodeno) VALUES (?, ?)'
        else:  # the other cells are nodes: _parent gives each node's parent
            sql = f'INSERT INTO "{rtree}_parent" (nodeno, parentnode) VALUES (?, ?)'
        # In key order each row is appended to the table's B-tree: a fifth faster than at random.
        by_key = np.argsort(ids, kind="stable")
        rows = zip(ids[by_key].tolist(), np.repeat(numbers, sizes)[by_key].tolist(), strict=True)
        conn.exec_driver_sql(sql, list(rows))


def _node_blobs(
    ids: np.ndarray, boxes: np.ndarray, sizes: np.ndarray, node_size: int
) -> list[bytes]:
    """Nodes as SQLite stores them (depth 0): the cells ``ids`` and ``boxes``, in nodes of
    ``sizes`` cells each."""
    per_node = (node_size - 4) // _CELL.itemsize
    layout: Any = {
        "names": ["count", "cells"],
        "formats": [">u2", (_CELL, per_node)],
        "offsets": [2, 4],  # bytes 0-1, the depth of the tree, are the root's alone
        "itemsize": node_size,
    }
    nodes: Any = np.zeros(len(sizes), np.dtype(layout))
    nodes["count"] = sizes
    node = np.repeat(np.arange(len(sizes)), sizes)
    slot = np.arange(len(ids)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    nodes["cells"]["id"][node, slot] = ids
    nodes["cells"]["box"][node, slot] = boxes
    raw = nodes.tobytes()
    return [raw[i : i + node_size] for i in range(0, len(raw), node_size)]


def _tiles(boxes: np.ndarray, per_node: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort-Tile-Recursive: the order of ``boxes`` that groups them into nodes, and the nodes'
    sizes (as even as they can be, so no node but the root is less than half full).

    The boxes are cut into vertical slices of about sqrt(nodes) nodes each by the x of their
    centres, and each slice into nodes by the y of theirs.
    """
    count = len(boxes)
    nodes = -(-count // per_node)
    sizes = np.full(nodes, count // nodes)
    sizes[: count % nodes] += 1
    slices = math.isqrt(nodes - 1) + 1  # ceil(sqrt(nodes))
    slice_of_node = np.arange(nodes) * slices // nodes
    by_x = np.argsort(boxes[:, 0].astype(np.float64) + boxes[:, 1], kind="stable")
    y = boxes[by_x, 2].astype(np.float64) + boxes[by_x, 3]
    return by_x[np.lexsort((y, np.repeat(slice_of_node, sizes)))], sizes


def _rounded(values: np.ndarray, down: bool) -> np.ndarray:
    """Doubles as 32-bit floats rounded down (or up), exactly as SQLite's R-tree rounds them."""
    rounded = values.astype(np.float32)
    wrong = rounded > values if down else rounded < values
    if wrong.any():
        d = values[wrong]
        factor = (d < 0) == down
        rounded[wrong] = d * np.where(factor, _ROUND_AWAY_FROM_ZERO, _ROUND_TOWARDS_ZERO)
    return rounded


def mark_layers_changed(conn: Any) -> None:
    """Stamp the layers' last change and clear their stored extents.

    Recomputing extents scans every R-tree (0.4 s per write on a register of 100k areas);
    an empty extent is allowed, and GDAL (so QGIS) then computes it from the R-tree when asked.
    """
    conn.exec_driver_sql(
        "UPDATE gpkg_contents SET min_x = NULL, min_y = NULL, max_x = NULL, max_y = NULL, "
        "last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE data_type = 'features'"
    )
