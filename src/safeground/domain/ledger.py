"""The land-release ledger: how much of a hazardous area is left, computed from polygons.

remaining = estimated − area(union of approved processed polygons clipped to the hazard).

Each processed polygon is credited only with the part of it that no earlier polygon (in
date-of-information order) already released, so the credits are disjoint: their sum is the area
of the union, per land type and in total, and nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from safeground.domain.codes import LandType
from safeground.domain.geometry import geodesic_area


@dataclass(frozen=True)
class ProcessedPiece:
    activity_id: str
    index: int
    land_type: LandType
    geometry: BaseGeometry


@dataclass(frozen=True)
class Credit:
    piece: ProcessedPiece
    area_m2: float


@dataclass
class Balance:
    estimated_m2: float
    released_m2: dict[LandType, float] = field(default_factory=lambda: {t: 0.0 for t in LandType})

    @property
    def total_released_m2(self) -> float:
        return sum(self.released_m2.values())

    @property
    def remaining_m2(self) -> float:
        # Credits lie inside the hazard, so this is ≥ 0 up to floating-point noise.
        return max(0.0, self.estimated_m2 - self.total_released_m2)


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The areal part of an overlay result: land that only touches a hazard along its edge
    yields lines or points, which release nothing."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else Polygon()


class Account:
    """A hazardous area's balance, to which processed pieces are added in date order."""

    def __init__(self, hazard: BaseGeometry | None, estimated_without_polygon: float | None):
        self.hazard = hazard
        estimated = (estimated_without_polygon or 0.0) if hazard is None else geodesic_area(hazard)
        self.balance = Balance(estimated)
        self.credits: list[Credit] = []
        self._released: BaseGeometry | None = None

    def add(self, piece: ProcessedPiece) -> Credit:
        if self.hazard is None:
            raise ValueError("an area without a polygon cannot release land")
        clipped = polygonal(piece.geometry.intersection(self.hazard))
        new = clipped if self._released is None else clipped.difference(self._released)
        credit = Credit(piece, geodesic_area(new))
        self.credits.append(credit)
        self.balance.released_m2[piece.land_type] += credit.area_m2
        self._released = clipped if self._released is None else self._released.union(clipped)
        return credit


def account(
    hazard: BaseGeometry | None,
    estimated_without_polygon: float | None,
    pieces: Iterable[ProcessedPiece],
) -> tuple[Balance, list[Credit]]:
    """Balance of one hazardous area given its processed pieces in date-of-information order."""
    ledger = Account(hazard, estimated_without_polygon)
    for piece in pieces:
        ledger.add(piece)
    return ledger.balance, ledger.credits
