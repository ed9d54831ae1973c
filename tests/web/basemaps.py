"""Small real base maps written at test time, as PMTiles v3 archives and MBTiles files.

A raster tile is one colour and a vector tile one polygon covering it, so a browser test tells
the base map from the page's own background by one pixel. A label (its position, say) keeps
tiles of one picture distinct, as a real base map's are: the pmtiles writer stores equal
neighbours as one run, and then takes the zoom of the last run's first tile as the maximum.
``world()`` is every position of zooms 0-2; MapLibre enlarges the tiles beyond.
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
from pathlib import Path

import mapbox_vector_tile
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write

MAXZOOM = 2
ATTRIBUTION = "Survey dept"
VECTOR_LAYER = "earth"

Position = tuple[int, int, int]  # z, x, y (XYZ: rows from the north)


def raster_tile(colour: tuple[int, int, int], label: str = "") -> bytes:
    """A 256-pixel PNG tile of one colour (the label in a text chunk)."""
    info = PngInfo()
    info.add_text("label", label)
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def vector_tile(label: str = "") -> bytes:
    """A gzipped Mapbox vector tile whose one layer is a polygon a little larger than the tile,
    as Protomaps and tippecanoe write them (the label its property)."""
    square = "POLYGON((-64 -64, 4160 -64, 4160 4160, -64 4160, -64 -64))"
    feature = {"geometry": square, "properties": {"label": label}}
    layer = {"name": VECTOR_LAYER, "features": [feature]}
    return gzip.compress(mapbox_vector_tile.encode([layer]), mtime=0)


def world() -> list[Position]:
    """Every tile position of zooms 0..MAXZOOM."""
    return [(z, x, y) for z in range(MAXZOOM + 1) for x in range(1 << z) for y in range(1 << z)]


def _vector_layers(maxzoom: int) -> list[dict[str, object]]:
    fields = {"label": "String"}
    return [{"id": VECTOR_LAYER, "fields": fields, "minzoom": 0, "maxzoom": maxzoom}]


def write_pmtiles(path: Path, tiles: dict[Position, bytes], *, vector: bool = False) -> None:
    """A PMTiles v3 archive of the tiles given by XYZ position, PNG or gzipped vector tiles."""
    metadata: dict[str, object] = {"name": "test base map", "attribution": ATTRIBUTION}
    zooms = [z for z, _, _ in tiles]
    if vector:
        metadata["vector_layers"] = _vector_layers(max(zooms))
    with write(str(path)) as writer:
        for tile_id, data in sorted((zxy_to_tileid(*p), data) for p, data in tiles.items()):
            writer.write_tile(tile_id, data)
        writer.finalize(
            {
                "tile_type": TileType.MVT if vector else TileType.PNG,
                "tile_compression": Compression.GZIP if vector else Compression.NONE,
                "min_zoom": min(zooms),
                "max_zoom": max(zooms),
            },
            metadata,
        )


def write_mbtiles(path: Path, tiles: dict[Position, bytes], *, vector: bool = False) -> None:
    """An MBTiles file of the tiles given by XYZ position (stored with TMS rows, from the
    south), PNG or gzipped vector tiles."""
    zooms = [z for z, _, _ in tiles]
    metadata = [
        ("name", "test base map"),
        ("format", "pbf" if vector else "png"),
        ("minzoom", str(min(zooms))),
        ("maxzoom", str(max(zooms))),
        ("attribution", ATTRIBUTION),
    ]
    if vector:
        metadata.append(("json", json.dumps({"vector_layers": _vector_layers(max(zooms))})))
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        conn.execute(
            "CREATE TABLE tiles (zoom_level INT, tile_column INT, tile_row INT, tile_data BLOB)"
        )
        conn.executemany("INSERT INTO metadata VALUES (?, ?)", metadata)
        conn.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()],
        )
    conn.close()
