"""Rules of the register that involve more than one record: status transitions, land-release
checks before approval, and the deployment gate from accreditation and certification."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from shapely.geometry.base import BaseGeometry

from safeground.domain.codes import HazardStatus
from safeground.domain.errors import Problem
from safeground.domain.geometry import metres_outside, overlap_depth

ALLOWED_STATUS_CHANGES: dict[HazardStatus, frozenset[HazardStatus]] = {
    HazardStatus.OPEN: frozenset(
        {HazardStatus.WORKED_ON, HazardStatus.SUSPENDED, HazardStatus.CLOSED}
    ),
    HazardStatus.WORKED_ON: frozenset({HazardStatus.SUSPENDED, HazardStatus.CLOSED}),
    HazardStatus.SUSPENDED: frozenset(
        {HazardStatus.OPEN, HazardStatus.WORKED_ON, HazardStatus.CLOSED}
    ),
    # Reopening a closed area (an item found after handover) is allowed, with a reason.
    HazardStatus.CLOSED: frozenset({HazardStatus.OPEN}),
}


def status_change_problem(old: HazardStatus, new: HazardStatus) -> str | None:
    if old == new or new in ALLOWED_STATUS_CHANGES[old]:
        return None
    allowed = ", ".join(s.label for s in sorted(ALLOWED_STATUS_CHANGES[old]))
    return f"cannot go from {old.label} to {new.label}; from {old.label} only to {allowed}"


@dataclass(frozen=True)
class LandToCheck:
    label: str  # e.g. "AZ-ACT-2021-00003 processed[1]"
    geometry: BaseGeometry


def processed_land_problems(
    hazard_id: str,
    hazard: BaseGeometry | None,
    new: list[LandToCheck],
    approved: list[LandToCheck],
    tolerance_m: float,
) -> list[Problem]:
    """Why new processed polygons may not be approved: outside the hazard or overlapping."""
    if not new:
        return []
    if hazard is None:
        return []  # an existing area without a polygon is reported by its projection
    problems = []
    for i, piece in enumerate(new):
        where = f"processed[{i}]"
        outside = metres_outside(piece.geometry, hazard)
        if outside > tolerance_m:
            problems.append(
                Problem(
                    where,
                    f"leaves hazardous area {hazard_id} by up to {outside:.1f} m "
                    f"(tolerance {tolerance_m:g} m)",
                )
            )
        for other in [*approved, *new[:i]]:
            # Interiors must meet: land that only shares an edge does not overlap.
            if not piece.geometry.relate_pattern(other.geometry, "T********"):
                continue
            depth = overlap_depth(piece.geometry, other.geometry)
            if depth > tolerance_m:
                problems.append(
                    Problem(
                        where,
                        f"overlaps land already processed in {other.label} by up to "
                        f"{depth:.1f} m (tolerance {tolerance_m:g} m)",
                    )
                )
    return problems


@dataclass(frozen=True)
class Credential:
    """An accreditation or certification, reduced to what the deployment gate needs."""

    holder_id: str
    holder_label: str
    credential_id: str
    kind: str  # "accreditation" or "certification"
    issued: date
    expires: date | None
    suspended: bool = False

    def valid_on(self, day: date) -> bool:
        return (
            not self.suspended
            and self.issued <= day
            and (self.expires is None or day <= self.expires)
        )


@dataclass(frozen=True)
class Deployable:
    """A team, dog or machine to deploy, with the credentials that gate it.

    For a team, ``members`` lists its people: each needs a valid certification too.
    """

    asset_id: str
    label: str
    credentials: tuple[Credential, ...]
    members: tuple[Deployable, ...] = ()


def deployment_problems(assets: Iterable[Deployable], on: date, field: str) -> list[Problem]:
    """Assets whose accreditation (or a member's certification) is not valid on ``on``."""
    problems = []
    for asset in assets:
        problems += _credential_problem(asset, on, field, "accreditation")
        for member in asset.members:
            problems += _credential_problem(member, on, field, "certification", team=asset.label)
    return problems


def _credential_problem(
    holder: Deployable, on: date, field: str, kind: str, team: str | None = None
) -> list[Problem]:
    relevant = [c for c in holder.credentials if c.kind == kind]
    if any(c.valid_on(on) for c in relevant):
        return []
    who = f"{holder.label} ({holder.asset_id})" + (f", member of {team}" if team else "")
    if not relevant:
        reason = f"{who} has no {kind}"
    else:
        latest = max(relevant, key=lambda c: (c.expires or date.max, c.issued))
        if latest.suspended:
            reason = f"{who}: {kind} {latest.credential_id} is suspended"
        elif latest.issued > on:
            reason = f"{who}: {kind} {latest.credential_id} is valid only from {latest.issued}"
        else:
            reason = f"{who}: {kind} {latest.credential_id} expired on {latest.expires}"
    return [Problem(field, f"cannot deploy on {on}: {reason}")]
