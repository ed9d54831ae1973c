"""Ledger totals for the national picture, and a recount from polygons that checks them.

Totals add up the per-area balances stored by the register. The recount ignores them: it
clips every processed polygon to its hazard again and measures the union, so a disagreement
means the stored ledger is wrong, not the arithmetic.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, func, select

from safeground.domain.codes import LandType
from safeground.domain.geometry import geodesic_area
from safeground.domain.ledger import polygonal
from safeground.storage.schema import processed_land, record_tables

GROUPINGS = ("admin_area", "operator", "classification", "period")
AREA_COLUMNS = ("estimated_m2", "cancelled_m2", "reduced_m2", "cleared_m2", "remaining_m2")


@dataclass
class LedgerRow:
    key: str
    label: str
    hazards: int
    estimated_m2: float
    cancelled_m2: float
    reduced_m2: float
    cleared_m2: float
    remaining_m2: float


def totals(conn: Connection, by: str, period: str = "year") -> list[LedgerRow]:
    """Totals by admin area, operator, classification (hazard balances) or period (releases)."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}")
    if by in ("operator", "period"):
        return _released_totals(conn, by, period)
    hazard = record_tables["hazardous_area"]
    key = hazard.c.admin_area_id if by == "admin_area" else hazard.c.classification
    query = select(
        key,
        func.count(),
        func.sum(hazard.c.estimated_area_m2),
        func.sum(hazard.c.cancelled_m2),
        func.sum(hazard.c.reduced_m2),
        func.sum(hazard.c.cleared_m2),
        func.sum(hazard.c.remaining_m2),
    ).group_by(key)
    labels = _names(conn, "admin_area") if by == "admin_area" else {}
    rows = []
    for k, n, *areas in conn.execute(query):
        name = k or "(none)"
        rows.append(LedgerRow(name, labels.get(k, name), n, *(a or 0.0 for a in areas)))
    return sorted(rows, key=lambda r: r.label)


def _released_totals(conn: Connection, by: str, period: str) -> list[LedgerRow]:
    grouped: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    hazards: dict[str, set[str]] = defaultdict(set)
    query = select(
        processed_land.c.organisation_id,
        processed_land.c.date_of_information,
        processed_land.c.land_type,
        processed_land.c.credited_m2,
        processed_land.c.hazard_id,
    )
    for org, on, land_type, credited, hazard_id in conn.execute(query):
        if by == "operator":
            key = org or "(none)"
        else:
            key = str(on.year) if period == "year" else f"{on.year}-{on.month:02d}"
        grouped[key][land_type] += credited
        hazards[key].add(hazard_id)
    labels = _names(conn, "organisation") if by == "operator" else {}
    return [
        LedgerRow(
            key,
            labels.get(key, key),
            len(hazards[key]),
            0.0,
            grouped[key][LandType.CANCELLED],
            grouped[key][LandType.REDUCED],
            grouped[key][LandType.CLEARED],
            0.0,
        )
        for key in sorted(grouped)
    ]


def _names(conn: Connection, record_type: str) -> dict[str, str]:
    """Display names of all records of a named type (admin areas, organisations)."""
    table = record_tables[record_type]
    return {
        row.record_id: row.name for row in conn.execute(select(table.c.record_id, table.c.name))
    }


@dataclass
class Recount:
    hazards: int
    pieces: int
    stored_released_m2: float
    recounted_released_m2: float
    stored_remaining_m2: float
    recounted_remaining_m2: float
    # Hazards whose stored and recounted released area differ by 1 m² or more.
    disagreements: list[tuple[str, float, float]]

    @property
    def agrees(self) -> bool:
        return not self.disagreements


def recount(conn: Connection, workers: int | None = None) -> Recount:
    """Recompute every hazardous area's released and remaining area from the polygons.

    Large registers are split across processes (one per core by default): the work is
    independent per area and mostly GEOS and PROJ calls made one geometry at a time.
    """
    hazard = record_tables["hazardous_area"]
    rows = conn.execute(
        select(
            hazard.c.record_id,
            hazard.c.geometry,
            hazard.c.estimated_area_m2,
            hazard.c.released_m2,
            hazard.c.remaining_m2,
        )
    ).all()
    index = {row.record_id: i for i, row in enumerate(rows)}
    pieces = conn.execute(select(processed_land.c.hazard_id, processed_land.c.geometry)).all()
    owner = np.array([index[p.hazard_id] for p in pieces], dtype=np.int64)
    hazard_geoms = [row.geometry for row in rows]
    piece_geoms = np.array([p.geometry for p in pieces], dtype=object)
    workers = workers or (os.cpu_count() or 1)
    if workers > 1 and len(pieces) > PARALLEL_FROM:
        owned = sorted(set(owner.tolist()))
        jobs = []
        for chunk in (owned[i::workers] for i in range(workers)):
            members = np.isin(owner, chunk)
            jobs.append(({h: hazard_geoms[h] for h in chunk}, owner[members], piece_geoms[members]))
        # Shapely geometries are pickled (as WKB) to and from the worker processes.
        with ProcessPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(_released_areas, *zip(*jobs, strict=True)))
    else:
        found = [_released_areas(dict(enumerate(hazard_geoms)), owner, piece_geoms)]
    released = np.zeros(len(rows))
    for areas in found:
        for h, area in areas.items():
            released[h] = area
    disagreements = []
    stored_released = stored_remaining = recounted_remaining = 0.0
    for i, row in enumerate(rows):
        estimated = row.estimated_area_m2 or 0.0
        stored_released += row.released_m2 or 0.0
        stored_remaining += row.remaining_m2 or 0.0
        recounted_remaining += max(0.0, estimated - released[i])
        if abs((row.released_m2 or 0.0) - released[i]) >= 1.0:
            disagreements.append((row.record_id, row.released_m2 or 0.0, float(released[i])))
    return Recount(
        len(rows),
        len(pieces),
        stored_released,
        float(released.sum()),
        stored_remaining,
        recounted_remaining,
        disagreements,
    )


# Below this many processed polygons, starting processes costs more than it saves.
PARALLEL_FROM = 20_000


def _released_areas(
    hazards: dict[int, BaseGeometry | None], owner: np.ndarray, pieces: np.ndarray
) -> dict[int, float]:
    """Area of the union of each hazard's pieces clipped to it (may run in a worker process)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(owner.tolist()):
        groups[h].append(i)
    found = {}
    for h, members in groups.items():
        outline = hazards[h]
        if outline is None:
            continue
        clipped = [polygonal(g) for g in shapely.intersection(pieces[members], outline)]
        union = clipped[0] if len(clipped) == 1 else shapely.union_all(clipped)
        found[h] = geodesic_area(union)
    return found
