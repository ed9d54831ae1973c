"""Mapbox Vector Tiles of the map layers, from the GeoPackage (shapely + mapbox-vector-tile) or
from PostGIS (ST_AsMVT), with the same features and properties from both.

Generalisation, so that a register of 100k hazardous areas stays small at national zooms:
below ``DETAIL_ZOOM`` a tile is divided into ``CELLS`` × ``CELLS`` cells (4 pixels of a 256-pixel
tile). A feature whose envelope is smaller than a cell in both directions is drawn as the square
of the cell holding its envelope's centre (a point layer: the cell's centre), and only one such
feature per cell is kept: the most important (hazards: CHA, then SHA, ...; processed land:
cleared, reduced, cancelled), then the first by id; ``feature_count`` says how many it stands
for. Larger features keep their shape, simplified to half a pixel. From ``DETAIL_ZOOM``
on, every feature is drawn as it is (``feature_count`` 1). Which features are kept is decided by
one SQL query on both backends; only drawing and encoding differ.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from typing import Any

import mapbox_vector_tile
import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    select,
)

from safeground.domain.access import Principal
from safeground.service.layers import Layer, Query, conditions, rtree_of
from safeground.storage import generations
from safeground.storage.generations import ChangeLog
from safeground.storage.rows import chunked_in
from safeground.storage.store import Store

EXTENT = 4096  # tile coordinate units
BUFFER = 64  # units drawn beyond the tile edge, so that outlines do not stop at it
DETAIL_ZOOM = 14
CELLS = 64
MAX_ZOOM = 22
HALF_WORLD = 20037508.342789244  # web mercator half-width, metres
FEATURE_COUNT = "feature_count"

_TO_MERCATOR = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


@dataclass(frozen=True)
class TileAddress:
    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 <= self.z <= MAX_ZOOM:
            raise ValueError(f"zoom {self.z}: give 0 to {MAX_ZOOM}")
        if not (0 <= self.x < 2**self.z and 0 <= self.y < 2**self.z):
            raise ValueError(f"tile {self.z}/{self.x}/{self.y} is outside the zoom's grid")

    @property
    def size(self) -> float:
        return 2 * HALF_WORLD / 2**self.z

    def bounds(self) -> tuple[float, float, float, float]:
        """Web mercator bounds (x from the west, y from the north, as XYZ tiles count)."""
        minx = -HALF_WORLD + self.x * self.size
        maxy = HALF_WORLD - self.y * self.size
        return minx, maxy - self.size, minx + self.size, maxy

    def lonlat_bounds(self, margin: float) -> tuple[float, float, float, float]:
        """The tile widened by ``margin`` (a fraction of its size), in lon/lat."""
        minx, miny, maxx, maxy = self.bounds()
        pad = margin * self.size
        lon0, lat0 = _to_lonlat(minx - pad, miny - pad)
        lon1, lat1 = _to_lonlat(maxx + pad, maxy + pad)
        return lon0, lat0, lon1, lat1


def _to_lonlat(x: float, y: float) -> tuple[float, float]:
    x = min(max(x, -HALF_WORLD), HALF_WORLD)
    y = min(max(y, -HALF_WORLD), HALF_WORLD)
    lon = x / HALF_WORLD * 180
    lat = math.degrees(2 * math.atan(math.exp(y / HALF_WORLD * math.pi)) - math.pi / 2)
    return lon, lat


def tile(
    store: Store,
    layer: Layer,
    principal: Principal,
    address: TileAddress,
    query: Query,
    cache: TileCache | None = None,
) -> bytes | None:
    """The layer's tile, or None when no feature is in it."""
    where = conditions(layer, principal, query)
    layer = layer.scored_by(query.risk_map)
    with store.read() as conn:

        def draw() -> bytes | None:
            if store.dialect == "postgresql":
                return _postgis_tile(conn, store, layer, address, where)
            return _gpkg_tile(conn, store, layer, address, where)

        if cache is None:
            return draw()
        views = layer.tile_views(query.filters)
        now = store.generations(conn)
        at = tuple(now.views[view] for view, _ in views)
        # The features a tile draws are those whose envelope meets this (``_selection``).
        area = address.lonlat_bounds(BUFFER / EXTENT)

        def unchanged(since: tuple[int, ...]) -> bool:
            """Whether nothing the tile shows changed from generations ``since`` to ``at``."""
            for (view, placed), before, after in zip(views, since, at, strict=True):
                if after <= before:
                    continue
                if not placed:
                    return False
                changed = cache.log.changed(conn, store, now.register, view, before, after)
                if changed is None or generations.meets(changed, area):
                    return False
            return True

        key = _cache_key(now.register, layer, principal, address, query)
        return cache.get_or_draw(key, draw, at, unchanged)


_MISSING = object()


@dataclass
class _Kept:
    """A tile kept: drawn at generations ``low`` of the views it reads, and known to be the
    same at every generation up to ``high``."""

    drawn_at: float
    data: bytes | None
    low: tuple[int, ...]
    high: tuple[int, ...]

    def holds(self, at: tuple[int, ...]) -> bool:
        return all(lo <= g <= hi for lo, g, hi in zip(self.low, at, self.high, strict=True))

    def precedes(self, at: tuple[int, ...]) -> bool:
        """Drawn at generations no newer than ``at`` (so it may still be current there)."""
        return all(lo <= g for lo, g in zip(self.low, at, strict=True))


class TileCache:
    """Tiles drawn recently, in memory: national tiles of a large register take long to draw
    (about a second at zoom 6 with 100k areas) and every user asks for the same ones.

    A tile is kept with the generations of the views it reads (its layer's table; the risk
    scores a hazard tile joins; the hazardous areas a district filter of land or tasks goes
    through) and served while they are the generations a request sees. When a view has moved
    on, the tile is still served, and known current at the new generations, if the writes
    since changed none of its features: for the layer's own table, none of the boxes the
    writes logged (``storage.generations``) meets the tile; any change to another view it
    reads makes it stale. So an approval redraws only the tiles where it changed something,
    of the layers it changed. A tile is kept for the register it was drawn from (its identity
    is in the key): another register put where that one was, which counts its generations
    from 0 again, is drawn anew, and the first one's tiles go first when the cache is full,
    as the least recently used. An entry also expires after ``max_age_s``, which bounds how long
    a change made outside Safeground (a GeoPackage edited in QGIS) can take to show. Least
    recently used tiles go first beyond ``max_bytes``. A tile is drawn by one request at a
    time: the others asking for it meanwhile wait for that drawing (when a server starts,
    every map open asks for the same national tiles, and drawing each of them several times
    at once made all of them, and every request queued behind them, slower).
    """

    def __init__(
        self, max_bytes: int = 64 * 2**20, max_age_s: float = 300.0, log: ChangeLog | None = None
    ):
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.log = log or ChangeLog()
        self._tiles: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._drawing: dict[Hashable, threading.Event] = {}

    def get_or_draw(
        self,
        key: Hashable,
        draw: Callable[[], bytes | None],
        at: tuple[int, ...] = (),
        unchanged: Callable[[tuple[int, ...]], bool] | None = None,
    ) -> bytes | None:
        """The kept tile, or ``draw()``'s, drawn once however many ask for it meanwhile.

        ``at``: the generations of the views the tile reads, as the request sees them (its
        snapshot, which ``draw`` reads). ``unchanged(since)``: whether nothing the tile shows
        changed between generations ``since`` and ``at``; without it, a tile kept from other
        generations is drawn again.
        """
        while True:
            with self._lock:
                kept = self._fresh(key)
                if kept is not None and kept.holds(at):
                    self._tiles.move_to_end(key)
                    return kept.data
            if kept is not None and kept.precedes(at):
                # Looked up outside the lock: it may read the store's log of changes.
                if unchanged is not None and unchanged(kept.high):
                    with self._lock:
                        if self._tiles.get(key) is kept:
                            kept.high = tuple(map(max, kept.high, at))
                            self._tiles.move_to_end(key)
                    return kept.data
            elif kept is not None:
                return draw()  # a snapshot older than the tile's: drawn for it alone
            with self._lock:
                if self._fresh(key) is not kept:
                    continue  # another request drew it meanwhile: look again
                drawing = self._drawing.get(key)
                if drawing is None:
                    self._drawing[key] = threading.Event()
                    break
            drawing.wait()  # then look again: kept, or the drawing failed and this one draws
        try:
            data = draw()
            self.put(key, data, at)
            return data
        finally:
            with self._lock:
                self._drawing.pop(key).set()

    def get(self, key: Hashable, at: tuple[int, ...] = ()) -> object:
        """The tile kept for ``key`` if it was drawn at generations ``at`` (else a sentinel)."""
        with self._lock:
            kept = self._fresh(key)
            if kept is None or not kept.holds(at):
                return _MISSING
            self._tiles.move_to_end(key)
            return kept.data

    def _fresh(self, key: Hashable) -> _Kept | None:
        kept = self._tiles.get(key)
        if kept is None or time.monotonic() - kept.drawn_at > self.max_age_s:
            return None
        return kept

    def put(self, key: Hashable, data: bytes | None, at: tuple[int, ...] = ()) -> None:
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= len(old.data or b"")
            self._tiles[key] = _Kept(time.monotonic(), data, at, at)
            self._bytes += len(data or b"")
            while self._bytes > self.max_bytes and self._tiles:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= len(dropped.data or b"")


def _cache_key(
    register: str, layer: Layer, principal: Principal, address: TileAddress, query: Query
) -> Hashable:
    scope = principal.organisation_id if layer.organisation_scoped else None
    if not principal.is_organisation_scoped:
        scope = None
    filters = tuple(sorted(query.filters.items()))
    return (register, layer.id, address, query.interval, filters, query.risk_map, scope)


def _selection(
    store: Store, layer: Layer, address: TileAddress, where: list[ColumnElement[bool]]
) -> Any:
    """The features a tile draws, one per cell for the small ones (see the module's docstring).

    Columns: fid, the tile properties, ``feature_count``, ``small``, ``cell_x``, ``cell_y``.
    """
    table = layer.table
    minx, miny, maxx, maxy = _envelope(store, layer)
    rank: Any = literal(0)
    if layer.priority:
        name, order = layer.priority
        rank = case({v: i for i, v in enumerate(order)}, value=table.c[name], else_=len(order))
    names = list(dict.fromkeys([*layer.key, *layer.tile_properties]))
    joined = layer.joined_tile_properties
    source = _envelope_source(store, layer)
    for other in dict.fromkeys(column.table for column in joined.values()):
        source = source.outerjoin(other, other.c.record_id == table.c.record_id)
    envelopes = (
        select(
            table.c.fid,
            *(table.c[n] for n in names),
            *(column.label(n) for n, column in joined.items()),
            rank.label("importance"),
            _mercator_x(minx).label("x0"),
            _mercator_x(maxx).label("x1"),
            _mercator_y(miny).label("y0"),
            _mercator_y(maxy).label("y1"),
        )
        .select_from(source)
        .where(store.bbox_clause(table, address.lonlat_bounds(BUFFER / EXTENT)), *where)
        .subquery("envelopes")
    )
    e = envelopes.c
    tile_minx, _, _, tile_maxy = address.bounds()
    cell = address.size / CELLS
    small = and_(e.x1 - e.x0 < cell, e.y1 - e.y0 < cell) if address.z < DETAIL_ZOOM else false()
    cell_x = func.floor(((e.x0 + e.x1) / 2.0 - tile_minx) / cell)
    cell_y = func.floor((tile_maxy - (e.y0 + e.y1) / 2.0) / cell)
    group = case((small, cell_y * CELLS + cell_x), else_=-1 - e.fid)
    order_by = [e.importance, *(e[k] for k in layer.key)]
    candidates = select(
        e.fid,
        *(e[n] for n in [*names, *joined]),
        func.count().over(partition_by=group).label(FEATURE_COUNT),
        func.row_number().over(partition_by=group, order_by=order_by).label("rank_in_cell"),
        small.label("small"),
        cell_x.label("cell_x"),
        cell_y.label("cell_y"),
    ).subquery("candidates")
    c = candidates.c
    inside = and_(c.cell_x >= 0, c.cell_x < CELLS, c.cell_y >= 0, c.cell_y < CELLS)
    return select(candidates).where(c.rank_in_cell == 1, ~c.small | inside)


def _mercator_x(lon: Any) -> Any:
    return lon * (HALF_WORLD / 180)


def _mercator_y(lat: Any) -> Any:
    """Spherical mercator y of a latitude, as SQL (SQLite's and PostgreSQL's ln and tan)."""
    limit = 85.0511287798
    clamped = case((lat > limit, limit), (lat < -limit, -limit), else_=lat)
    return func.ln(func.tan((90 + clamped) * (math.pi / 360))) * (HALF_WORLD / math.pi)


def _envelope(store: Store, layer: Layer) -> tuple[Any, Any, Any, Any]:
    """Envelope columns: the GeoPackage R-tree's, or PostGIS's bounds of the geometry."""
    if store.dialect == "postgresql":
        g = layer.table.c.geometry
        return func.ST_XMin(g), func.ST_YMin(g), func.ST_XMax(g), func.ST_YMax(g)
    rtree = rtree_of(layer.table)
    return rtree.c.minx, rtree.c.miny, rtree.c.maxx, rtree.c.maxy


def _envelope_source(store: Store, layer: Layer) -> Any:
    if store.dialect == "postgresql":
        return layer.table
    rtree = rtree_of(layer.table)
    return layer.table.join(rtree, rtree.c.id == layer.table.c.fid)


def _properties(layer: Layer, row: Any) -> dict[str, Any]:
    """Tile properties; MVT values are scalars, so dates go as ISO text and empty ones are left
    out (as ST_AsMVT does)."""
    values = {n: getattr(row, n) for n in layer.tile_names}
    values[FEATURE_COUNT] = row.feature_count
    return {
        k: v if isinstance(v, int | float | str | bool) else str(v)
        for k, v in values.items()
        if v is not None
    }


def _gpkg_tile(
    conn: Connection,
    store: Store,
    layer: Layer,
    address: TileAddress,
    where: list[ColumnElement[bool]],
) -> bytes | None:
    chosen = conn.execute(_selection(store, layer, address, where)).all()
    if not chosen:
        return None
    small = np.array([bool(row.small) for row in chosen])
    shapes = np.empty(len(chosen), dtype=object)
    # Small features: their cell, straight in tile units (y up, as the encoder expects).
    unit = EXTENT / CELLS
    cell_x = np.array([row.cell_x if row.small else 0 for row in chosen], dtype=float)
    cell_y = np.array([row.cell_y if row.small else 0 for row in chosen], dtype=float)
    if layer.geometry_type == "Point":
        cells = shapely.points((cell_x + 0.5) * unit, EXTENT - (cell_y + 0.5) * unit)
    else:
        cells = shapely.box(cell_x * unit, EXTENT - (cell_y + 1) * unit, (cell_x + 1) * unit,
                            EXTENT - cell_y * unit)  # fmt: skip
    shapes[small] = cells[small]
    # The others: their own shape, clipped, simplified and quantised to tile units.
    large = [row.fid for row in chosen if not row.small]
    if large:
        shapes[~small] = _drawn(conn, layer, large, address)
    keep = ~shapely.is_empty(shapes)
    features = [
        {"geometry": shape, "properties": _properties(layer, row)}
        for row, shape, kept in zip(chosen, shapes, keep, strict=True)
        if kept
    ]
    if not features:
        return None
    return bytes(
        mapbox_vector_tile.encode(
            [{"name": layer.id, "features": features}],
            default_options={"extents": EXTENT, "check_winding_order": False},
        )
    )


def _drawn(conn: Connection, layer: Layer, fids: list[int], address: TileAddress) -> Any:
    """The features' geometries in tile units: projected, clipped to the tile and its buffer,
    simplified below the detail zoom, rounded to the grid, valid, exterior rings
    counter-clockwise (clockwise once the encoder turns y down, as MVT requires)."""
    table = layer.table
    found: dict[int, BaseGeometry] = {}
    for chunk in chunked_in(fids):
        query = select(table.c.fid, table.c.geometry).where(table.c.fid.in_(chunk))
        found.update((fid, geometry) for fid, geometry in conn.execute(query))
    shapes = shapely.transform(
        np.array([found[fid] for fid in fids], dtype=object),
        lambda xy: np.column_stack(_TO_MERCATOR.transform(xy[:, 0], xy[:, 1])),
    )
    minx, miny, maxx, maxy = address.bounds()
    pad = BUFFER / EXTENT * address.size
    shapes = shapely.clip_by_rect(shapes, minx - pad, miny - pad, maxx + pad, maxy + pad)
    if address.z < DETAIL_ZOOM:
        shapes = shapely.simplify(shapes, address.size / 512)
    scale = EXTENT / address.size
    shapes = shapely.transform(shapes, lambda xy: np.round((xy - (minx, miny)) * scale))
    invalid = ~shapely.is_valid(shapes) & ~shapely.is_empty(shapes)
    if invalid.any():
        shapes[invalid] = shapely.make_valid(
            shapes[invalid], method="structure", keep_collapsed=False
        )
    return shapely.orient_polygons(shapes)


def _postgis_tile(
    conn: Connection,
    store: Store,
    layer: Layer,
    address: TileAddress,
    where: list[ColumnElement[bool]],
) -> bytes | None:
    chosen = _selection(store, layer, address, where).subquery("chosen")
    table = layer.table
    envelope = func.ST_TileEnvelope(address.z, address.x, address.y)
    tile_minx, _, _, tile_maxy = address.bounds()
    cell = address.size / CELLS
    left = tile_minx + cast(chosen.c.cell_x, Float) * cell
    top = tile_maxy - cast(chosen.c.cell_y, Float) * cell
    square = func.ST_MakeEnvelope(left, top - cell, left + cell, top, 3857)
    small_shape = func.ST_Centroid(square) if layer.geometry_type == "Point" else square
    shape = func.ST_Transform(table.c.geometry, 3857)
    if address.z < DETAIL_ZOOM:
        shape = func.ST_SimplifyPreserveTopology(shape, address.size / 512)
    geometry = func.ST_AsMVTGeom(
        case((chosen.c.small, small_shape), else_=shape), envelope, EXTENT, BUFFER, True
    )
    properties = [_mvt_value(layer, n, chosen.c[n]).label(n) for n in layer.tile_properties]
    properties += [chosen.c[n].label(n) for n in layer.joined_tile_properties]
    rows = (
        select(*properties, chosen.c[FEATURE_COUNT], geometry.label("geom"))
        .select_from(chosen.join(table, table.c.fid == chosen.c.fid))
        .subquery("q")
    )
    data = conn.execute(
        select(func.ST_AsMVT(literal_column("q"), layer.id, EXTENT, "geom"))
        .select_from(rows)
        .where(rows.c.geom.is_not(None))
    ).scalar_one()
    return bytes(data) if data else None


def _mvt_value(layer: Layer, name: str, value: Any) -> Any:
    """Dates go into tiles as ISO text on both backends."""
    if layer.table.c[name].type.python_type is date:
        return func.to_char(value, "YYYY-MM-DD")
    return value
