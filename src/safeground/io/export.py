"""Exports of the register's current views as GeoPackage, GeoJSON or CSV, for GIS and reports.

Layers are the record tables plus ``processed_land`` and ``hazard_change``. Geometries are
written as they are stored (EPSG:4326, never promoted or repaired); lists and objects become
JSON text, dates ISO 8601 text, so every format reads the same. Victims' personal fields stay
out unless ``include_personal`` is passed explicitly.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from sqlalchemy import Boolean, Connection, Date, Double, Integer, Table, select

from safeground.domain.errors import Problem, ValidationFailed
from safeground.service.register import Register
from safeground.storage.schema import (
    LAYER_GEOMETRY,
    hazard_change,
    processed_land,
    record_tables,
    victim_personal,
)
from safeground.storage.types import Geometry, JsonValue, Timestamp

FORMATS = {"gpkg": "GPKG", "geojson": "GeoJSON", "csv": "CSV"}
LAYERS: dict[str, Table] = {
    **record_tables,
    "processed_land": processed_land,
    "hazard_change": hazard_change,
}
# Columns that only make sense inside the register's own file.
INTERNAL_COLUMNS = ("fid",)
_GEOMETRY_TYPES = {"POINT": "Point", "GEOMETRY": "Unknown"}


def layer_names() -> list[str]:
    return list(LAYERS)


def export_layers(
    register: Register,
    out: Path,
    fmt: str,
    layers: list[str] | None = None,
    include_personal: bool = False,
) -> list[Path]:
    """Write current views to ``out``: one GeoPackage file, or a folder of .geojson/.csv files.

    Without ``layers``, every layer that has rows is written; named layers are written even
    when empty. Returns the files written.
    """
    if fmt not in FORMATS:
        raise ValidationFailed(
            [Problem("format", f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")]
        )
    layers = list(layers) if layers else None  # an empty selection means every layer
    unknown = [name for name in layers or [] if name not in LAYERS]
    if unknown:
        raise ValidationFailed(
            [
                Problem("layers", f"unknown layer {name!r}; layers: {', '.join(LAYERS)}")
                for name in unknown
            ]
        )
    out = Path(out)
    _refuse_register_file(register, out)
    with register.store.read() as conn:
        frames = {
            name: layer_frame(conn, name, include_personal) for name in (layers or list(LAYERS))
        }
    if layers is None:
        frames = {name: frame for name, frame in frames.items() if len(frame)}
    if fmt == "gpkg":
        return _write_gpkg(out, frames)
    return _write_files(out, frames, fmt)


def layer_frame(conn: Connection, name: str, include_personal: bool = False) -> pd.DataFrame:
    """A layer as a (Geo)DataFrame with export-ready columns, ordered by record or row."""
    table = LAYERS[name]
    order = table.c.record_id if "record_id" in table.c else table.c.fid
    rows = conn.execute(select(table).order_by(order)).all()
    columns = [c.name for c in table.c if c.name not in INTERNAL_COLUMNS]
    frame = pd.DataFrame([{c: getattr(r, c) for c in columns} for r in rows], columns=columns)
    for column in table.c:
        if column.name in frame.columns and not isinstance(column.type, Geometry):
            frame[column.name] = _export_column(frame[column.name], column.type)
    if include_personal and name == "victim":
        frame = _with_personal(conn, frame)
    if "geometry" in table.c:
        geometry = frame.pop("geometry")
        return gpd.GeoDataFrame(frame, geometry=list(geometry), crs="EPSG:4326")
    return frame


def _export_column(values: pd.Series, kind: Any) -> pd.Series:
    if isinstance(kind, JsonValue):
        return values.map(
            lambda v: None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
        ).astype(object)
    if isinstance(kind, Timestamp):
        return values.map(_iso_time).astype(object)
    if isinstance(kind, Date):
        return values.map(lambda v: v.isoformat() if isinstance(v, date) else None).astype(object)
    if isinstance(kind, Boolean):
        return values.astype("boolean")
    if isinstance(kind, Integer):
        return values.astype("Int64")
    if isinstance(kind, Double):
        return values.astype("float64")
    return values.astype(object)


def _iso_time(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.isoformat().replace("+00:00", "Z")


def _with_personal(conn: Connection, frame: pd.DataFrame) -> pd.DataFrame:
    private = pd.DataFrame(
        [dict(r._mapping) for r in conn.execute(select(victim_personal))],
        columns=[c.name for c in victim_personal.c],
    )
    return frame.merge(private.astype(object), on="record_id", how="left")


def _refuse_register_file(register: Register, out: Path) -> None:
    own = getattr(register.store, "path", None)
    if own is not None and out.exists() and out.resolve() == Path(own).resolve():
        raise ValidationFailed([Problem("out", f"{out} is the register itself")])


def _write_gpkg(out: Path, frames: dict[str, pd.DataFrame]) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    for name, frame in frames.items():
        _write(frame, out, "GPKG", name)
    return [out] if frames else []


def _write_files(out: Path, frames: dict[str, pd.DataFrame], fmt: str) -> list[Path]:
    suffix = f".{fmt}"
    if out.suffix.lower() == suffix and len(frames) == 1:
        targets = {next(iter(frames)): out}
    else:
        targets = {name: out / f"{name}{suffix}" for name in frames}
    written = []
    for name, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        _write(frames[name], path, FORMATS[fmt], name)
        written.append(path)
    return written


def _write(frame: pd.DataFrame, path: Path, driver: str, layer: str) -> None:
    options: dict[str, Any] = {}
    if driver == "CSV" and isinstance(frame, gpd.GeoDataFrame):
        options["layer_options"] = {"GEOMETRY": "AS_WKT"}
    if isinstance(frame, gpd.GeoDataFrame):
        options["geometry_type"] = _GEOMETRY_TYPES.get(LAYER_GEOMETRY.get(layer, ""), "Unknown")
        options["promote_to_multi"] = False
    pyogrio.write_dataframe(frame, path, layer=layer, driver=driver, **options)
