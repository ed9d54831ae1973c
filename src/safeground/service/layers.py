"""The map layers: which tables are published as feature collections (OGC API) and vector tiles,
with which attributes, to which roles, and the one query both read through.

A layer exposes a fixed list of columns, never a whole row: victims' personal data are not in
any layer's table, and the public role sees the admin areas only. A data entry account sees the
tasks of its own organisation only (the same scoping as the REST API).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cache, cached_property, partial
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Float,
    Table,
    and_,
    column,
    exists,
    func,
    select,
)
from sqlalchemy import (
    table as table_clause,
)
from sqlalchemy.sql.elements import KeyedColumnElement

from safeground.domain.access import Principal
from safeground.domain.errors import NotFound
from safeground.service.risk_scores import scores_of
from safeground.storage import generations
from safeground.storage.generations import ChangeLog
from safeground.storage.rows import chunked_in
from safeground.storage.schema import processed_land, record_tables
from safeground.storage.store import Store

Bbox = tuple[float, float, float, float]
FilterClause = Callable[[Table, Sequence[str]], ColumnElement[bool]]

# Filters the map and the OGC items request take; each layer says which ones it supports.
FILTERS = ("admin_area", "operator", "status")


def _column(name: str) -> FilterClause:
    return lambda table, values: table.c[name].in_(values)


def _hazard_admin_area(table: Table, values: Sequence[str]) -> ColumnElement[bool]:
    """Land and tasks belong to a district through their hazardous area."""
    hazard = record_tables["hazardous_area"]
    return table.c.hazard_id.in_(
        select(hazard.c.record_id).where(hazard.c.admin_area_id.in_(values))
    )


@dataclass(frozen=True)
class Layer:
    """A published table: a feature collection under /ogc and a vector tile layer under /tiles."""

    id: str
    title: str
    description: str
    table: Table
    geometry_type: str  # "Polygon" or "Point" (polygon layers may hold multi-polygons)
    properties: tuple[str, ...]  # columns in OGC features
    tile_properties: tuple[str, ...]  # columns in vector tiles: what the map styles and filters by
    key: tuple[str, ...] = ("record_id",)  # columns whose values, joined by ".", are the feature id
    # Date columns of the feature's time: (start, end); end None for an instant.
    temporal: tuple[str, str | None] | None = None
    filters: Mapping[str, FilterClause] = field(default_factory=dict)
    public: bool = False
    organisation_scoped: bool = False  # data entry accounts see their organisation's rows only
    # Order of importance when a tile keeps one feature of several (most important first).
    priority: tuple[str, tuple[str, ...]] | None = None
    # Tile properties from another table joined on record_id (name → column), empty when the
    # record has no row there: a hazardous area's mapped risk, which the map can colour by. The
    # table holds one row per record: the scores of the risk map attached last, or of the map a
    # query names (``scored_by``).
    joined_tile_properties: Mapping[str, KeyedColumnElement[Any]] = field(default_factory=dict)
    # Views a filter reads besides the layer's own table (land and tasks belong to a district
    # through their hazardous area): a tile so filtered is stale after any change to them.
    filter_views: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def view(self) -> str:
        """The view (table) whose generation says when the layer's features changed."""
        return self.table.name

    def tile_views(self, filters: Iterable[str] = ()) -> tuple[tuple[str, bool], ...]:
        """The views a tile with these filters reads, each with whether a change to it can be
        placed (the tile is stale only if the change is in its extent) or not (any change
        makes it stale): the layer's own features are placed; a joined table (risk scores)
        and a filter's other views are not."""
        views = {self.view: True}
        for joined in self.joined_tile_properties.values():
            views.setdefault(joined.table.name, False)
        for name in filters:
            for view in self.filter_views.get(name, ()):
                views[view] = False
        return tuple(views.items())

    @cached_property
    def tile_names(self) -> tuple[str, ...]:
        """Every property of the layer's vector tiles."""
        return (*self.tile_properties, *self.joined_tile_properties)

    @cached_property
    def date_properties(self) -> tuple[str, ...]:
        """Properties that are dates, written as ISO 8601 text in a feature."""
        return tuple(
            name for name in self.properties if isinstance(self.table.c[name].type, Date | DateTime)
        )

    def scored_by(self, risk_map: str | None) -> Layer:
        """The layer with its joined properties from the scores of the risk map with that
        SHA-256; None: as defined, from the map attached last."""
        if risk_map is None or not self.joined_tile_properties:
            return self
        scores = scores_of(risk_map)
        joined = {name: scores.c[c.name] for name, c in self.joined_tile_properties.items()}
        return replace(self, joined_tile_properties=joined)

    def key_columns(self) -> list[Column[Any]]:
        return [self.table.c[k] for k in self.key]

    def feature_id(self, row: Any) -> str:
        return ".".join(str(getattr(row, k)) for k in self.key)

    def key_clause(self, feature_id: str) -> ColumnElement[bool]:
        parts = feature_id.rsplit(".", len(self.key) - 1)
        if len(parts) != len(self.key):
            raise NotFound(f"no feature {feature_id!r} in {self.id}")
        clauses = []
        for key_column, value in zip(self.key_columns(), parts, strict=True):
            if key_column.type.python_type is int:
                if not value.isdigit():
                    raise NotFound(f"no feature {feature_id!r} in {self.id}")
                clauses.append(key_column == int(value))
            else:
                clauses.append(key_column == value)
        return and_(*clauses)


_HAZARD = record_tables["hazardous_area"]
LAYERS: dict[str, Layer] = {
    layer.id: layer
    for layer in (
        Layer(
            id="hazardous_area",
            title="Hazardous areas",
            description="Suspected (SHA) and confirmed (CHA) hazardous areas with their status "
            "and land-release ledger.",
            table=_HAZARD,
            geometry_type="Polygon",
            properties=(
                "record_id",
                "name",
                "classification",
                "status",
                "status_reason",
                "status_date",
                "admin_area_id",
                "organisation_id",
                "reliability",
                "source_reliability",
                "confirmed",
                "contamination",
                "ordnance_classification",
                "blockages",
                "estimated_area_m2",
                "cancelled_m2",
                "reduced_m2",
                "cleared_m2",
                "released_m2",
                "remaining_m2",
                "version",
            ),
            tile_properties=(
                "record_id",
                "name",
                "classification",
                "status",
                "admin_area_id",
                "organisation_id",
                "remaining_m2",
            ),
            temporal=("status_date", None),
            filters={
                "admin_area": _column("admin_area_id"),
                "operator": _column("organisation_id"),
                "status": _column("status"),
            },
            priority=("classification", ("cha", "sha", "indication", "eod_spot", "stockpile")),
            joined_tile_properties={"risk_mean": scores_of(None).c.mean_risk},
        ),
        Layer(
            id="processed_land",
            title="Processed land",
            description="Land cancelled, reduced or cleared by approved land-release activities.",
            table=processed_land,
            geometry_type="Polygon",
            properties=(
                "activity_id",
                "piece",
                "hazard_id",
                "land_type",
                "activity_type",
                "organisation_id",
                "method",
                "asset",
                "depth_cm",
                "date_of_information",
                "area_m2",
                "credited_m2",
            ),
            tile_properties=(
                "activity_id",
                "hazard_id",
                "land_type",
                "organisation_id",
                "date_of_information",
            ),
            key=("activity_id", "piece"),
            temporal=("date_of_information", None),
            filters={"admin_area": _hazard_admin_area, "operator": _column("organisation_id")},
            filter_views={"admin_area": ("hazardous_area",)},
            priority=("land_type", ("cleared", "reduced", "cancelled")),
        ),
        Layer(
            id="eo_item",
            title="Explosive ordnance found",
            description="Items found and how they were disposed of.",
            table=record_tables["eo_item"],
            geometry_type="Point",
            properties=(
                "record_id",
                "category",
                "model",
                "quantity",
                "found_date",
                "hazard_id",
                "activity_id",
                "organisation_id",
                "depth_cm",
                "condition",
                "disposal",
                "place_name",
                "admin_area_id",
            ),
            tile_properties=(
                "record_id",
                "category",
                "quantity",
                "found_date",
                "admin_area_id",
                "organisation_id",
            ),
            temporal=("found_date", None),
            filters={
                "admin_area": _column("admin_area_id"),
                "operator": _column("organisation_id"),
            },
        ),
        Layer(
            id="accident",
            title="Accidents",
            description="Accidents at known places (victims' details are never published here).",
            table=record_tables["accident"],
            geometry_type="Point",
            properties=(
                "record_id",
                "accident_type",
                "accident_date",
                "date_precision",
                "hazard_id",
                "admin_area_id",
                "place_name",
                "device",
                "activity_at_time",
                "area_type",
            ),
            tile_properties=("record_id", "accident_type", "accident_date", "admin_area_id"),
            temporal=("accident_date", None),
            filters={"admin_area": _column("admin_area_id")},
        ),
        Layer(
            id="task",
            title="Tasks",
            description="Planned and ongoing work on hazardous areas.",
            table=record_tables["task"],
            geometry_type="Polygon",
            properties=(
                "record_id",
                "hazard_id",
                "activity_type",
                "organisation_id",
                "planned_start",
                "planned_end",
                "priority",
                "status",
            ),
            tile_properties=(
                "record_id",
                "hazard_id",
                "activity_type",
                "organisation_id",
                "status",
            ),
            temporal=("planned_start", "planned_end"),
            filters={
                "admin_area": _hazard_admin_area,
                "operator": _column("organisation_id"),
                "status": _column("status"),
            },
            filter_views={"admin_area": ("hazardous_area",)},
            organisation_scoped=True,
        ),
        Layer(
            id="admin_area",
            title="Administrative areas",
            description="Districts and provinces of the gazetteer.",
            table=record_tables["admin_area"],
            geometry_type="Polygon",
            properties=("record_id", "name", "level", "code", "parent_id"),
            tile_properties=("record_id", "name", "level", "code"),
            filters={"admin_area": lambda table, values: table.c.record_id.in_(values)},
            public=True,
        ),
    )
}


def visible_layers(principal: Principal) -> list[Layer]:
    """The layers a principal may read, in catalogue order."""
    return [layer for layer in LAYERS.values() if layer.public or principal.sees_records]


def layer_for(principal: Principal, layer_id: str) -> Layer:
    """The layer, if the principal may read it (LoginRequired/AccessDenied otherwise)."""
    try:
        layer = LAYERS[layer_id]
    except KeyError:
        raise NotFound(f"no layer {layer_id!r}; layers: {', '.join(LAYERS)}") from None
    principal.require(layer.public or principal.sees_records, f"read the {layer_id} layer")
    return layer


# -- the query ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A closed date interval; None is open (OGC ``..``)."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Query:
    bbox: Bbox | None = None  # lon/lat (CRS84)
    interval: Interval | None = None
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    limit: int = 10
    offset: int = 0
    # SHA-256 of the risk map whose scores a tile's joined properties carry (``Layer.scored_by``).
    risk_map: str | None = None


@dataclass(frozen=True)
class Feature:
    id: str
    geometry: BaseGeometry | None
    properties: dict[str, Any]


@dataclass
class Page:
    features: list[Feature]
    number_matched: int


def conditions(layer: Layer, principal: Principal, query: Query) -> list[ColumnElement[bool]]:
    """Where-clauses of a query but the bounding box (scoping, filters, time)."""
    table = layer.table
    where: list[ColumnElement[bool]] = []
    if layer.organisation_scoped and principal.is_organisation_scoped:
        where.append(table.c.organisation_id == principal.organisation_id)
    for name, values in query.filters.items():
        if name not in layer.filters:
            supported = ", ".join(layer.filters) or "none"
            raise ValueError(
                f"the {layer.id} layer cannot be filtered by {name}; its filters: {supported}"
            )
        where.append(layer.filters[name](table, values))
    if query.interval and layer.temporal:
        start_name, end_name = layer.temporal
        start = table.c[start_name]
        end = func.coalesce(table.c[end_name], start) if end_name else start
        where.append(start.is_not(None))
        if query.interval.end is not None:
            where.append(start <= query.interval.end)
        if query.interval.start is not None:
            where.append(end >= query.interval.start)
    return where


def misses_bbox(
    conn: Connection, store: Store, layer: Layer, bbox: Bbox, where: list[ColumnElement[bool]]
) -> list[int]:
    """fids whose envelope meets the box but whose geometry does not.

    Only features whose envelope crosses an edge of the box can miss it (an envelope inside the
    box holds its geometry), so only those are read and tested exactly; the rest of the query
    runs on the spatial index alone.
    """
    table = layer.table
    minx, miny, maxx, maxy = bbox
    edges = [
        (minx, miny, minx, maxy),
        (maxx, miny, maxx, maxy),
        (minx, miny, maxx, miny),
        (minx, maxy, maxx, maxy),
    ]
    rows: dict[int, BaseGeometry] = {}
    for edge in edges:  # one query each: a store's bbox clause binds fixed parameter names
        query = select(table.c.fid, table.c.geometry).where(store.bbox_clause(table, edge), *where)
        rows.update((fid, geometry) for fid, geometry in conn.execute(query))
    return _missing(rows, bbox)


def _missing(geometries: dict[int, BaseGeometry], bbox: Bbox) -> list[int]:
    """fids of the geometries that do not meet the box."""
    if not geometries:
        return []
    hits = shapely.intersects(np.array(list(geometries.values()), dtype=object), box(*bbox))
    return [fid for fid, hit in zip(geometries, hits, strict=True) if not hit]


# Features each server process keeps per layer (see ``Envelopes``): enough for a national
# register's hazardous areas. One of the benchmark's takes about 1.8 KiB (100k took 178 MiB).
# Beyond it, the oldest read go first; pages wanting more features than are kept, read over
# and over, found few kept (bench_web.py --views 200 with 20,000 kept was slower than keeping
# none).
FEATURES_KEPT = 100_000

# A GeoPackage box holding more features than this is paged by probing the R-tree row by row in
# fid order, which stops after the page, instead of listing every feature in the box first.
DENSE_BOX = 5000


def items(
    store: Store,
    layer: Layer,
    principal: Principal,
    query: Query,
    envelopes: EnvelopeCache | None = None,
) -> Page:
    """One page of a layer's features, in fid order, and how many match in all.

    With ``envelopes``, a box with no other condition is counted and paged in memory (see
    ``Envelopes``); otherwise, and always when the cache is behind the reader's snapshot,
    the database does it.
    """
    table = layer.table
    where = conditions(layer, principal, query)
    if query.bbox is not None and envelopes is not None and not where:
        page = _items_in_memory(store, layer, envelopes, query.bbox, query)
        if page is not None:
            return page
    with store.read() as conn:
        if query.bbox is None:
            matched = conn.execute(
                select(func.count()).select_from(table).where(*where)
            ).scalar_one()
            in_box = where
        else:
            # The spatial index finds envelopes; only geometries near the edges are tested here
            # (testing every geometry with ST_Intersects made a national page 16× slower).
            missed = misses_bbox(conn, store, layer, query.bbox, where)
            besides = [table.c.fid.not_in(chunk) for chunk in chunked_in(missed)]
            in_box = [*where, store.bbox_clause(table, query.bbox), *besides]
            gpkg = store.dialect == "sqlite"
            if gpkg and not where:
                matched = _rtree_count(conn, table, query.bbox) - len(missed)
            else:
                count = select(func.count()).select_from(table).where(*in_box)
                matched = conn.execute(count).scalar_one()
            if gpkg and matched > DENSE_BOX:
                in_box = [*where, _rtree_probe(table, query.bbox), *besides]
        rows = conn.execute(
            _feature_select(layer)
            .where(*in_box)
            .order_by(table.c.fid)
            .limit(query.limit)
            .offset(query.offset)
        ).all()
    return Page([_feature(layer, row) for row in rows], matched)


def _items_in_memory(
    store: Store, layer: Layer, envelopes: EnvelopeCache, bbox: Bbox, query: Query
) -> Page | None:
    """A box's page from the envelopes; None when they are newer than the reader's snapshot.

    When the envelopes are current and every feature the page needs is kept, the views'
    generations are the one statement read, outside any transaction (on PostgreSQL, BEGIN and
    COMMIT were two of a request's round trips).
    """
    with store.read_statement() as conn:
        current = envelopes.current(conn, store, layer)
    if current is not None:
        page = _items_in_box(current, bbox, query, current.kept_features)
        if page is not None:
            return page
    with store.read() as conn:
        index = envelopes.get(conn, store, layer)
        if index is None:
            return None
        return _items_in_box(index, bbox, query, partial(index.features, conn, store, layer))


def _items_in_box(
    index: Envelopes,
    bbox: Bbox,
    query: Query,
    features: Callable[[list[int]], dict[int, Feature] | None],
) -> Page | None:
    """A box's page from the envelopes in memory, with ``features`` giving the geometries near
    the box's edges (to drop those that miss it) and the page's features; None if it gave
    none."""
    meeting, near_edge = index.meeting(bbox)
    near = features(near_edge.tolist())
    if near is None:
        return None
    missed = _missing({fid: feature.geometry for fid, feature in near.items()}, bbox)
    if missed:
        meeting = meeting[~np.isin(meeting, missed)]
    wanted = query.offset + query.limit
    first = np.partition(meeting, wanted - 1)[:wanted] if len(meeting) > wanted else meeting
    page = np.sort(first)[query.offset :].tolist()
    found = features(page)
    if found is None:
        return None
    return Page([found[fid] for fid in page], len(meeting))


def _rtree_count(conn: Connection, table: Table, bbox: Bbox) -> int:
    """Features whose envelope meets the box, from the GeoPackage R-tree alone."""
    rtree = rtree_of(table)
    return int(
        conn.execute(
            select(func.count()).select_from(rtree).where(_meets(rtree, bbox))
        ).scalar_one()
    )


def _rtree_probe(table: Table, bbox: Bbox) -> ColumnElement[bool]:
    """The box test as a lookup of each row's own R-tree entry (GeoPackage)."""
    rtree = rtree_of(table)
    return exists().where(rtree.c.id == table.c.fid, _meets(rtree, bbox))


def _meets(rtree: Any, bbox: Bbox) -> ColumnElement[bool]:
    minx, miny, maxx, maxy = bbox
    return and_(
        rtree.c.minx <= maxx, rtree.c.maxx >= minx, rtree.c.miny <= maxy, rtree.c.maxy >= miny
    )


def item(store: Store, layer: Layer, principal: Principal, feature_id: str) -> Feature:
    where = conditions(layer, principal, Query())
    with store.read() as conn:
        row = conn.execute(
            _feature_select(layer).where(layer.key_clause(feature_id), *where)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no feature {feature_id!r} in {layer.id}")
    return _feature(layer, row)


def _feature_select(layer: Layer) -> Any:
    """The properties first, in order, then any key column that is not one, then geometry."""
    names = dict.fromkeys([*layer.properties, *layer.key])
    return select(*(layer.table.c[n] for n in names), layer.table.c.geometry)


def _feature(layer: Layer, row: Any) -> Feature:
    properties = dict(zip(layer.properties, row, strict=False))
    for name in layer.date_properties:
        if properties[name] is not None:
            properties[name] = properties[name].isoformat()
    return Feature(layer.feature_id(row), row.geometry, properties)


class Envelopes:
    """The envelopes of a layer's features, in memory, sorted by their west edge, and the
    features last read, all at one generation of the layer's view.

    Counting a national box in the database reads every index entry in it (5 ms for 75k
    areas in a GeoPackage's R-tree, more on PostGIS), for each request. In memory it is a few
    array comparisons over the features whose west edge can fall in the box, and the page is
    the box's lowest fids. Only the geometries whose envelope crosses an edge of the box (the
    others surely meet it) and the page's features are needed then; those already read are
    kept (up to ``features_kept``, the oldest dropped first), because map users panning over
    the same land ask for the same features again and reading and decoding them was most of
    a page's cost.
    """

    def __init__(self, fids: np.ndarray, bounds: np.ndarray, features_kept: int = FEATURES_KEPT):
        order = np.argsort(bounds[:, 0], kind="stable")
        self.fids = fids[order]
        self.minx, self.miny, self.maxx, self.maxy = (bounds[order, i].copy() for i in range(4))
        self.widest = float((self.maxx - self.minx).max()) if len(fids) else 0.0
        self.features_kept = features_kept
        self._features: dict[int, Feature] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, conn: Connection, store: Store, layer: Layer, features_kept: int = FEATURES_KEPT
    ) -> Envelopes:
        table = layer.table
        if store.dialect == "postgresql":
            geometry = table.c.geometry
            query = select(
                table.c.fid,
                func.ST_XMin(geometry),
                func.ST_YMin(geometry),
                func.ST_XMax(geometry),
                func.ST_YMax(geometry),
            ).where(geometry.is_not(None))
        else:
            rtree = rtree_of(table)
            query = select(rtree.c.id, rtree.c.minx, rtree.c.miny, rtree.c.maxx, rtree.c.maxy)
        # Plain tuples: numpy reads a list of SQLAlchemy rows five times slower.
        rows = np.array([tuple(r) for r in conn.execute(query)], dtype=np.float64).reshape(-1, 5)
        return cls(rows[:, 0].astype(np.int64), rows[:, 1:], features_kept)

    def meeting(self, bbox: Bbox) -> tuple[np.ndarray, np.ndarray]:
        """fids whose envelope meets the box, and those of them whose envelope is not inside
        it (only their geometry can miss the box)."""
        minx, miny, maxx, maxy = bbox
        start = int(np.searchsorted(self.minx, minx - self.widest, side="left"))
        end = int(np.searchsorted(self.minx, maxx, side="right"))
        west, south, east, north = (
            a[start:end] for a in (self.minx, self.miny, self.maxx, self.maxy)
        )
        meets = (east >= minx) & (south <= maxy) & (north >= miny)
        inside = (west >= minx) & (east <= maxx) & (south >= miny) & (north <= maxy)
        fids = self.fids[start:end]
        return fids[meets], fids[meets & ~inside]

    def keep_from(self, older: Envelopes, changed: np.ndarray) -> None:
        """Keep the features ``older`` kept that meet none of the ``changed`` boxes (n × 4):
        the view changed only there since they were read, so they are as they would be read
        now (a feature rewritten, deleted or whose fid was reused is in a box: where it was)."""
        with older._lock:
            kept = list(older._features.items())
        unchanged = generations.outside(changed, [feature.geometry for _, feature in kept])
        carried = [item for item, keep in zip(kept, unchanged, strict=True) if keep]
        with self._lock:
            self._features = dict(carried[max(0, len(carried) - self.features_kept) :])

    def kept_features(self, fids: list[int]) -> dict[int, Feature] | None:
        """These features if all are kept, else None."""
        with self._lock:
            if all(fid in self._features for fid in fids):
                return {fid: self._features[fid] for fid in fids}
        return None

    def features(
        self, conn: Connection, store: Store, layer: Layer, fids: list[int]
    ) -> dict[int, Feature]:
        """These features, read through ``conn`` (at the envelopes' generation) unless kept."""
        with self._lock:
            found = {fid: self._features[fid] for fid in fids if fid in self._features}
        missing = [fid for fid in fids if fid not in found]
        if not missing:
            return found
        table = layer.table
        query = _feature_select(layer).add_columns(table.c.fid.label("kept_fid"))
        read = {}
        for chunk in chunked_in(missing):
            for row in conn.execute(query.where(store.among(table.c.fid, chunk))):
                read[row.kept_fid] = _feature(layer, row)
        with self._lock:
            self._features.update((fid, read[fid]) for fid in missing)
            excess = max(0, len(self._features) - self.features_kept)
            for fid in list(itertools.islice(self._features, excess)):
                del self._features[fid]
        return found | read


class EnvelopeCache:
    """Each layer's ``Envelopes`` at the current generation of the layer's view, one per
    server process. A write to another view leaves them be; a write to the layer's view that
    changed features (where: ``storage.generations``) has them loaded again (0.3 s for 100k
    areas in a GeoPackage), keeping the features kept that are outside the changes. They are
    also loaded afresh, keeping nothing, ``max_age_s`` after the oldest of them was read, as
    tiles expire: a change made outside Safeground (a GeoPackage edited in QGIS) advances no
    generation. What is loaded of one register counts as not loaded for another (its
    identity differs) put where that one was, which counts its generations from 0 again."""

    def __init__(
        self,
        features_kept: int = FEATURES_KEPT,
        log: ChangeLog | None = None,
        max_age_s: float = 300.0,
    ) -> None:
        self.features_kept = features_kept
        self.log = log or ChangeLog()
        self.max_age_s = max_age_s
        # layer → (generation, envelopes, when the oldest of them was read, register identity)
        self._layers: dict[str, tuple[int, Envelopes, float, str]] = {}
        self._lock = threading.Lock()

    def _loaded(self, layer: Layer, register: str) -> tuple[int, Envelopes, float, str] | None:
        cached = self._layers.get(layer.id)
        if cached is None or cached[3] != register or time.monotonic() - cached[2] > self.max_age_s:
            return None
        return cached

    def current(self, conn: Connection, store: Store, layer: Layer) -> Envelopes | None:
        """The layer's envelopes if they are loaded at the generation ``conn`` sees; never
        loads them (that takes a snapshot: see ``get``)."""
        register, generation = store.generation(conn, layer.view)
        with self._lock:
            cached = self._loaded(layer, register)
        return cached[1] if cached is not None and cached[0] == generation else None

    def get(self, conn: Connection, store: Store, layer: Layer) -> Envelopes | None:
        """The layer's envelopes as ``conn`` sees the register; None when the cache is newer
        than the reader's snapshot (the database answers that reader)."""
        register, generation = store.generation(conn, layer.view)
        with self._lock:  # one thread loads; the others wait for it rather than load too
            cached = self._loaded(layer, register)
            if cached is not None and cached[0] >= generation:
                return cached[1] if cached[0] == generation else None
            changed = None
            if cached is not None:
                changed = self.log.changed(conn, store, register, layer.view, cached[0], generation)
                if changed is not None and not len(changed):  # no feature with a geometry
                    self._layers[layer.id] = (generation, cached[1], cached[2], register)
                    return cached[1]
            envelopes = Envelopes.load(conn, store, layer, self.features_kept)
            read_at = time.monotonic()
            if cached is not None and changed is not None:
                envelopes.keep_from(cached[1], changed)
                read_at = cached[2]  # the features kept are as old as they were
            self._layers[layer.id] = (generation, envelopes, read_at, register)
            return envelopes


@dataclass(frozen=True)
class Extent:
    bbox: Bbox | None
    interval: tuple[date | None, date | None] | None


def extent(store: Store, layer: Layer, principal: Principal) -> Extent:
    """The layer's spatial extent (lon/lat) and time span, of what the principal sees."""
    table = layer.table
    where = conditions(layer, principal, Query())
    with store.read() as conn:
        bounds = conn.execute(_extent_select(store, table, where)).one()
        bbox = None if bounds[0] is None else tuple(float(b) for b in bounds)
        interval = None
        if layer.temporal:
            start_name, end_name = layer.temporal
            low, high = conn.execute(
                select(
                    func.min(table.c[start_name]), func.max(table.c[end_name or start_name])
                ).where(*where)
            ).one()
            interval = (_as_date(low), _as_date(high)) if low or high else None
    return Extent(bbox, interval)  # type: ignore[arg-type]


def _extent_select(store: Store, table: Table, where: list[ColumnElement[bool]]) -> Any:
    """Bounds from the spatial index (GeoPackage R-tree) or ST_Extent (PostGIS)."""
    if store.dialect == "postgresql":
        box2d = func.ST_Extent(table.c.geometry)
        return select(
            func.ST_XMin(box2d), func.ST_YMin(box2d), func.ST_XMax(box2d), func.ST_YMax(box2d)
        ).where(*where)
    rtree = rtree_of(table)
    query = select(
        func.min(rtree.c.minx),
        func.min(rtree.c.miny),
        func.max(rtree.c.maxx),
        func.max(rtree.c.maxy),
    )
    if where:
        query = query.where(rtree.c.id.in_(select(table.c.fid).where(*where)))
    return query


@cache
def rtree_of(table: Table) -> Any:
    """A GeoPackage layer's R-tree spatial index, as a table to select from or join."""
    return table_clause(
        f"rtree_{table.name}_geometry",
        *(column(c, Float) for c in ("id", "minx", "maxx", "miny", "maxy")),
    )


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


# -- parsing query parameters -------------------------------------------------------------------


def parse_filters(params: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    """``admin_area``, ``operator``, ``status``: one value or several, comma-separated."""
    filters = {}
    for name in FILTERS:
        value = params.get(name)
        if value:
            filters[name] = tuple(v.strip() for v in value.split(",") if v.strip())
    return filters


_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ][0-9:.]+([Zz]|[+-]\d{2}:?\d{2})?)?$")


def parse_instant(text: str, what: str = "datetime") -> date:
    """An RFC 3339 date or date-time (UTC day taken), for the date columns of the register."""
    if not _INSTANT.match(text):
        raise ValueError(f"{what}: {text!r} is not an RFC 3339 date or date-time")
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"{what}: {text!r}: {error}") from None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def parse_datetime(text: str) -> Interval:
    """OGC API ``datetime``: an instant, or an interval ``start/end`` with ``..`` or an empty
    side for an open end."""
    if "/" not in text:
        day = parse_instant(text)
        return Interval(day, day)
    start_text, _, end_text = text.partition("/")
    if "/" in end_text:
        raise ValueError(f"datetime: {text!r} has more than one '/'")
    start = None if start_text in ("", "..") else parse_instant(start_text)
    end = None if end_text in ("", "..") else parse_instant(end_text)
    if start is None and end is None:
        raise ValueError("datetime: an interval needs at least one end ('../..' is not one)")
    if start and end and end < start:
        raise ValueError(f"datetime: {text!r} ends before it starts")
    return Interval(start, end)


def parse_bbox(text: str) -> tuple[float, ...]:
    """``minx,miny,maxx,maxy`` (or six numbers with heights, which are ignored)."""
    try:
        numbers = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"bbox: {text!r} is not a comma-separated list of numbers") from None
    if len(numbers) == 6:
        numbers = (numbers[0], numbers[1], numbers[3], numbers[4])
    if len(numbers) != 4 or not all(np.isfinite(numbers)):
        raise ValueError(f"bbox: {text!r}: give four numbers (or six with heights)")
    return numbers
