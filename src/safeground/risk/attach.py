"""Mean and max mapped risk over hazardous areas and tasks, kept in ``risk_score``.

A risk score is a model's output, not something an operator observed, and it changes with
every new map; so it is not filed as a report that would change the record's fields (and its
history) but kept in a derived table, one row per record and map, with the model version, the
map's SHA-256 and date, and who attached it. Attaching a map again replaces that map's rows
only. The maps themselves are recorded in ``risk_map`` (path and SHA-256, which names a map):
the web map draws any of them, the newest unless told otherwise, and colours the hazardous
areas with the scores of the map it draws; a record's page shows the score of the map attached
last over it, and lists the others (``safeground.service.risk_scores``).

A cell counts for a polygon when the polygon touches it (GDAL's ``all_touched``): hazardous
areas are often smaller than a cell, and a polygon must never get no score because it missed
every cell centre.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import WindowError
from rasterio.features import geometry_mask, geometry_window
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Row, delete, select

from safeground.risk.grid import to_crs
from safeground.service.register import Register, now
from safeground.service.risk_scores import MAPS_NEWEST_FIRST
from safeground.storage.generations import ViewChanges
from safeground.storage.schema import record_tables, risk_map, risk_score


@dataclass(frozen=True)
class AttachedMap:
    """A risk map as attached: where its file was and what its bytes hashed to then."""

    path: Path
    sha256: str
    model_version: str
    map_date: date
    attached_at: datetime


def _attached(row: Row[Any]) -> AttachedMap:
    return AttachedMap(
        Path(row.path), row.map_sha256, row.model_version, row.map_date, row.attached_at
    )


def current_map(conn: Connection) -> AttachedMap | None:
    """The risk map attached last, if any."""
    row = conn.execute(select(risk_map).order_by(*MAPS_NEWEST_FIRST).limit(1)).first()
    return None if row is None else _attached(row)


def attached_map(conn: Connection, sha256: str) -> AttachedMap | None:
    """The risk map attached with that SHA-256, if any."""
    row = conn.execute(select(risk_map).where(risk_map.c.map_sha256 == sha256)).first()
    return None if row is None else _attached(row)


def attached_maps(conn: Connection) -> list[AttachedMap]:
    """Every risk map attached, newest first."""
    return [_attached(row) for row in conn.execute(select(risk_map).order_by(*MAPS_NEWEST_FIRST))]


@dataclass
class Score:
    record_id: str
    record_type: str
    mean_risk: float | None
    max_risk: float | None
    cells: int


def _polygons(register: Register) -> list[tuple[str, str, BaseGeometry]]:
    """Hazardous areas with a polygon, and tasks (their own polygon, else their hazard's)."""
    haz, task = record_tables["hazardous_area"], record_tables["task"]
    with register.store.begin() as conn:
        hazards = {
            r.record_id: r.geometry for r in conn.execute(select(haz.c.record_id, haz.c.geometry))
        }
        tasks = conn.execute(select(task.c.record_id, task.c.hazard_id, task.c.geometry)).all()
    out = [(i, "hazardous_area", g) for i, g in hazards.items() if g is not None]
    for t in tasks:
        g = t.geometry if t.geometry is not None else hazards.get(t.hazard_id)
        if g is not None:
            out.append((t.record_id, "task", g))
    return out


def zonal(
    src: rasterio.io.DatasetReader, geom: BaseGeometry
) -> tuple[float | None, float | None, int]:
    """Mean, max and number of the map cells a polygon (in the map's CRS) touches."""
    try:
        win = geometry_window(src, [geom], pad_x=1, pad_y=1)
    except WindowError:
        return None, None, 0  # the polygon lies off the map
    data = src.read(1, window=win)
    inside = geometry_mask(
        [geom],
        out_shape=data.shape,
        transform=src.window_transform(win),
        invert=True,
        all_touched=True,
    )
    vals = data[inside & np.isfinite(data)]
    if not vals.size:
        return None, None, 0
    return float(vals.mean()), float(vals.max()), int(vals.size)


@dataclass
class ScoredMap:
    """A risk map's scores, worked out before the write transaction that keeps them."""

    path: Path
    sha256: str
    model_version: str
    map_date: date
    scores: list[Score]


def attach_map(register: Register, map_path: Path, user: str) -> list[Score]:
    """Score every hazardous area and task the map covers; replace the scores this map had
    (attached before), keep those of other maps."""
    scored = score_map(register, map_path)
    with register.store.begin() as conn:
        keep_scores(register, conn, scored, user)
    return scored.scores


def score_map(register: Register, map_path: Path) -> ScoredMap:
    """Mean and max risk of every hazardous area and task the map covers (reads only, so the
    zonal statistics are not worked out under the register's write lock)."""
    digest = hashlib.sha256(map_path.read_bytes()).hexdigest()
    scores: list[Score] = []
    with rasterio.open(map_path) as src:
        tags = src.tags()
        version = tags.get("model_version")
        if not version:
            raise ValueError(f"{map_path} is not a Safeground risk map (no model_version tag)")
        map_date = date.fromisoformat(tags.get("map_date", now().date().isoformat()))
        for record_id, record_type, geom in _polygons(register):
            mean, mx, n = zonal(src, to_crs(geom, src.crs))
            if n:
                scores.append(Score(record_id, record_type, mean, mx, n))
    return ScoredMap(map_path, digest, version, map_date, scores)


def keep_scores(register: Register, conn: Connection, scored: ScoredMap, user: str) -> None:
    """Replace the map's scores (if it was attached before) and record the map as the newest,
    inside ``conn``. Other maps' scores stay, each under its map."""
    stamp = now()
    conn.execute(delete(risk_score).where(risk_score.c.map_sha256 == scored.sha256))
    if scored.scores:
        conn.execute(
            risk_score.insert(),
            [
                {
                    "record_id": s.record_id,
                    "record_type": s.record_type,
                    "mean_risk": s.mean_risk,
                    "max_risk": s.max_risk,
                    "cells": s.cells,
                    "model_version": scored.model_version,
                    "map_sha256": scored.sha256,
                    "map_date": scored.map_date,
                    "attached_by": user,
                    "attached_at": stamp,
                }
                for s in scored.scores
            ],
        )
    conn.execute(delete(risk_map).where(risk_map.c.map_sha256 == scored.sha256))
    conn.execute(
        risk_map.insert().values(
            map_sha256=scored.sha256,
            path=str(scored.path.resolve()),
            model_version=scored.model_version,
            map_date=scored.map_date,
            attached_by=user,
            attached_at=stamp,
        )
    )
    # Hazardous areas' tiles show their mean risk (tasks' do not).
    register.store.after_write(conn, ViewChanges.everywhere(["risk_score"]))
