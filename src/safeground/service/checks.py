"""Checks a batch of reports must pass before approval: references, stored content, processed
land, deployment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, func, select

from safeground.domain.errors import Problem
from safeground.domain.records import RECORD_TYPES, Activity, Attachment, Record, Task
from safeground.domain.reports import Operation, Report, ReportStatus, replay
from safeground.domain.rules import (
    Credential,
    Deployable,
    LandToCheck,
    deployment_problems,
    processed_land_problems,
)
from safeground.storage.reportlog import load_reports
from safeground.storage.rows import chunked_in
from safeground.storage.schema import blob, processed_land, record_tables, report

# New records of one type given column by column: record type, IDs, stored fields by name.
NewColumns = tuple[str, list[str], dict[str, list[Any]]]


def missing_references(
    conn: Connection, records: dict[str, Record], created: Sequence[NewColumns] = ()
) -> list[Problem]:
    """References that name no record of the expected type in the register or in the batch:
    ``records`` (as they now stand: a new hazard's view is written after the checks), and
    ``created``, new records given column by column (``columns``: their stored fields)."""
    wanted: dict[str, set[str]] = {}
    uses: list[tuple[str, str, str, str]] = []
    found: dict[str, set[str]] = {"*": set(records)}

    def use(record_id: str, field_name: str, target_type: str, value: Any) -> None:
        for target in value if isinstance(value, list) else [value] if value else []:
            wanted.setdefault(target_type, set()).add(target)
            uses.append((record_id, field_name, target_type, target))

    for record_id, record in records.items():
        values = vars(record)  # the fields, without pydantic's attribute lookup
        for field_name, target_type in record.references.items():
            use(record_id, field_name, target_type, values[field_name])
        for field_name in record.names_any:
            use(record_id, field_name, "*", values[field_name])
        found.setdefault(record.record_type, set()).add(record_id)
    for record_type, record_ids, columns in created:
        model = RECORD_TYPES[record_type]
        targets = [*model.references.items(), *((name, "*") for name in model.names_any)]
        for field_name, target_type in targets:
            for record_id, value in zip(record_ids, columns[field_name], strict=True):
                if value:  # most are empty: a call each cost a bulk import 0.05 s
                    use(record_id, field_name, target_type, value)
        found.setdefault(record_type, set()).update(record_ids)
        found["*"].update(record_ids)
    for target_type, ids in wanted.items():
        unknown = [i for i in ids if i not in found.get(target_type, ())]  # not the batch's
        if not unknown:
            continue
        for name in RECORD_TYPES if target_type == "*" else [target_type]:
            table = record_tables[name]
            for chunk in chunked_in(unknown):
                found.setdefault(target_type, set()).update(
                    conn.scalars(select(table.c.record_id).where(table.c.record_id.in_(chunk)))
                )
    missing = [
        (record_id, field_name, target_type, target)
        for record_id, field_name, target_type, target in uses
        if target not in found.get(target_type, set())
    ]
    unapproved = _unapproved(conn, {target for *_, target in missing})
    problems = []
    for record_id, field_name, target_type, target in missing:
        kind = "record" if target_type == "*" else target_type.replace("_", " ")
        report_id, pending_type, status = unapproved.get(target, (None, None, None))
        if report_id is None or target_type not in ("*", pending_type):
            reason = f"no {kind} {target} in the register"
        elif status is ReportStatus.SUBMITTED:
            reason = f"{kind} {target} is in report {report_id}, not yet approved: approve it first"
        elif status is ReportStatus.DRAFT:
            reason = f"{kind} {target} is in draft report {report_id}: submit it with this one"
        else:
            reason = f"{kind} {target} was {status} (report {report_id}): it will not be registered"
        problems.append(Problem(field_name, reason, record_id))
    return problems


def attachment_problems(
    conn: Connection, records: dict[str, Record], reports: list[Report]
) -> list[Problem]:
    """Update reports that move an attachment to another record or change its file; and
    attachments the batch creates whose SHA-256 and size name no stored file (an upload stores
    the bytes first, but a create sent to the reports API could name any digest, and the
    attachment would then answer its download with nothing), or a file their record has
    already. An update that keeps the record and the file (a caption edit) places no file: the
    file rules leave it alone, so a record's copies from before them stay editable."""
    created = {
        r.record_id
        for r in reports
        if r.record_type == "attachment" and r.operation is Operation.CREATE
    }
    wanted = {i: r for i, r in records.items() if isinstance(r, Attachment) and i in created}
    sizes: dict[str, int] = {}
    for chunk in chunked_in({r.sha256 for r in wanted.values()}):
        query = select(blob.c.sha256, func.length(blob.c.content)).where(blob.c.sha256.in_(chunk))
        sizes.update({sha256: int(size) for sha256, size in conn.execute(query)})
    problems = _moved_or_replaced(conn, reports)
    for record_id, record in wanted.items():
        stored = sizes.get(record.sha256)
        digest = f"SHA-256 {record.sha256[:12]}…"
        if stored is None:
            reason = f"no file with {digest} is stored: attach a file by uploading it"
            problems.append(Problem("sha256", reason, record_id))
        elif stored != record.size_bytes:
            reason = f"the file with {digest} has {stored} bytes, not {record.size_bytes}"
            problems.append(Problem("size_bytes", reason, record_id))
    return problems + _repeated_files(conn, wanted)


# What an attachment is, which no update changes: the record it documents and its file.
_KEPT = frozenset({"target_id", "sha256", "size_bytes"})


def _moved_or_replaced(conn: Connection, reports: list[Report]) -> list[Problem]:
    """Update reports that change an attachment's record or file, where they fall in its
    history: a scanned form or photo belongs to the record it documents, and moving it (or
    swapping its file) would silently change what its history says was documented. The
    attachment is retired instead, and the file attached where it belongs."""
    updates = {
        r.report_id: r.record_id
        for r in reports
        if r.record_type == "attachment"
        and r.operation is Operation.UPDATE
        and not r.changes.keys().isdisjoint(_KEPT)
    }
    problems = []
    for record_id, reps in sorted(load_reports(conn, set(updates.values())).items()):
        for version in replay(reps).versions:
            changed = version.diff.keys() & _KEPT
            if version.report.report_id not in updates or not changed or version.state is None:
                continue
            before = {
                k: version.diff[k][0] if k in version.diff else version.state[k] for k in _KEPT
            }
            after = version.state
            if "target_id" in changed:
                reason = (
                    f"{record_id} belongs to {before['target_id']} and is not moved to "
                    f"{after['target_id']}: retire it and attach the file to {after['target_id']}"
                )
                problems.append(Problem("target_id", reason, record_id))
            if changed - {"target_id"}:
                reason = (
                    f"{record_id} keeps the file it was attached with (SHA-256 "
                    f"{before['sha256'][:12]}…, {before['size_bytes']} bytes): retire it and "
                    f"attach the other file to {before['target_id']}"
                )
                field = "sha256" if "sha256" in changed else "size_bytes"
                problems.append(Problem(field, reason, record_id))
    return problems


def _repeated_files(conn: Connection, attachments: dict[str, Attachment]) -> list[Problem]:
    """Attachments the batch creates of a file their record has already (in the register, or
    earlier in the batch): two copies of one photo on one record are never wanted. The upload
    refuses them at once; this catches the rest (another user's draft approved later, the
    command line)."""
    table = record_tables["attachment"]
    holders: dict[tuple[str, str], str] = {}
    for chunk in chunked_in({a.sha256 for a in attachments.values()}):
        query = select(table.c.record_id, table.c.target_id, table.c.sha256).where(
            table.c.sha256.in_(chunk)
        )
        for record_id, target_id, sha256 in conn.execute(query.order_by(table.c.record_id)):
            if record_id not in attachments:  # as it now stands, the batch's own come next
                holders.setdefault((target_id, sha256), record_id)
    problems = []
    for record_id, record in sorted(attachments.items()):
        holder = holders.setdefault((record.target_id, record.sha256), record_id)
        if holder != record_id:
            reason = (
                f"{record.target_id} has this file already as {holder} "
                f"(SHA-256 {record.sha256[:12]}…): a record does not get a second copy"
            )
            problems.append(Problem("sha256", reason, record_id))
    return problems


# Which of a record's unapproved reports a problem names: the one awaiting review first.
_NAMED_FIRST = (
    ReportStatus.SUBMITTED,
    ReportStatus.DRAFT,
    ReportStatus.REJECTED,
    ReportStatus.WITHDRAWN,
)


def _unapproved(conn: Connection, record_ids: set[str]) -> dict[str, tuple[int, str, ReportStatus]]:
    """A report of each record not in the register, with the record's type and the report's
    status: a victim approved before its accident, or an attachment submitted without its new
    record, is refused naming the report to approve or submit first (or the rejected or
    withdrawn one)."""
    found: dict[str, tuple[int, str, ReportStatus]] = {}
    for chunk in chunked_in(record_ids):
        rows = conn.execute(
            select(report.c.record_id, report.c.report_id, report.c.record_type, report.c.status)
            .where(report.c.record_id.in_(chunk), report.c.status.in_(_NAMED_FIRST))
            .order_by(report.c.report_id)
        )
        for row in rows:
            status = ReportStatus(row.status)
            named = found.get(row.record_id)
            if named is None or _NAMED_FIRST.index(status) < _NAMED_FIRST.index(named[2]):
                found[row.record_id] = (row.report_id, row.record_type, status)
    return found


def processed_land_check(
    conn: Connection,
    activities: list[tuple[str, Activity]],
    outlines: dict[str, BaseGeometry | None],
    tolerance_m: float,
) -> list[Problem]:
    """Outside-the-hazard and overlap checks for the processed polygons of new activities.

    ``outlines``: each hazard's polygon as the batch leaves it (from its projection).
    """
    with_land = [(i, a) for i, a in activities if a.processed and a.hazard_id]
    hazard_ids = {a.hazard_id for _, a in with_land if a.hazard_id}
    in_batch = {i for i, _ in with_land}
    approved: dict[str, list[LandToCheck]] = {}
    for chunk in chunked_in(hazard_ids):
        for row in conn.execute(
            select(processed_land).where(processed_land.c.hazard_id.in_(chunk))
        ):
            if row.activity_id not in in_batch:
                label = f"{row.activity_id} processed[{row.piece}]"
                approved.setdefault(row.hazard_id, []).append(LandToCheck(label, row.geometry))
    problems: list[Problem] = []
    for activity_id, activity in with_land:
        hazard_id = str(activity.hazard_id)
        new = [
            LandToCheck(f"{activity_id} processed[{i}]", p.geometry)
            for i, p in enumerate(activity.processed)
        ]
        found = processed_land_problems(
            hazard_id, outlines.get(hazard_id), new, approved.get(hazard_id, []), tolerance_m
        )
        problems += [Problem(p.field, p.reason, activity_id) for p in found]
        # Later activities of the batch are checked against this one's land too.
        approved.setdefault(hazard_id, []).extend(new)
    return problems


def deployment_check(
    conn: Connection, records: list[tuple[str, Activity | Task]], reports: dict[str, Report]
) -> list[Problem]:
    """Teams, dogs and machines must hold a valid accreditation, team members a certification."""
    problems = []
    for record_id, record in records:
        on = _deployment_date(record) or reports[record_id].date_of_information
        assets = (
            [_deployable(conn, "team", t) for t in record.team_ids]
            + [_deployable(conn, "dog", d) for d in record.dog_ids]
            + [_deployable(conn, "machine", m) for m in record.machine_ids]
        )
        found = deployment_problems([a for a in assets if a is not None], on, "assets")
        problems += [Problem(p.field, p.reason, record_id) for p in found]
    return problems


def _deployment_date(record: Activity | Task) -> date | None:
    return record.start_date if isinstance(record, Activity) else record.planned_start


def _credentials(conn: Connection, holder_id: str, label: str, kind: str) -> tuple[Credential, ...]:
    if kind == "accreditation":
        table = record_tables["accreditation"]
        rows: list[Any] = list(conn.execute(select(table).where(table.c.subject_id == holder_id)))
    else:
        table = record_tables["certification"]
        rows = list(conn.execute(select(table).where(table.c.person_id == holder_id)))
    return tuple(
        Credential(
            holder_id,
            label,
            row.record_id,
            kind,
            row.issued,
            row.expires,
            bool(getattr(row, "suspended", False)),
        )
        for row in rows
    )


def _deployable(conn: Connection, record_type: str, asset_id: str) -> Deployable | None:
    table = record_tables[record_type]
    row = conn.execute(select(table).where(table.c.record_id == asset_id)).first()
    if row is None:
        return None  # reported by the reference check
    label = f"{record_type} {row.name}"
    members: tuple[Deployable, ...] = ()
    if record_type == "team":
        people = record_tables["person"]
        members = tuple(
            Deployable(
                p.record_id,
                f"person {p.name}",
                _credentials(conn, p.record_id, p.name, "certification"),
            )
            for p in conn.execute(select(people).where(people.c.team_id == asset_id))
        )
    return Deployable(
        asset_id, label, _credentials(conn, asset_id, label, "accreditation"), members
    )
