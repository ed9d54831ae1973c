"""Reading an input file into attribute rows and WGS84 geometries, whatever its format.

GeoJSON, GeoPackage, zipped Shapefile (and anything else GDAL reads) go through pyogrio; CSV and
JSON arrays of objects through pandas, with points from lon/lat columns or geometries from a
WKT column. Geometries are reprojected to EPSG:4326 only when a CRS is known (from the file or
declared by the mapping); coordinates that are not lon/lat with no CRS to explain them are
flagged per row, never guessed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from safeground.domain.errors import Problem, ValidationFailed
from safeground.io.mapping import InputFormat

WGS84 = CRS.from_epsg(4326)


class ReadFailed(ValidationFailed):
    """The file cannot be read as the mapping describes it (not a row problem)."""

    def __init__(self, file: str, reason: str):
        super().__init__([Problem(None, reason, file)])
        self.file = file
        self.reason = reason


@dataclass
class InputTable:
    """One input file: attribute rows in file order and one geometry (or None) per row."""

    path: Path
    frame: pd.DataFrame
    geometry: list[BaseGeometry | None]
    # Geometry as it was in the file (before reprojection), for the rejects file.
    original_geometry: list[BaseGeometry | None] | None = None
    # Row index (0-based) → why the row's coordinates cannot be used.
    geometry_problems: dict[int, str] = field(default_factory=dict)
    crs: str | None = None
    reprojected_from: str | None = None

    @functools.cached_property
    def name(self) -> str:
        return self.path.name

    def __len__(self) -> int:
        return len(self.frame)


def read_input(path: Path, fmt: InputFormat) -> InputTable:
    """Read ``path`` as the mapping's format hints say, with geometries in EPSG:4326."""
    if not path.is_file():
        raise ReadFailed(path.name, f"no such file: {path}")
    kind = detect_kind(path)
    try:
        if kind == "csv":
            frame, geoms, file_crs = _read_csv(path, fmt), None, None
        elif kind == "json-array":
            frame, geoms, file_crs = _read_json_array(path), None, None
        else:
            frame, geoms, file_crs = _read_ogr(path, fmt)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise ReadFailed(path.name, f"cannot read the file: {exc}") from None
    except UnicodeDecodeError as exc:
        reason = f"cannot read the file as {kind}: {exc}; declare format.encoding (e.g. latin-1)"
        raise ReadFailed(path.name, reason) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ReadFailed(path.name, f"cannot read the file as {kind}: {exc}") from None
    table = InputTable(path, frame, [None] * len(frame))
    if fmt.lon is not None and fmt.lat is not None:
        _check_columns(path, frame, [fmt.lon, fmt.lat])
        table.geometry = _points(frame, fmt.lon, fmt.lat, table.geometry_problems)
    elif fmt.wkt is not None:
        _check_columns(path, frame, [fmt.wkt])
        table.geometry = _from_wkt(frame, fmt.wkt, table.geometry_problems)
    elif geoms is not None:
        table.geometry = geoms
        table.original_geometry = list(geoms)
    _to_wgs84(table, fmt, file_crs)
    return table


def detect_kind(path: Path) -> str:
    """csv, json-array (a JSON list of objects) or ogr (anything GDAL reads)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix == ".json":
        with path.open("rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):
            return "json-array"
    return "ogr"


def _read_csv(path: Path, fmt: InputFormat) -> pd.DataFrame:
    # Every cell as text: codes like "01" must stay as written; the record model converts.
    return pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        encoding=fmt.encoding or "utf-8-sig",
        sep=fmt.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ","),
    )


def _read_json_array(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8-sig") as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("expected a JSON array of objects")
    return pd.DataFrame.from_records(data)


def _read_ogr(path: Path, fmt: InputFormat) -> tuple[pd.DataFrame, list[Any] | None, CRS | None]:
    layer = fmt.layer
    # A GeoJSON file is one layer; listing the layers would parse it a second time.
    if layer is None and path.suffix.lower() not in (".json", ".geojson"):
        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            names = ", ".join(str(row[0]) for row in layers)
            raise ValueError(f"the file has several layers ({names}): name one in format.layer")
    gdf = pyogrio.read_dataframe(path, layer=layer)
    if isinstance(gdf, gpd.GeoDataFrame) and gdf.geometry.name in gdf.columns:
        crs = CRS.from_user_input(gdf.crs) if gdf.crs is not None else None
        geoms = np.asarray(gdf.geometry.array, dtype=object).tolist()  # not one by one
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        return frame, geoms, crs
    return pd.DataFrame(gdf), None, None


def _check_columns(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReadFailed(path.name, missing_columns_reason(missing, frame))


def missing_columns_reason(missing: list[str], frame: pd.DataFrame) -> str:
    have = ", ".join(str(c) for c in frame.columns)
    return f"the mapping reads column(s) {', '.join(missing)}, not in the file (columns: {have})"


def _points(
    frame: pd.DataFrame, lon: str, lat: str, problems: dict[int, str]
) -> list[BaseGeometry | None]:
    x = pd.to_numeric(frame[lon], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(frame[lat], errors="coerce").to_numpy(dtype=float)
    given_x = ~frame[lon].map(_blank).to_numpy(dtype=bool)
    given_y = ~frame[lat].map(_blank).to_numpy(dtype=bool)
    for i in np.flatnonzero((given_x & np.isnan(x)) | (given_y & np.isnan(y))):
        problems[int(i)] = (
            f"{lon}/{lat}: {frame[lon].iat[int(i)]!r}, {frame[lat].iat[int(i)]!r} are not numbers"
        )
    for i in np.flatnonzero(given_x != given_y):
        problems.setdefault(int(i), f"{lon}/{lat}: give both coordinates or neither")
    ok = ~(np.isnan(x) | np.isnan(y))
    points = shapely.points(np.where(ok, x, 0.0), np.where(ok, y, 0.0))
    return [p if good else None for p, good in zip(points, ok, strict=True)]


def _from_wkt(frame: pd.DataFrame, column: str, problems: dict[int, str]) -> list[Any]:
    text = frame[column].map(lambda v: None if _blank(v) else str(v)).to_numpy(dtype=object)
    geoms = shapely.from_wkt(text, on_invalid="ignore")
    for i in np.flatnonzero((geoms == None) & (text != None)):  # noqa: E711 (element-wise)
        problems[int(i)] = f"{column}: cannot read {str(text[i])[:60]!r} as WKT"
    return list(geoms)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == ""


def _to_wgs84(table: InputTable, fmt: InputFormat, file_crs: CRS | None) -> None:
    declared = CRS.from_user_input(fmt.crs) if fmt.crs else None
    if (
        declared is not None
        and file_crs is not None
        and not declared.equals(file_crs, ignore_axis_order=True)
    ):
        raise ReadFailed(
            table.name,
            f"the file says its CRS is {_crs_name(file_crs)} but the mapping declares "
            f"{_crs_name(declared)}: fix whichever is wrong",
        )
    crs = declared or file_crs
    if crs is None:
        for i, geom in enumerate(table.geometry):
            if geom is not None and not geom.is_empty and not _lon_lat(geom):
                minx, miny, _, _ = geom.bounds
                table.geometry_problems.setdefault(
                    i,
                    f"coordinates ({minx:.6g}, {miny:.6g}) are not longitude/latitude and "
                    "neither the file nor the mapping gives a CRS: declare it "
                    "(format: {crs: EPSG:...})",
                )
        table.crs = None
        return
    table.crs = _crs_name(crs)
    if crs.equals(WGS84, ignore_axis_order=True):
        return
    series = gpd.GeoSeries(table.geometry, crs=crs).to_crs(WGS84)
    table.geometry = [None if g is None else g for g in series.array]
    table.reprojected_from = table.crs


def _crs_name(crs: CRS) -> str:
    found = crs.to_authority()
    return f"{found[0]}:{found[1]}" if found else crs.name


def _lon_lat(geom: BaseGeometry) -> bool:
    minx, miny, maxx, maxy = geom.bounds
    return -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
