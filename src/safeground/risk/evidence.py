"""What the register knows about a region, as map layers: presences and features.

Evidence in a register is presence-only: it says where mines or other explosive ordnance were
met (an accident, an item found), never where they are absent. Those points are the
*presences* a presence-only model learns from. Everything else the register holds becomes a
*feature* of a cell, measured at the cell's centre:

| feature | from |
|---|---|
| ``km_sha``, ``km_cha`` | suspected / confirmed hazardous areas not closed (0 inside) |
| ``km_detonation`` | hazardous areas whose evidence lists a detonation |
| ``km_released``, ``in_released`` | cancelled, reduced or cleared land (negative evidence) |
| ``km_place`` | settlements (the register's places) |
| one per covariate | user layers (``risk covariate add``): front lines, combat zones, roads... |

Raster covariates are read at the cell centre; vector ones give the distance (km) to their
features or whether the centre lies in one (0/1).

A feature whose layer is empty in the region is left out (it would be constant). Presence
points are never features: a point would otherwise explain itself.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.io import MemoryFile
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, delete, func, or_, select

from safeground.domain import codes as c
from safeground.domain.errors import NotFound, SafegroundError
from safeground.risk.grid import Grid, to_crs
from safeground.service.register import Register, now
from safeground.storage.schema import blob, processed_land, record_tables, risk_covariate

CovariateUse = Literal["value", "distance", "presence"]
# Items that show land is contaminated; caches, seizures and factories do not.
CONTAMINATION_ITEMS = frozenset(
    {
        c.ItemCategory.AP_MINE,
        c.ItemCategory.AT_MINE,
        c.ItemCategory.IED,
        c.ItemCategory.UXO,
        c.ItemCategory.SUBMUNITION,
    }
)
OPEN_STATUSES = (c.HazardStatus.OPEN, c.HazardStatus.WORKED_ON, c.HazardStatus.SUSPENDED)
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc", ".nc")
# Evidence this far outside the region still shapes the distances near its edge.
MARGIN_DEG = 0.5


class EvidenceError(SafegroundError):
    """A region, covariate or layer that cannot be used; the message says which and why."""


def _union_geoms(geoms: list[BaseGeometry]) -> BaseGeometry:
    return shapely.union_all(np.array(geoms, dtype=object))


def resolve_region(register: Register, area: str) -> tuple[str, BaseGeometry]:
    """An admin area by record ID or name, or a polygon file; returns (label, WGS84 polygon)."""
    path = Path(area)
    if path.suffix and path.exists():
        frame = pyogrio.read_dataframe(path)
        if frame.crs is None:
            raise EvidenceError(f"{path}: the layer has no CRS")
        geoms = [g for g in frame.to_crs("EPSG:4326").geometry if g is not None and not g.is_empty]
        if not geoms:
            raise EvidenceError(f"{path}: no geometry")
        polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        if len(polys) != len(geoms):
            raise EvidenceError(f"{path}: the region must be polygons")
        bad = [i for i, g in enumerate(polys) if not g.is_valid]
        if bad:
            raise EvidenceError(f"{path}: feature {bad[0] + 1} is not a valid polygon")
        return path.name, _union_geoms(polys)
    table = record_tables["admin_area"]
    with register.store.read() as conn:
        rows = conn.execute(
            select(table.c.record_id, table.c.name, table.c.geometry).where(
                or_(table.c.record_id == area, func.lower(table.c.name) == area.lower())
            )
        ).all()
    if not rows:
        raise NotFound(f"no admin area with record ID or name {area!r}, and no such file")
    if len(rows) > 1:
        ids = ", ".join(str(r.record_id) for r in rows)
        raise EvidenceError(f"{len(rows)} admin areas are named {area!r} ({ids}): give a record ID")
    row = rows[0]
    if row.geometry is None:
        raise EvidenceError(f"admin area {row.record_id} ({row.name}) has no polygon")
    return f"{row.record_id} {row.name}", row.geometry


@dataclass
class Covariate:
    """A user layer kept in the register, with the bytes it was made from."""

    name: str
    kind: Literal["raster", "vector"]
    use: CovariateUse
    filename: str
    sha256: str
    content: bytes = field(repr=False)


def add_covariate(
    register: Register, name: str, path: Path, user: str, use: CovariateUse | None = None
) -> Covariate:
    """Check the file opens, store its bytes by SHA-256 and register it under ``name``."""
    cov = read_covariate(name, path, use)
    with register.store.begin() as conn:
        keep_covariate(conn, cov, user)
    return cov


def read_covariate(name: str, path: Path, use: CovariateUse | None = None) -> Covariate:
    """A covariate layer read from ``path`` and checked to open (before any write transaction:
    a large layer takes a while).

    Rasters are sampled per cell (``value``); vectors give the distance to their features
    (``distance``, the default) or whether the cell centre lies in one (``presence``).
    """
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise EvidenceError(f"covariate name {name!r}: use letters, digits and _ only")
    content = path.read_bytes()
    kind: Literal["raster", "vector"] = (
        "raster" if path.suffix.lower() in RASTER_SUFFIXES else "vector"
    )
    if kind == "raster":
        if use not in (None, "value"):
            raise EvidenceError(f"{path}: a raster covariate is sampled per cell (use 'value')")
        use = "value"
    elif use not in (None, "distance", "presence"):
        raise EvidenceError(f"{path}: a vector covariate gives 'distance' or 'presence'")
    cov = Covariate(
        name,
        kind,
        use or "distance",
        path.name,
        hashlib.sha256(content).hexdigest(),
        content,
    )
    _check_opens(cov)
    return cov


def keep_covariate(conn: Connection, cov: Covariate, user: str) -> None:
    """Store the layer's bytes and register it under its name, replacing one of that name."""
    if conn.execute(select(blob.c.sha256).where(blob.c.sha256 == cov.sha256)).first() is None:
        conn.execute(blob.insert().values(sha256=cov.sha256, content=cov.content))
    conn.execute(delete(risk_covariate).where(risk_covariate.c.name == cov.name))
    conn.execute(
        risk_covariate.insert().values(
            name=cov.name,
            kind=cov.kind,
            use=cov.use,
            filename=cov.filename,
            sha256=cov.sha256,
            size_bytes=len(cov.content),
            added_by=user,
            added_at=now(),
        )
    )


def _check_opens(cov: Covariate) -> None:
    try:
        if cov.kind == "raster":
            with MemoryFile(cov.content, filename=cov.filename) as mem, mem.open() as src:
                if src.crs is None:
                    raise EvidenceError(f"{cov.filename}: the raster has no CRS")
        else:
            frame = _read_vector(cov)
            if frame.crs is None:
                raise EvidenceError(f"{cov.filename}: the layer has no CRS")
            if not len(frame):
                raise EvidenceError(f"{cov.filename}: the layer has no features")
    except (rasterio.errors.RasterioIOError, pyogrio.errors.DataSourceError) as exc:
        raise EvidenceError(f"{cov.filename}: cannot be read as a {cov.kind} ({exc})") from exc


def _read_vector(cov: Covariate) -> Any:
    return pyogrio.read_dataframe(io.BytesIO(cov.content))


def covariates(conn: Connection) -> list[Covariate]:
    rows = conn.execute(
        select(risk_covariate, blob.c.content)
        .join(blob, blob.c.sha256 == risk_covariate.c.sha256)
        .order_by(risk_covariate.c.name)
    ).all()
    return [Covariate(r.name, r.kind, r.use, r.filename, r.sha256, bytes(r.content)) for r in rows]


@dataclass
class VectorLayer:
    """Geometries in the grid's CRS, read as a distance (km) or a presence (0/1)."""

    name: str
    geoms: np.ndarray
    use: CovariateUse
    _tree: shapely.STRtree | None = field(default=None, repr=False, compare=False)

    def tree(self) -> shapely.STRtree:
        if self._tree is None:
            self._tree = shapely.STRtree(self.geoms)
        return self._tree

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tree"] = None  # rebuilt where it is used (a Dask worker)
        return state

    def sample(self, points: np.ndarray) -> np.ndarray:
        """Distance (km) or presence (0/1) at each point (shapely points, grid CRS)."""
        tree = self.tree()
        if self.use == "presence":
            hit = np.zeros(len(points), dtype=np.float64)
            idx = tree.query(points, predicate="intersects")
            hit[idx[0]] = 1.0
            return hit
        near, dist = tree.query_nearest(points, return_distance=True, all_matches=False)
        out = np.full(len(points), np.nan)
        out[near[0]] = dist / 1000.0
        return out


@dataclass
class RasterLayer:
    """A raster read at cell centres: the value of the source pixel holding the centre.

    A function of the point alone, so a cell gets the same value whether it is scored in a
    block of the map or drawn as a background or presence cell for fitting.
    """

    name: str
    content: bytes = field(repr=False)
    filename: str

    def sample(self, x: np.ndarray, y: np.ndarray, crs: CRS) -> np.ndarray:
        out = np.full(len(x), np.nan)
        if not len(x):
            return out
        with MemoryFile(self.content, filename=self.filename) as mem, mem.open() as src:
            tr = Transformer.from_crs(crs, src.crs, always_xy=True)
            sx, sy = tr.transform(x, y)
            inv = ~src.transform
            sx, sy = np.asarray(sx), np.asarray(sy)
            col = np.floor(inv.a * sx + inv.b * sy + inv.c).astype(np.int64)
            row = np.floor(inv.d * sx + inv.e * sy + inv.f).astype(np.int64)
            ok = (row >= 0) & (row < src.height) & (col >= 0) & (col < src.width)
            if not ok.any():
                return out
            r0, r1 = int(row[ok].min()), int(row[ok].max()) + 1
            c0, c1 = int(col[ok].min()), int(col[ok].max()) + 1
            window = Window(c0, r0, c1 - c0, r1 - r0)
            band = src.read(1, window=window, masked=True)
            vals = band[row[ok] - r0, col[ok] - c0]
            out[ok] = np.ma.filled(vals.astype(np.float64), np.nan)
        return out


@dataclass
class Evidence:
    """The register's evidence about a grid: presence points and feature layers."""

    grid: Grid
    presences: np.ndarray  # (n, 2) x/y in the grid's CRS
    vectors: list[VectorLayer]
    rasters: list[RasterLayer]

    @property
    def feature_names(self) -> list[str]:
        return [v.name for v in self.vectors] + [r.name for r in self.rasters]

    def features(self, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        """Features at points of the grid's CRS (cell centres), one row per point."""
        cols: dict[str, np.ndarray] = {}
        points = shapely.points(x, y)
        for v in self.vectors:
            cols[v.name] = v.sample(points)
        for r in self.rasters:
            cols[r.name] = r.sample(x, y, self.grid.crs)
        return pd.DataFrame(cols, columns=self.feature_names)

    def presence_cells(self) -> np.ndarray:
        """Unique (row, col) of the region's cells holding at least one presence."""
        if not len(self.presences):
            return np.empty((0, 2), dtype=np.int64)
        row, col = self.grid.cell_index(self.presences[:, 0], self.presences[:, 1])
        ok = (row >= 0) & (row < self.grid.height) & (col >= 0) & (col < self.grid.width)
        cells = np.unique(np.column_stack([row[ok], col[ok]]), axis=0)
        rows = {int(r): self.grid.inside(int(r), int(r) + 1)[0] for r in np.unique(cells[:, 0])}
        inside = np.array([rows[int(r)][int(k)] for r, k in cells], dtype=bool)
        return cells[inside] if len(cells) else cells


def load_evidence(register: Register, grid: Grid, region_wgs84: BaseGeometry) -> Evidence:
    """Read presences, feature layers and covariates in and around the region."""
    minx, miny, maxx, maxy = region_wgs84.bounds
    bbox = (minx - MARGIN_DEG, miny - MARGIN_DEG, maxx + MARGIN_DEG, maxy + MARGIN_DEG)
    store = register.store
    acc, items, haz = (record_tables[n] for n in ("accident", "eo_item", "hazardous_area"))
    places = record_tables["place"]
    with store.read() as conn:
        presence_rows = list(
            conn.execute(
                select(acc.c.record_id, acc.c.geometry).where(
                    store.bbox_clause(acc, bbox), acc.c.location_known.is_not(False)
                )
            )
        ) + list(
            conn.execute(
                select(items.c.record_id, items.c.geometry).where(
                    store.bbox_clause(items, bbox),
                    items.c.category.in_([str(k) for k in CONTAMINATION_ITEMS]),
                )
            )
        )
        hazards = conn.execute(
            select(haz.c.classification, haz.c.evidence, haz.c.geometry).where(
                store.bbox_clause(haz, bbox),
                haz.c.status.in_([str(s) for s in OPEN_STATUSES]),
            )
        ).all()
        released = [
            g
            for (g,) in conn.execute(
                select(processed_land.c.geometry).where(store.bbox_clause(processed_land, bbox))
            )
        ]
        settlements = [
            g
            for (g,) in conn.execute(
                select(places.c.geometry).where(store.bbox_clause(places, bbox))
            )
        ]
        user_layers = covariates(conn)
    presence_rows = [r for r in presence_rows if r.geometry is not None]
    presences = np.empty((0, 2))
    if presence_rows:
        pts = to_crs(np.array([r.geometry for r in presence_rows], dtype=object), grid.crs)
        presences = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
    layers: dict[str, tuple[list[BaseGeometry], CovariateUse]] = {
        "km_sha": (
            [h.geometry for h in hazards if h.classification == c.Classification.SHA],
            "distance",
        ),
        "km_cha": (
            [h.geometry for h in hazards if h.classification == c.Classification.CHA],
            "distance",
        ),
        "km_detonation": (
            [h.geometry for h in hazards if c.Evidence.DETONATION in (h.evidence or [])],
            "distance",
        ),
        "km_released": (released, "distance"),
        "in_released": (released, "presence"),
        "km_place": (settlements, "distance"),
    }
    vectors = [
        VectorLayer(
            name, to_crs(np.array([g for g in geoms if g is not None], dtype=object), grid.crs), use
        )
        for name, (geoms, use) in layers.items()
        if any(g is not None for g in geoms)
    ]
    rasters: list[RasterLayer] = []
    for cov in user_layers:
        if cov.kind == "raster":
            rasters.append(RasterLayer(cov.name, cov.content, cov.filename))
            continue
        frame = _read_vector(cov).to_crs(grid.crs)
        geoms = np.array([g for g in frame.geometry if g is not None and not g.is_empty])
        if len(geoms):
            vectors.append(VectorLayer(cov.name, geoms, cov.use))
    return Evidence(
        grid=grid,
        presences=presences,
        vectors=vectors,
        rasters=rasters,
    )
