"""A local base map under the register's layers: an MBTiles or PMTiles file, never the internet.

MBTiles (SQLite) tiles are served one by one at ``/basemap/{z}/{x}/{y}``. A PMTiles archive is
served whole at ``/basemap.pmtiles`` with HTTP range requests, which the pmtiles library in the
page reads tile by tile. Without a base map the page draws admin areas on a plain background.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from safeground.domain.errors import NotFound
from safeground.web.deps import get_settings

router = APIRouter(include_in_schema=False)

# MBTiles ``format`` metadata to the media type served; "pbf" is a vector base map.
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "pbf": "application/x-protobuf",
}


@dataclass(frozen=True)
class BaseMap:
    """What the page needs to draw a base map."""

    kind: str  # "mbtiles" or "pmtiles"
    url: str
    # For MBTiles: tile format, raster or vector, zoom range and attribution from its metadata.
    tile_format: str = "png"
    minzoom: int = 0
    maxzoom: int = 14
    attribution: str | None = None
    vector_layers: tuple[str, ...] = ()

    @property
    def vector(self) -> bool:
        return self.tile_format == "pbf"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "vector": self.vector,
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "attribution": self.attribution,
            "vector_layers": list(self.vector_layers),
        }


def describe(path: Path | None) -> BaseMap | None:
    """The configured base map, or None; a missing or unreadable file is an error, not a blank."""
    if path is None:
        return None
    if not path.is_file():
        raise NotFound(f"base map {path} does not exist")
    if path.suffix == ".pmtiles":
        return BaseMap("pmtiles", "/basemap.pmtiles")
    if path.suffix != ".mbtiles":
        raise NotFound(f"base map {path}: give a .mbtiles or .pmtiles file")
    meta = _metadata(path)
    fmt = meta.get("format", "png")
    if fmt not in MEDIA_TYPES:
        raise NotFound(f"base map {path}: tile format {fmt!r} is not one of {sorted(MEDIA_TYPES)}")
    layers: tuple[str, ...] = ()
    if fmt == "pbf" and "json" in meta:
        layers = tuple(layer["id"] for layer in json.loads(meta["json"]).get("vector_layers", []))
    return BaseMap(
        "mbtiles",
        "/basemap/{z}/{x}/{y}",
        tile_format=fmt,
        minzoom=int(meta.get("minzoom", 0)),
        maxzoom=int(meta.get("maxzoom", 14)),
        attribution=meta.get("attribution"),
        vector_layers=layers,
    )


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _metadata(path: Path) -> dict[str, str]:
    try:
        with _connect(path) as conn:
            return dict(conn.execute("SELECT name, value FROM metadata").fetchall())
    except sqlite3.DatabaseError as error:
        raise NotFound(f"base map {path} is not a readable MBTiles file: {error}") from None


def _configured(request: Request) -> Path:
    path = get_settings(request).base_map
    if path is None:
        raise NotFound("no base map is configured (setting base_map)")
    return path


@router.get("/basemap/{z}/{x}/{y}")
def mbtiles_tile(request: Request, z: int, x: int, y: int) -> Response:
    """One tile of an MBTiles base map (MBTiles rows count from the south: TMS)."""
    path = _configured(request)
    base = describe(path)
    assert base is not None
    if base.kind != "mbtiles":
        raise NotFound("the base map is not an MBTiles file")
    with _connect(path) as conn:
        row = conn.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, x, (1 << z) - 1 - y),
        ).fetchone()
    if row is None:
        return Response(status_code=204)
    headers = {"Cache-Control": "public, max-age=86400"}
    if base.vector and bytes(row[0][:2]) == b"\x1f\x8b":
        headers["Content-Encoding"] = "gzip"
    return Response(bytes(row[0]), media_type=MEDIA_TYPES[base.tile_format], headers=headers)


@router.api_route("/basemap.pmtiles", methods=["GET", "HEAD"])
def pmtiles_archive(request: Request) -> FileResponse:
    """The PMTiles archive; the page reads byte ranges of it. HEAD too, which other readers
    (GDAL's /vsicurl/) send first to learn the size."""
    path = _configured(request)
    base = describe(path)  # a file gone since start-up is a 404 that says so, not a 500
    assert base is not None
    if base.kind != "pmtiles":
        raise NotFound("the base map is not a PMTiles file")
    return FileResponse(path, media_type="application/octet-stream")
