"""Column types that differ between the two backends.

GeoAlchemy2 would need SpatiaLite to write GeoPackage; Safeground needs only to encode and decode
geometries, so geometry is a small type here: the GeoPackage binary format (a short header and
standard WKB) on SQLite, and hex EWKB, which PostGIS accepts and returns as text, on PostgreSQL.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Dialect, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

SRID = 4326

# GeoPackage binary header flags: little-endian, with an xy envelope (indicator 1), or empty.
_FLAGS_ENVELOPE = 0b0000_0011
_FLAGS_NO_ENVELOPE = 0b0000_0001
_FLAG_EMPTY = 0b0001_0000
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _gpkg_header(empty: bool, bounds: Sequence[float]) -> bytes:
    if empty:
        return struct.pack("<2sBBi", b"GP", 0, _FLAGS_NO_ENVELOPE | _FLAG_EMPTY, SRID)
    # Every non-empty geometry gets an envelope, points too: the R-tree triggers then read the
    # bounds from the header instead of parsing the geometry.
    minx, miny, maxx, maxy = bounds
    return struct.pack("<2sBBi4d", b"GP", 0, _FLAGS_ENVELOPE, SRID, minx, maxx, miny, maxy)


def encode_geometries(values: Sequence[BaseGeometry | None], dialect: str) -> list[Any]:
    """Many geometries as ``Geometry`` binds each one, with one vectorised shapely call.

    Encoding one geometry at a time costs more in shapely's per-call overhead than the encoding
    itself: a bulk import of 30,000 points spent a tenth of its time there.
    """
    geoms = np.empty(len(values), dtype=object)
    geoms[:] = list(values)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    found = geoms[present]
    out: list[Any] = [None] * len(values)
    if dialect == "postgresql":
        encoded = shapely.to_wkb(shapely.set_srid(found, SRID), hex=True, include_srid=True)
        for i, value in zip(present.tolist(), encoded.tolist(), strict=True):
            out[i] = value
        return out
    wkb = shapely.to_wkb(found, byte_order=1).tolist()
    empty = shapely.is_empty(found).tolist()
    bounds = shapely.bounds(found).tolist()
    for i, blob, is_empty, box in zip(present.tolist(), wkb, empty, bounds, strict=True):
        out[i] = _gpkg_header(is_empty, box) + blob
    return out


def gpkg_wkb(blob: bytes) -> bytes:
    """The WKB part of a GeoPackage geometry blob."""
    if blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry blob")
    flags = blob[3]
    return blob[8 + _ENVELOPE_BYTES[(flags >> 1) & 0b111] :]


def gpkg_envelope(blob: bytes) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) from the header, or from the geometry when it has none."""
    if blob is None:
        return None
    flags = blob[3]
    if flags & _FLAG_EMPTY:
        return None
    byte_order = "<" if flags & 1 else ">"
    if (flags >> 1) & 0b111:
        minx, maxx, miny, maxy = struct.unpack(byte_order + "4d", blob[8:40])
        return minx, maxx, miny, maxy
    minx, miny, maxx, maxy = shapely.from_wkb(gpkg_wkb(blob)).bounds
    return minx, maxx, miny, maxy


class _GpkgGeometry(UserDefinedType[BaseGeometry]):
    cache_ok = True

    def __init__(self, geometry_type: str):
        self.geometry_type = geometry_type

    def get_col_spec(self, **kw: Any) -> str:
        return self.geometry_type


class _PostgisGeometry(UserDefinedType[BaseGeometry]):
    cache_ok = True

    def __init__(self, geometry_type: str):
        self.geometry_type = geometry_type

    def get_col_spec(self, **kw: Any) -> str:
        return f"geometry({self.geometry_type},{SRID})"


class Geometry(TypeDecorator[BaseGeometry]):
    """A WGS84 geometry column of one declared type (POINT, POLYGON, MULTIPOLYGON, GEOMETRY)."""

    impl = Text
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY"):
        super().__init__()
        self.geometry_type = geometry_type

    def __repr__(self) -> str:
        return f"Geometry({self.geometry_type!r})"

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostgisGeometry(self.geometry_type))
        return dialect.type_descriptor(_GpkgGeometry(self.geometry_type))

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> Any:
        return None if value is None else encode_geometries([value], dialect.name)[0]

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            # Hex text as bytes first: GEOS reads hex WKB several times slower (25 µs against
            # 4 µs for a polygon of 65 points).
            return shapely.from_wkb(bytes.fromhex(value))
        return shapely.from_wkb(gpkg_wkb(value))


_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def encode_json(value: Any) -> str:
    """JSON text with sorted keys, written by orjson (a bulk import encodes 30k documents).

    orjson writes NaN and infinity as null; they are refused here instead, so that nothing is
    silently changed on its way into the register.
    """
    text = orjson.dumps(value, option=_JSON_OPTIONS).decode()
    if "null" in text and _has_non_finite(value):
        raise ValueError("JSON cannot hold NaN or infinity")
    return text


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


class JsonValue(TypeDecorator[Any]):
    """JSON: JSONB on PostgreSQL, TEXT on GeoPackage (a type GDAL and QGIS read as a string)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return encode_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # Infinity, which Python's json wrote before orjson
            return json.loads(value)


class Timestamp(TypeDecorator[datetime]):
    """UTC time: GeoPackage DATETIME text (ISO 8601 with Z), timestamptz on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(_DatetimeText())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if dialect.name == "postgresql":
            return value
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value.replace("Z", "+00:00"))


class _DatetimeText(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"
