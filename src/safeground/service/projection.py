"""Rebuilding current views from approved reports: generic records and hazardous areas."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Table, delete, select

from safeground.domain.codes import LandType
from safeground.domain.errors import Problem
from safeground.domain.geometry import geodesic_areas
from safeground.domain.hazard import (
    ApprovedActivity,
    EvidenceEvent,
    HazardView,
    project_created_hazards,
    project_hazard,
)
from safeground.domain.records import Activity, HazardousArea, Record
from safeground.domain.reports import Operation, Report, ReportStatus, replay
from safeground.storage.generations import TRACKED_VIEWS, ViewChanges
from safeground.storage.gpkg import RtreeBatches
from safeground.storage.reportlog import load_reports
from safeground.storage.rows import (
    chunked_in,
    insert_columns,
    insert_rows,
    personal_row,
    record_columns,
    record_row,
    update_rows,
    upsert,
)
from safeground.storage.schema import (
    hazard_change,
    processed_land,
    record_tables,
    report,
    victim_personal,
)

# Records whose approval can change a hazardous area's status, classification or ledger.
HAZARD_LINKED = ("activity", "eo_item", "accident")


def _meta(reports: list[Report], record_id: str) -> dict[str, Any]:
    approved = [r for r in reports if r.status is ReportStatus.APPROVED]
    first = approved[0]
    return {
        "record_id": record_id,
        "version": len(approved),
        "updated_at": datetime.now(UTC),
        "last_report_id": max(r.report_id for r in approved),
        "source": first.source,
        "source_key": first.source_key,
    }


def rebuild_records(
    conn: Connection,
    record_type: str,
    reports_by_record: dict[str, list[Report]],
    changes: ViewChanges | None = None,
) -> list[str]:
    """Write the current view of each record; returns the same-date notices of the replays.

    ``changes`` gathers where the records were and are, for the views server processes follow.
    """
    table = record_tables[record_type]
    if changes is not None:
        _note_stored(conn, table, "record_id", list(reports_by_record), changes)
    rows, personal, retired, notices = [], [], [], []
    for record_id, reports in reports_by_record.items():
        result = replay(reports)
        notices += [f"{record_id}: {n}" for n in result.notices]
        if result.record is None:
            retired.append(record_id)
            continue
        rows.append({**record_row(result.record), **_meta(reports, record_id)})
        if result.record.personal_fields:
            personal.append({"record_id": record_id, **personal_row(result.record)})
    if changes is not None:
        changes.add(record_type, [row.get("geometry") for row in rows])
    upsert(conn, table, rows)
    if personal:
        upsert(conn, victim_personal, personal)
    for chunk in chunked_in(retired):
        conn.execute(delete(table).where(table.c.record_id.in_(chunk)))
    return notices


def _note_stored(
    conn: Connection, table: Table, key: str, values: list[Any], changes: ViewChanges
) -> None:
    """Note, for a view server processes follow, where the rows about to be rewritten or
    deleted are now (their ``key`` column among ``values``)."""
    if table.name not in TRACKED_VIEWS:
        return
    for chunk in chunked_in(values):
        query = select(table.c.geometry).where(table.c[key].in_(chunk))
        changes.add(table.name, conn.scalars(query))


def insert_new_records(
    conn: Connection, records: list[tuple[Record, Report]], changes: ViewChanges | None = None
) -> None:
    """Fast path for records created by one report each (imports): no replay needed."""
    by_type: dict[str, list[tuple[Record, Report]]] = {}
    for record, rep in records:
        by_type.setdefault(record.record_type, []).append((record, rep))
    personal: list[dict[str, Any]] = []
    for record_type, pairs in by_type.items():
        created = [record for record, _ in pairs]
        reports = [rep for _, rep in pairs]
        insert_created(
            conn,
            record_type,
            record_columns(record_type, created),
            [rep.record_id for rep in reports],
            [rep.report_id for rep in reports],
            [rep.source for rep in reports],
            [rep.source_key for rep in reports],
            changes,
        )
        if created[0].personal_fields:
            personal += [
                {"record_id": rep.record_id, **personal_row(record)} for record, rep in pairs
            ]
    insert_rows(conn, victim_personal, personal)


def insert_created(
    conn: Connection,
    record_type: str,
    columns: dict[str, list[Any]],
    record_ids: list[str],
    report_ids: list[int],
    sources: list[str | None],
    source_keys: list[str | None],
    changes: ViewChanges | None = None,
    rtrees: RtreeBatches | None = None,
) -> None:
    """The rows of new records, each created by one report: their stored fields as
    ``record_columns`` gives them, at version 1. ``rtrees``: see ``insert_columns``."""
    count = len(record_ids)
    if not count:
        return
    if changes is not None:
        changes.add(record_type, columns.get("geometry", [None] * count))
    row = {
        **columns,
        "record_id": record_ids,
        "version": [1] * count,
        "updated_at": [datetime.now(UTC)] * count,
        "last_report_id": report_ids,
        "source": sources,
        "source_key": source_keys,
    }
    insert_columns(conn, record_tables[record_type], row, rtrees)


def _creation_keys(conn: Connection, record_ids: list[str]) -> dict[str, tuple[date, int]]:
    """Where each record falls in a timeline: the date and approval of its create report."""
    keys = {}
    for chunk in chunked_in(record_ids):
        # Operation and status are tested here: in SQL, SQLite would look through the status
        # index, every approved report, rather than the record_id one.
        rows = conn.execute(
            select(
                report.c.record_id,
                report.c.date_of_information,
                report.c.approval_seq,
                report.c.operation,
                report.c.status,
            ).where(report.c.record_id.in_(chunk))
        )
        keys.update(
            {
                r.record_id: (r.date_of_information, r.approval_seq)
                for r in rows
                if r.operation == Operation.CREATE and r.status == ReportStatus.APPROVED
            }
        )
    return keys


def new_hazards(conn: Connection, created: dict[str, Report]) -> set[str]:
    """Of the hazardous areas created in this transaction (each by the approved create report
    given), those that have no other approved report: new to the register.

    Nothing of a new area is stored yet: its view, processed land and change log are written
    only by ``write_hazards``, for areas with an approved report. Nor does any record approved
    before name it: each approval refuses a reference to an area that is neither in the
    register nor approved with it (``checks.missing_references``), and approval is never undone.
    So only the records of this transaction can name a new area.
    """
    others: set[str] = set()
    for chunk in chunked_in(created):
        # The status is tested here: in SQL, SQLite would look through the status index.
        rows = conn.execute(
            select(report.c.record_id, report.c.report_id, report.c.status).where(
                report.c.record_id.in_(chunk)
            )
        )
        others.update(
            record_id
            for record_id, report_id, status in rows
            if status == ReportStatus.APPROVED and report_id != created[record_id].report_id
        )
    return {
        h
        for h, rep in created.items()
        if h not in others
        and rep.operation is Operation.CREATE
        and rep.status is ReportStatus.APPROVED
        and rep.record_type == "hazardous_area"
    }


def project_hazards(
    conn: Connection,
    hazard_ids: list[str],
    created: dict[str, tuple[Report, HazardousArea]] | None = None,
) -> dict[str, HazardView]:
    """Project hazardous areas from the register as it stands in this transaction.

    ``created``: new areas (``new_hazards``) that no record of the transaction names either, so
    that no record names them at all, each with its create report and the record it built:
    projected in bulk, without reading their reports back or looking for linked records.
    """
    if not hazard_ids:
        return {}
    created = created or {}
    activity_t, item_t, accident_t = (record_tables[t] for t in HAZARD_LINKED)
    activities: dict[str, list[ApprovedActivity]] = {}
    evidence: dict[str, list[EvidenceEvent]] = {}
    linked: list[tuple[str, str, Any]] = []
    for chunk in chunked_in(h for h in hazard_ids if h not in created):
        for row in conn.execute(select(activity_t).where(activity_t.c.hazard_id.in_(chunk))):
            linked.append(("activity", row.hazard_id, row))
        for row in conn.execute(select(item_t).where(item_t.c.hazard_id.in_(chunk))):
            linked.append(("eo_item", row.hazard_id, row))
        for row in conn.execute(
            select(accident_t).where(
                accident_t.c.hazard_id.in_(chunk), accident_t.c.location_known.is_(True)
            )
        ):
            linked.append(("accident", row.hazard_id, row))
    keys = _creation_keys(conn, [row.record_id for _, _, row in linked])
    for kind, hazard_id, row in linked:
        key = keys[row.record_id]
        if kind == "activity":
            record = Activity.model_validate(_row_values(row, Activity))
            activities.setdefault(hazard_id, []).append(
                ApprovedActivity(row.record_id, record, key)
            )
        else:
            what = f"{row.category} found" if kind == "eo_item" else f"{row.accident_type} accident"
            evidence.setdefault(hazard_id, []).append(EvidenceEvent(row.record_id, what, key))
    alone = [created[h] for h in hazard_ids if h in created]
    bulk = {view.hazard_id: view for view in project_created_hazards(alone)}
    reports = load_reports(conn, [h for h in hazard_ids if h not in bulk])
    return {
        h: bulk[h]
        if h in bulk
        else project_hazard(h, reports[h], activities.get(h, []), evidence.get(h, []))
        for h in hazard_ids
        if h in bulk or h in reports
    }


def _row_values(row: Any, model: type[Record]) -> dict[str, Any]:
    return {f: getattr(row, f) for f in model.model_fields if getattr(row, f, None) is not None}


def write_hazards(
    conn: Connection,
    views: dict[str, HazardView],
    new: Collection[str] = (),
    changes: ViewChanges | None = None,
) -> None:
    """Store projected hazardous areas with their ledger, processed land and change log.

    ``new``: areas of which nothing is stored yet (``new_hazards``): their rows are inserted
    without looking for old ones to delete or update. ``changes`` gathers where the areas and
    their processed land changed: an area or a piece of land whose row comes out as it was (an
    item found in an area confirmed already) is not a change.
    """
    ids = [h for h in views if h not in new]
    table = record_tables["hazardous_area"]
    before: dict[str, Any] | None = None  # the rows stored, when they are compared
    if changes is not None:
        if len(ids) <= COMPARED:
            before = {}
            for chunk in chunked_in(ids):
                query = select(table).where(table.c.record_id.in_(chunk))
                before.update((row.record_id, row) for row in conn.execute(query))
        else:  # an import: every area changed, where it was and is
            _note_stored(conn, table, "record_id", ids, changes)
    for chunk in chunked_in(ids):
        conn.execute(delete(hazard_change).where(hazard_change.c.hazard_id.in_(chunk)))
    rows, pieces, history, retired = [], [], [], []
    for hazard_id, view in views.items():
        if view.record is None:
            retired.append(hazard_id)
            continue
        balance = view.balance
        row = record_row(view.record)
        row.update(_meta(view.reports, hazard_id))
        row.update(
            estimated_area_m2=balance.estimated_m2,
            cancelled_m2=balance.released_m2[LandType.CANCELLED],
            reduced_m2=balance.released_m2[LandType.REDUCED],
            cleared_m2=balance.released_m2[LandType.CLEARED],
            released_m2=balance.total_released_m2,
            remaining_m2=balance.remaining_m2,
            status_date=view.status_date,
        )
        rows.append(row)
        for credit in view.credits:
            piece = credit.piece
            activity = view.activities[piece.activity_id]
            detail = activity.record.processed[piece.index]
            pieces.append(
                {
                    "activity_id": piece.activity_id,
                    "piece": piece.index,
                    "hazard_id": hazard_id,
                    "land_type": piece.land_type,
                    "activity_type": activity.record.activity_type,
                    "organisation_id": activity.record.organisation_id,
                    "method": detail.method,
                    "asset": detail.asset,
                    "technical_asset": detail.technical_asset,
                    "depth_cm": detail.depth_cm,
                    "date_of_information": activity.order_key[0],
                    "area_m2": None,  # below, for all pieces at once
                    "credited_m2": credit.area_m2,
                    "geometry": piece.geometry,
                }
            )
        history += [
            {
                "hazard_id": hazard_id,
                "changed_on": c.on,
                "attribute": c.attribute,
                "old_value": c.old,
                "new_value": c.new,
                "reason": c.reason,
                "cause": c.cause,
            }
            for c in view.changes
        ]
    if changes is not None:
        if before is None:
            changes.add("hazardous_area", [row["geometry"] for row in rows])
        else:
            _note_hazards(before, rows, retired, changes)
    if new:
        # Inserted in the views' order, as ``upsert`` would, so that the rows get the same fids.
        stored: set[str] = set()
        for chunk in chunked_in(r["record_id"] for r in rows if r["record_id"] not in new):
            stored.update(
                conn.scalars(select(table.c.record_id).where(table.c.record_id.in_(chunk)))
            )
        insert_rows(conn, table, [r for r in rows if r["record_id"] not in stored])
        rows = [r for r in rows if r["record_id"] in stored]
    upsert(conn, table, rows)
    for chunk in chunked_in(retired):
        conn.execute(delete(table).where(table.c.record_id.in_(chunk)))
    areas = geodesic_areas([values["geometry"] for values in pieces]).tolist()
    for values, area in zip(pieces, areas, strict=True):
        values["area_m2"] = area
    _write_land(conn, ids, pieces, changes)
    insert_rows(conn, hazard_change, history)


# The columns of processed land but its fid and geometry, in the order they are read back.
_LAND_VALUES = tuple(c.name for c in processed_land.c if c.name not in ("fid", "geometry"))


def _write_land(
    conn: Connection,
    hazard_ids: list[str],
    pieces: list[dict[str, Any]],
    changes: ViewChanges | None,
) -> None:
    """Store the processed land of reprojected areas, each piece keeping its fid (QGIS
    selections, edits and joins rely on it): a piece stored already is updated in the columns
    that differ, if any; pieces no longer there are deleted, new ones inserted. ``changes``
    gets where the pieces written were and are, and no others.

    ``hazard_ids``: the areas that may have land stored (not new ones). Pieces are matched by
    their key, (activity, piece), among the land of all of them: a piece whose activity now
    names another area of the write moves there with its fid. Always compared, however many
    areas: the stored rows must be read for their fids anyway, and a row left as it was costs
    less than one written again (on a GeoPackage, its R-tree entry too).
    """
    stored: dict[tuple[str, int], Any] = {}
    land = processed_land.c
    read = select(land.fid, land.geometry, *(land[c] for c in _LAND_VALUES))
    for chunk in chunked_in(hazard_ids):
        query = read.where(land.hazard_id.in_(chunk))
        stored.update(((row.activity_id, row.piece), row) for row in conn.execute(query))
    values_of = itemgetter(*_LAND_VALUES)
    added: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns that differ
    moved: list[BaseGeometry | None] = []
    for values in pieces:
        old = stored.pop((values["activity_id"], values["piece"]), None)
        if old is None:
            added.append(values)
            continue
        if old[2:] == values_of(values) and _same(old.geometry, values["geometry"]):
            continue  # the common case, told in one comparison (an import has thousands)
        differ = tuple(c for c, v in values.items() if not _same(getattr(old, c), v))
        updates.setdefault(differ, []).append({"fid": old.fid} | {c: values[c] for c in differ})
        moved += [old.geometry, values["geometry"]]
    gone = list(stored.values())  # what is left: pieces no longer credited to these areas
    if changes is not None:
        changes.add(
            "processed_land",
            [row.geometry for row in gone] + moved + [values["geometry"] for values in added],
        )
    for chunk in chunked_in(row.fid for row in gone):
        conn.execute(delete(processed_land).where(processed_land.c.fid.in_(chunk)))
    for rows in updates.values():
        update_rows(conn, processed_land, rows, key="fid")
    insert_rows(conn, processed_land, added)


# Bookkeeping columns that change with every rewrite and that no map layer shows.
UNSHOWN = frozenset({"updated_at"})
# Areas reprojected at once whose rows are read back and compared, to leave out those that come
# out as they were (an approval has a few); more (an import) are all taken as changed, their
# old rows not read whole (their boxes would be merged into one anyway: ``BOXES_KEPT``).
COMPARED = 100


def _note_hazards(
    stored: dict[str, Any],
    rows: list[dict[str, Any]],
    retired: list[str],
    changes: ViewChanges,
) -> None:
    """Where areas changed: those retired or new, and those whose row differs from the one
    stored in anything but ``UNSHOWN`` (a geometry compared coordinate by coordinate)."""
    where = [stored[h].geometry for h in retired if h in stored]
    for row in rows:
        old = stored.get(row["record_id"])
        if old is None:
            where.append(row["geometry"])
        elif not all(_same(getattr(old, k), v) for k, v in row.items() if k not in UNSHOWN):
            where += [old.geometry, row["geometry"]]
    changes.add("hazardous_area", where)


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, BaseGeometry) or isinstance(new, BaseGeometry):
        return (
            isinstance(old, BaseGeometry)
            and isinstance(new, BaseGeometry)
            and old.geom_type == new.geom_type
            and bool(old.equals_exact(new, 0.0))
        )
    return bool(old == new)


def hazard_problems_caused_by(views: dict[str, HazardView], causes: set[str]) -> list[Problem]:
    return [p for v in views.values() for cause, p in v.problems if cause in causes]
