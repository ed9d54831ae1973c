"""Aggregates for the dashboard: the national picture at a glance, as tables of numbers.

Each chart is one query over the register's current views and returns a ``Chart`` (named
columns and rows), which the web layer serves as JSON or CSV and the page draws. Land figures
come from the ledger's own totals, so the dashboard and ``safeground ledger`` cannot disagree.
Casualty figures count victims by status and outcome; no personal field is ever read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select

from safeground.domain.codes import (
    AccreditationSubject,
    DatePrecision,
    ItemCategory,
    VictimOutcome,
    VictimStatus,
)
from safeground.service.ledger import totals
from safeground.storage.schema import record_tables

# Periods a release chart can be grouped by.
PERIODS = ("month", "year")
EXPIRY_WINDOW_DAYS = 30
UNKNOWN_DATE = "date not known"


@dataclass
class Chart:
    """A chart's data: what it shows, its columns, and one row per bar or line point."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    # The unit of the numeric columns, for axis labels ("m²", "items", "victims").
    unit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chart": self.name,
            "title": self.title,
            "unit": self.unit,
            "columns": self.columns,
            "rows": self.rows,
        }


def land_released(conn: Connection, period: str = "month") -> Chart:
    """Land released per period by type, from the processed polygons' credited areas."""
    if period not in PERIODS:
        raise ValueError(f"period: one of {', '.join(PERIODS)}")
    rows = [
        [row.key, row.cancelled_m2, row.reduced_m2, row.cleared_m2]
        for row in totals(conn, "period", period)
    ]
    return Chart(
        "land_released",
        f"Land released by {period} and type",
        ["period", "cancelled_m2", "reduced_m2", "cleared_m2"],
        rows,
        unit="m²",
    )


def remaining_by_district(conn: Connection) -> Chart:
    """Area still suspected or confirmed hazardous, by admin area (district)."""
    rows = [
        [row.key, row.label, row.hazards, row.remaining_m2]
        for row in sorted(totals(conn, "admin_area"), key=lambda r: -r.remaining_m2)
    ]
    return Chart(
        "remaining_by_district",
        "Remaining hazardous area by district",
        ["admin_area_id", "district", "hazardous_areas", "remaining_m2"],
        rows,
        unit="m²",
    )


def items_by_category(conn: Connection) -> Chart:
    """Explosive ordnance items found, by category (quantities, and the reports counting them)."""
    item = record_tables["eo_item"]
    query = select(item.c.category, func.count(), func.sum(item.c.quantity)).group_by(
        item.c.category
    )
    rows = [
        [category, _label(ItemCategory, category), int(quantity or 0), records]
        for category, records, quantity in conn.execute(query)
    ]
    rows.sort(key=lambda r: -r[2])
    return Chart(
        "items_by_category",
        "Explosive ordnance found by category",
        ["category", "label", "items", "records"],
        rows,
        unit="items",
    )


def casualties_by_month(conn: Connection) -> Chart:
    """Victims by month of their accident, by status (civilian, military...) and outcome.

    An accident dated only to the year is counted under the year alone, and one with no date
    under "date not known", rather than being put in a month it may not belong to.
    """
    victim = record_tables["victim"]
    accident = record_tables["accident"]
    query = (
        select(
            accident.c.accident_date,
            accident.c.date_precision,
            victim.c.victim_status,
            victim.c.outcome,
            func.count(),
        )
        .select_from(victim.outerjoin(accident, accident.c.record_id == victim.c.accident_id))
        .group_by(
            accident.c.accident_date,
            accident.c.date_precision,
            victim.c.victim_status,
            victim.c.outcome,
        )
    )
    series = [(s.value, o.value) for s in VictimStatus for o in VictimOutcome]
    counts: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for on, precision, status, outcome, n in conn.execute(query):
        counts[_month(on, precision)][(status or VictimStatus.UNKNOWN.value, outcome)] += n
    rows = [[month, *(counts[month][key] for key in series)] for month in sorted(counts)]
    return Chart(
        "casualties_by_month",
        "Casualties by month: civilian and military, killed and injured",
        ["month", *(f"{status}_{outcome}" for status, outcome in series)],
        rows,
        unit="victims",
    )


def _month(on: date | None, precision: str | None) -> str:
    if on is None:
        return UNKNOWN_DATE
    if precision == DatePrecision.YEAR:
        return f"{on.year}"
    return f"{on.year}-{on.month:02d}"


def expiring_accreditations(conn: Connection, today: date, days: int = EXPIRY_WINDOW_DAYS) -> Chart:
    """Accreditations (not suspended) that expire within ``days`` from ``today``, soonest first."""
    accreditation = record_tables["accreditation"]
    until = today + timedelta(days=days)
    query = (
        select(
            accreditation.c.record_id,
            accreditation.c.subject_type,
            accreditation.c.subject_id,
            accreditation.c.expires,
        )
        .where(
            and_(
                accreditation.c.expires >= today,
                accreditation.c.expires <= until,
                accreditation.c.suspended.is_not(True),
            )
        )
        .order_by(accreditation.c.expires, accreditation.c.record_id)
    )
    found = conn.execute(query).all()
    names = _subject_names(conn, found)
    rows = [
        [
            row.record_id,
            row.subject_type,
            row.subject_id,
            names.get(row.subject_id, row.subject_id),
            row.expires.isoformat(),
            (row.expires - today).days,
        ]
        for row in found
    ]
    return Chart(
        "expiring_accreditations",
        f"Accreditations expiring in the next {days} days",
        ["accreditation_id", "subject_type", "subject_id", "subject", "expires", "days_left"],
        rows,
        unit="days",
    )


def _subject_names(conn: Connection, rows: Sequence[Any]) -> dict[str, str]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        wanted[row.subject_type].add(row.subject_id)
    names: dict[str, str] = {}
    for subject_type, record_ids in wanted.items():
        if subject_type not in {s.value for s in AccreditationSubject}:
            continue
        table = record_tables[subject_type]
        query = select(table.c.record_id, table.c.name).where(table.c.record_id.in_(record_ids))
        names.update({r.record_id: r.name for r in conn.execute(query)})
    return names


def _label(codes: Any, value: str) -> str:
    try:
        return str(codes(value).label)
    except ValueError:
        return value


CHARTS = (
    "land_released",
    "remaining_by_district",
    "items_by_category",
    "casualties_by_month",
    "expiring_accreditations",
)
# Charts that name records: not for the public, who sees aggregates only.
RECORD_CHARTS = frozenset({"expiring_accreditations"})


def chart(conn: Connection, name: str, today: date, period: str = "month") -> Chart:
    """The chart called ``name`` (one of ``CHARTS``)."""
    if name == "land_released":
        return land_released(conn, period)
    if name == "remaining_by_district":
        return remaining_by_district(conn)
    if name == "items_by_category":
        return items_by_category(conn)
    if name == "casualties_by_month":
        return casualties_by_month(conn)
    if name == "expiring_accreditations":
        return expiring_accreditations(conn, today)
    raise ValueError(f"no chart {name!r}; charts: {', '.join(CHARTS)}")
