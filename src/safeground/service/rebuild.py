"""Rebuilding every current view from the reports, the register's only source of truth.

Used by ``restore`` (reports are loaded raw, then the views are derived) and whenever a view is
suspected to be out of step. Records are rebuilt before hazardous areas, because a hazard's
status and ledger are projected from the activities, items and accidents linked to it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, func, select

from safeground.service.projection import project_hazards, rebuild_records, write_hazards
from safeground.storage.generations import ViewChanges
from safeground.storage.reportlog import load_reports
from safeground.storage.schema import (
    hazard_change,
    processed_land,
    record_tables,
    report,
    victim_personal,
)

if TYPE_CHECKING:
    from safeground.service.register import Register

CHUNK = 5000


def rebuild_all(register: Register, conn: Connection) -> dict[str, int]:
    """Rebuild all views inside ``conn``; returns the number of records per type.

    Records are processed in the order they were first approved, so that on an empty register
    the rows get the fids they had when the register was built approval by approval.
    """
    order = (
        select(report.c.record_id, report.c.record_type)
        .group_by(report.c.record_id, report.c.record_type)
        .order_by(
            # Never-approved records (drafts only) last; they have no view to rebuild.
            func.coalesce(func.min(report.c.approval_seq), 2**62),
            func.min(report.c.report_id),
        )
    )
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in conn.execute(order):
        by_type[row.record_type].append(row.record_id)
    _drop_orphans(conn)
    for record_type, record_ids in by_type.items():
        if record_type == "hazardous_area":
            continue
        for start in range(0, len(record_ids), CHUNK):
            chunk = record_ids[start : start + CHUNK]
            loaded = load_reports(conn, chunk, include_personal=True)
            rebuild_records(conn, record_type, {i: loaded[i] for i in chunk if i in loaded})
    hazards = by_type.get("hazardous_area", [])
    for start in range(0, len(hazards), CHUNK):
        write_hazards(conn, project_hazards(conn, hazards[start : start + CHUNK]))
    register.store.after_write(conn, ViewChanges.everywhere())
    return {record_type: len(ids) for record_type, ids in by_type.items()}


def _drop_orphans(conn: Connection) -> None:
    """View rows whose record has no report at all (they cannot be rebuilt, only removed)."""
    known = select(report.c.record_id)
    for table in record_tables.values():
        conn.execute(delete(table).where(table.c.record_id.not_in(known)))
    conn.execute(delete(victim_personal).where(victim_personal.c.record_id.not_in(known)))
    conn.execute(delete(processed_land).where(processed_land.c.hazard_id.not_in(known)))
    conn.execute(delete(hazard_change).where(hazard_change.c.hazard_id.not_in(known)))
