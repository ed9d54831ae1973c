"""Which views a write changed, and where: what server processes need to know to keep the rest of
what they hold in memory (map tiles, a layer's envelopes and features).

Each view a map layer reads (its table, and what its tiles join) has a *generation* in
``view_generation``, advanced in the transaction of every write that changes the view, and a
row in ``view_change`` for each recent generation: the lon/lat boxes of the features the write
changed, as they were before it and as they are after it (NULL: anywhere). A tile or a kept
feature that meets none of a view's boxes since it was read is as it would be read now.

The service layer, which knows what it writes, gathers the changes of a write in a
``ViewChanges`` and hands them to ``Store.after_write``; a ``ChangeLog`` reads the boxes back,
once per process.

Every register counts its generations from 0, so another register put where one was (a file
renamed or copied over it, a database emptied and made again) can stand at the generations a
process read of the first. The register's random identity (``register_identity``) is read
with the generations (``Generations``), and what a process keeps of one register is kept for
that identity alone.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from safeground.storage.store import Store

Box = tuple[float, float, float, float]

# The views server processes follow: the map layers' tables and what their tiles join. A new
# one needs its ``view_generation`` row, from a migration (``Store.after_write`` refuses a
# view that has none).
TRACKED_VIEWS = (
    "admin_area",
    "hazardous_area",
    "processed_land",
    "eo_item",
    "accident",
    "task",
    "risk_score",
)
# Generations of a view whose boxes the store keeps; a process further behind than this drops
# everything it keeps of the view.
CHANGES_KEPT = 1000
# Older boxes are deleted when a view's generation is a multiple of this (not on every write).
PRUNE_EVERY = 100
# Boxes one generation keeps: beyond, the box around them all (an import all over the country).
BOXES_KEPT = 64
# Boxes are widened by this much (degrees) when compared: a GeoPackage R-tree and PostGIS's
# ``&&`` round a feature's envelope outwards to 32-bit floats (under 2e-5° at 180°), so a
# feature whose exact bounds stop just short of a tile can still be drawn in it.
MARGIN = 1e-4
# Up to this many geometries, their bounds are read one by one rather than as arrays.
_ONE_BY_ONE = 16


class Generations(NamedTuple):
    """The views' generations as one snapshot reads them, and the identity of the register
    they count in: every register counts from 0, so another register put where one was can
    stand at the generations a process read of the first."""

    register: str
    views: dict[str, int]


class ViewChanges:
    """What one write changes in the tracked views: per view, boxes, or anywhere (None)."""

    def __init__(self) -> None:
        self._views: dict[str, list[Box] | None] = {}

    @classmethod
    def everywhere(cls, views: Iterable[str] = TRACKED_VIEWS) -> ViewChanges:
        """Every view changed anywhere: a rebuild, a restore."""
        changes = cls()
        for view in views:
            changes.anywhere(view)
        return changes

    def __bool__(self) -> bool:
        return bool(self._views)

    @property
    def views(self) -> list[str]:
        return sorted(self._views)

    def anywhere(self, view: str) -> None:
        if view in TRACKED_VIEWS:
            self._views[view] = None

    def touch(self, view: str) -> None:
        """The view changed, but no feature with a geometry did (a row without one)."""
        if view in TRACKED_VIEWS:
            self._views.setdefault(view, [])

    def add(self, view: str, geometries: Iterable[BaseGeometry | None]) -> None:
        """Features of the view changed that have (or had) these geometries; one without a
        geometry changes the view but no place in it."""
        if view not in TRACKED_VIEWS:
            return
        given = list(geometries)
        if not given:
            return
        self.touch(view)
        shapes = [g for g in given if g is not None]
        if len(shapes) <= _ONE_BY_ONE:  # an approval's few: cheaper than arrays
            bounds = [g.bounds for g in shapes if not g.is_empty]
        else:
            array = np.array(shapes, dtype=object)
            bounds = shapely.bounds(array[~shapely.is_empty(array)]).tolist()
        if not all(math.isfinite(v) for b in bounds for v in b):  # no box holds an infinity
            self.anywhere(view)
        else:
            self.add_boxes(view, [(a, b, c, d) for a, b, c, d in bounds])

    def add_boxes(self, view: str, boxes: Iterable[Box]) -> None:
        if view not in TRACKED_VIEWS:
            return
        self.touch(view)
        kept = self._views[view]
        if kept is not None:
            kept.extend(boxes)

    def boxes(self, view: str) -> list[list[float]] | None:
        """The view's boxes as stored: each once, at most ``BOXES_KEPT`` of them."""
        found = self._views[view]
        if found is None:
            return None
        distinct = list(dict.fromkeys(found))
        if len(distinct) > BOXES_KEPT:
            a = np.array(distinct)
            distinct = [(a[:, 0].min(), a[:, 1].min(), a[:, 2].max(), a[:, 3].max())]
        return [[float(v) for v in b] for b in distinct]


def meets(boxes: np.ndarray, bounds: Box) -> bool:
    """Whether any of the boxes (an n × 4 array) meets ``bounds``, widened by ``MARGIN``."""
    if not len(boxes):
        return False
    minx, miny, maxx, maxy = bounds
    return bool(
        (
            (boxes[:, 0] <= maxx + MARGIN)
            & (boxes[:, 2] >= minx - MARGIN)
            & (boxes[:, 1] <= maxy + MARGIN)
            & (boxes[:, 3] >= miny - MARGIN)
        ).any()
    )


def outside(boxes: np.ndarray, geometries: list[BaseGeometry | None]) -> np.ndarray:
    """Which geometries meet none of the boxes (widened by ``MARGIN``); a missing or empty
    geometry is never outside (where it was is not known)."""
    shapes = np.array(geometries, dtype=object)
    if not len(shapes):
        return np.zeros(0, dtype=bool)
    bounds = shapely.bounds(shapes).reshape(-1, 4)
    known = np.isfinite(bounds).all(axis=1)
    if not len(boxes):
        return known
    tree = shapely.STRtree(shapely.box(*boxes.T))
    probes = shapely.box(
        bounds[known, 0] - MARGIN,
        bounds[known, 1] - MARGIN,
        bounds[known, 2] + MARGIN,
        bounds[known, 3] + MARGIN,
    )
    hit = np.zeros(len(probes), dtype=bool)
    hit[np.unique(tree.query(probes, predicate="intersects")[0])] = True
    result = np.zeros(len(shapes), dtype=bool)
    result[np.flatnonzero(known)] = ~hit
    return result


class ChangeLog:
    """The boxes of each view's generations in one register, read from the store once and kept
    (they never change once written), for one server process. Those of another register (an
    identity it has not read them in) are different ones: all it keeps is dropped then."""

    def __init__(self, kept: int = CHANGES_KEPT) -> None:
        self.kept = kept
        self._register: str | None = None
        self._views: dict[str, dict[int, np.ndarray | None]] = {}
        self._lock = threading.Lock()

    def changed(
        self, conn: Connection, store: Store, register: str, view: str, after: int, upto: int
    ) -> np.ndarray | None:
        """The boxes (n × 4) where ``view`` changed in its generations after ``after`` up to
        ``upto``, read through ``conn`` (which sees ``upto`` of the register identified as
        ``register``) if not known yet; None when somewhere not known (the write said
        anywhere, or the store no longer holds the boxes of one of those generations)."""
        if upto <= after:
            return np.zeros((0, 4))
        if upto - after > self.kept:
            return None
        span = range(after + 1, upto + 1)
        with self._lock:
            if register != self._register:
                self._register, self._views = register, {}
            known = dict(self._views.get(view, {}))
        wanted = [g for g in span if g not in known]
        if wanted:
            read = store.view_changes(conn, view, wanted[0] - 1, wanted[-1])
            found = {g: _array(read.get(g)) for g in wanted}
            known.update(found)
            with self._lock:
                if register == self._register:  # not another register's, read meanwhile
                    kept = self._views.setdefault(view, {})
                    kept.update(found)
                    for g in [g for g in kept if g <= upto - self.kept]:
                        del kept[g]
        parts = [known[g] for g in span]
        if any(part is None for part in parts):
            return None
        return np.concatenate(parts)  # type: ignore[arg-type]


def _array(boxes: list[list[float]] | None) -> np.ndarray | None:
    return None if boxes is None else np.array(boxes, dtype=np.float64).reshape(-1, 4)
