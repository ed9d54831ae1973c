"""What makes a SQLite file a GeoPackage (OGC 12-128r18): the application id, the required
metadata tables, the layer registry, and the R-tree spatial index with its triggers.

The triggers call ``ST_MinX`` and friends; GDAL defines them when it opens a file, and
``register_functions`` defines them on Safeground's own connections. Safeground's bulk inserts
index their rows themselves (``rtree_filled_in_bulk``), which is much faster than the triggers.
"""

from __future__ import annotations

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
    insert itself; it is dropped for the block, and the R-tree rows, computed from the
    geometries in one vectorised call, are inserted with one statement. Run inside the
    transaction of the insert, so that a failure restores the trigger with everything else.
    """
    rtree = f"rtree_{name}_geometry"
    conn.exec_driver_sql(f"DROP TRIGGER {rtree}_insert")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"CREATE TRIGGER {rtree}_insert {_rtree_triggers(name)['insert']}")
    entries = rtree_entries(fids, geometries)
    if entries:
        conn.exec_driver_sql(f"INSERT OR REPLACE INTO {rtree} VALUES (?, ?, ?, ?, ?)", entries)


def rtree_entries(
    fids: Sequence[int], geometries: Sequence[BaseGeometry | None]
) -> list[tuple[int, float, float, float, float]]:
    """(id, minx, maxx, miny, maxy) of each geometry the insert trigger would index."""
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    indexed = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
    minx, miny, maxx, maxy = shapely.bounds(geoms[indexed]).T
    ids = np.asarray(fids)[indexed]
    return list(zip(*(a.tolist() for a in (ids, minx, maxx, miny, maxy)), strict=True))


def mark_layers_changed(conn: Any) -> None:
    """Stamp the layers' last change and clear their stored extents.

    Recomputing extents scans every R-tree (0.4 s per write on a register of 100k areas);
    an empty extent is allowed, and GDAL (so QGIS) then computes it from the R-tree when asked.
    """
    conn.exec_driver_sql(
        "UPDATE gpkg_contents SET min_x = NULL, min_y = NULL, max_x = NULL, max_y = NULL, "
        "last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE data_type = 'features'"
    )
