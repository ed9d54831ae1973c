"""Reading and writing reports: the register's only source of truth.

A report's personal fields (a victim's name, phone, address) are written to
``report_personal`` and joined back only for callers that ask for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Connection,
    Select,
    Subquery,
    and_,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from safeground.domain.records import record_model
from safeground.domain.reports import Operation, Report, ReportStatus
from safeground.storage.rows import chunked_in, insert_columns, insert_rows
from safeground.storage.schema import report, report_personal

_FIELDS = [c.name for c in report.c if c.name not in ("report_id", "import_batch")]


def insert_reports(
    conn: Connection, reports: list[Report], report_ids: list[int], import_batch: str | None = None
) -> None:
    """Store new reports under ``report_ids`` (reserved with ``Store.reserve_keys``)."""
    fields = [vars(r) for r in reports]
    columns = {f: [values[f] for values in fields] for f in _FIELDS if f != "changes"}
    columns["report_id"] = report_ids
    columns["import_batch"] = [import_batch] * len(reports)
    changes, private = [], []
    for r, report_id in zip(reports, report_ids, strict=True):
        r.report_id = report_id
        public, personal = _split_personal(r)
        changes.append(public)
        if personal:
            private.append({"report_id": report_id, "changes": personal})
    columns["changes"] = changes
    insert_columns(conn, report, columns)
    insert_rows(conn, report_personal, private)


def _split_personal(rep: Report) -> tuple[dict[str, Any], dict[str, Any]]:
    """A report's changes without its personal fields, and those fields (stored apart)."""
    hidden = record_model(rep.record_type).personal_fields
    if not hidden or not any(k in hidden for k in rep.changes):
        return rep.changes, {}
    return (
        {k: v for k, v in rep.changes.items() if k not in hidden},
        {k: v for k, v in rep.changes.items() if k in hidden},
    )


def _to_report(row: Any, personal: dict[int, dict[str, Any]]) -> Report:
    values = {f: getattr(row, f) for f in _FIELDS}
    values["changes"] = {**row.changes, **personal.get(row.report_id, {})}
    values["operation"] = Operation(values["operation"])
    values["status"] = ReportStatus(values["status"])
    return Report(report_id=row.report_id, **values)


def load_reports(
    conn: Connection, record_ids: Iterable[str], include_personal: bool = False
) -> dict[str, list[Report]]:
    """Every report of each record, in the order they were made."""
    found: dict[str, list[Report]] = {}
    for chunk in chunked_in(set(record_ids)):
        rows = conn.execute(
            select(report).where(report.c.record_id.in_(chunk)).order_by(report.c.report_id)
        ).all()
        personal = _personal(conn, [r.report_id for r in rows]) if include_personal else {}
        for row in rows:
            found.setdefault(row.record_id, []).append(_to_report(row, personal))
    return found


def find_reports(
    conn: Connection,
    status: ReportStatus | None = None,
    record_type: str | None = None,
    visible_authors: list[str] | None = None,
    limit: int = 100,
    offset: int = 0,
    include_personal: bool = False,
    hidden: Select[Any] | None = None,
) -> list[Report]:
    """A page of reports, newest first. ``visible_authors``: only approved reports and these
    authors' others (an organisation's view of the queue); ``hidden``: a query of record IDs
    whose reports are left out."""
    query = select(report).order_by(report.c.report_id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(report.c.status == status)
    if record_type is not None:
        query = query.where(report.c.record_type == record_type)
    if visible_authors is not None:
        query = query.where(
            or_(report.c.status == ReportStatus.APPROVED, report.c.author.in_(visible_authors))
        )
    if hidden is not None:
        query = query.where(report.c.record_id.not_in(hidden))
    rows = conn.execute(query).all()
    personal = _personal(conn, [r.report_id for r in rows]) if include_personal else {}
    return [_to_report(row, personal) for row in rows]


def reports_naming(
    conn: Connection,
    record_id: str,
    fields: list[tuple[str, str]],
    statuses: Iterable[ReportStatus],
    include_personal: bool = False,
) -> list[Report]:
    """Reports of ``statuses`` whose changes name ``record_id`` in one of ``fields`` ((record
    type, field) pairs), in the order they were made."""
    value = type_coerce(report.c.changes, JSON)
    naming = [
        and_(report.c.record_type == record_type, value[field].as_string() == record_id)
        for record_type, field in fields
    ]
    query = (
        select(report)
        .where(report.c.status.in_(list(statuses)), or_(*naming))
        .order_by(report.c.report_id)
    )
    rows = conn.execute(query).all()
    personal = _personal(conn, [r.report_id for r in rows]) if include_personal else {}
    return [_to_report(row, personal) for row in rows]


def latest_values(record_type: str, field: str) -> Subquery:
    """Each record of the type, retired ones too, with ``field`` as its approved reports leave
    it (columns ``record_id`` and ``value``, as text): the value in the last of them, in the
    order the replay applies them, that creates the record or names the field (None when never
    set or cleared). What the current view holds for a current record, and held for a retired
    one."""
    changes = type_coerce(report.c.changes, JSON)
    newest_first = func.row_number().over(
        partition_by=report.c.record_id,
        order_by=(
            report.c.date_of_information.desc(),
            func.coalesce(report.c.approval_seq, 0).desc(),
            report.c.report_id.desc(),
        ),
    )
    setting = (
        select(
            report.c.record_id,
            changes[field].as_string().label("value"),
            newest_first.label("rank"),
        )
        .where(
            report.c.record_type == record_type,
            report.c.status == ReportStatus.APPROVED,
            or_(
                report.c.operation == Operation.CREATE,
                and_(report.c.operation == Operation.UPDATE, _HasKey(report.c.changes, field)),
            ),
        )
        .subquery()
    )
    return select(setting.c.record_id, setting.c.value).where(setting.c.rank == 1).subquery()


class _HasKey(FunctionElement[bool]):
    """Whether a report's changes name the field, whatever its value: null clears it."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, changes: ColumnElement[object], field: str):
        super().__init__(changes, literal(field))


@compiles(_HasKey, "sqlite")
def _has_key_sqlite(element: _HasKey, compiler: SQLCompiler, **kw: Any) -> str:
    changes, field = (compiler.process(c, **kw) for c in element.clauses)
    return f"(json_type({changes}, '$.' || json_quote({field})) IS NOT NULL)"


@compiles(_HasKey, "postgresql")
def _has_key_postgresql(element: _HasKey, compiler: SQLCompiler, **kw: Any) -> str:
    changes, field = (compiler.process(c, **kw) for c in element.clauses)
    return f"({changes} ? {field})"


def load_report(conn: Connection, report_id: int, include_personal: bool = False) -> Report | None:
    row = conn.execute(select(report).where(report.c.report_id == report_id)).first()
    if row is None:
        return None
    return _to_report(row, _personal(conn, [report_id]) if include_personal else {})


def lock_reports(conn: Connection, report_ids: list[int]) -> None:
    """Hold the reports' rows to the end of the transaction, taken in ID order (PostgreSQL; a
    GeoPackage writer holds the whole file already).

    A state change (submit, approve, reject...) then reads each report's status as it stands:
    without the lock, a second reviewer approving or rejecting a report at the same moment
    read it still submitted, and overwrote the first one's decision once that was committed.
    """
    for chunk in chunked_in(sorted(set(report_ids))):
        query = select(report.c.report_id).where(report.c.report_id.in_(chunk))
        conn.execute(query.order_by(report.c.report_id).with_for_update())


def _personal(conn: Connection, report_ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunked_in(report_ids):
        for row in conn.execute(
            select(report_personal).where(report_personal.c.report_id.in_(chunk))
        ):
            found[row.report_id] = row.changes
    return found


def rewrite_draft(conn: Connection, rep: Report) -> None:
    """Store a revised draft's changes, date and reason (personal fields apart, as on insert)."""
    public, private = _split_personal(rep)
    update_report(
        conn,
        rep.report_id,
        changes=public,
        date_of_information=rep.date_of_information,
        reason=rep.reason,
    )
    conn.execute(report_personal.delete().where(report_personal.c.report_id == rep.report_id))
    if private:
        conn.execute(report_personal.insert().values(report_id=rep.report_id, changes=private))


def update_report(conn: Connection, report_id: int, **values: Any) -> None:
    conn.execute(report.update().where(report.c.report_id == report_id).values(**values))


def reports_by_source(conn: Connection, source: str) -> dict[str, str]:
    """source_key → record ID of reports already imported from ``source``."""
    rows = conn.execute(
        select(report.c.source_key, report.c.record_id).where(report.c.source == source)
    )
    return {key: record_id for key, record_id in rows}
