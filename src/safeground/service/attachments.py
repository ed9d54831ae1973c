"""Attachments: photos and scanned forms kept in the register by their SHA-256.

The bytes go to ``blob`` (once per content); an ``attachment`` record, filed or drafted like
any other, says which record they belong to.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, select

from safeground.domain.errors import NotFound, WorkflowError
from safeground.domain.reports import Operation, Report, ReportStatus
from safeground.service.register import AWAITING, Register, Submission
from safeground.storage.reportlog import reports_naming
from safeground.storage.schema import blob, record_tables, report


@dataclass
class Attached:
    record_id: str
    report_id: int
    status: ReportStatus
    sha256: str
    size_bytes: int
    filename: str | None = None
    caption: str | None = None


class AlreadyAttached(WorkflowError):
    """The same content is attached to the same record already: by an attachment there now
    (whoever attached it), or by a draft or submitted report of the same user. A retried upload
    (a form saved again after a failure, a request whose answer was lost) must not attach a file
    twice, and two copies of one file on one record are never wanted. ``existing`` is that
    attachment: for one waiting, its report; for one approved, the report that attached it."""

    def __init__(self, filename: str, target_id: str, existing: Attached):
        self.existing = existing
        sha256 = f"SHA-256 {existing.sha256[:12]}…"
        if existing.status is ReportStatus.APPROVED:
            said = (
                f"{existing.record_id} is the same file ({existing.filename}, attached by "
                f"report {existing.report_id}, {sha256})"
            )
        else:
            said = (
                f"your {existing.status} report {existing.report_id} attaches the same file "
                f"({existing.filename}, {existing.record_id}, {sha256})"
            )
        super().__init__(
            f"{filename} is attached to {target_id} already: {said}, so it is not attached twice"
        )


def pending_attachment(conn: Connection, user: str, target_id: str, sha256: str) -> Report | None:
    """The user's draft or submitted report attaching content ``sha256`` to ``target_id``."""
    for found in reports_naming(conn, target_id, [("attachment", "target_id")], AWAITING):
        if (
            found.operation is Operation.CREATE
            and found.author == user
            and found.changes.get("sha256") == sha256
        ):
            return found
    return None


def current_attachment(conn: Connection, target_id: str, sha256: str) -> Attached | None:
    """The attachment of content ``sha256`` to ``target_id`` in the register now (approved, not
    retired), whoever attached it, with the report that created it."""
    table = record_tables["attachment"]
    row = conn.execute(
        select(table)
        .where(table.c.target_id == target_id, table.c.sha256 == sha256)
        .order_by(table.c.record_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    created = conn.execute(
        select(report.c.report_id).where(
            report.c.record_id == row.record_id,
            report.c.operation == Operation.CREATE,
            report.c.status == ReportStatus.APPROVED,
        )
    ).scalar()
    return Attached(
        row.record_id,
        row.last_report_id if created is None else created,
        ReportStatus.APPROVED,
        row.sha256,
        row.size_bytes,
        row.filename,
        row.caption,
    )


def already_attached(conn: Connection, user: str, target_id: str, sha256: str) -> Attached | None:
    """What makes content ``sha256`` attached to ``target_id`` already: the user's pending report
    attaching it (named first: a form whose answer was lost lists it with its own), else an
    attachment of it there now, whoever's."""
    pending = pending_attachment(conn, user, target_id, sha256)
    if pending is not None:
        changes = pending.changes
        return Attached(
            pending.record_id,
            pending.report_id,
            pending.status,
            sha256,
            changes["size_bytes"],
            changes.get("filename"),
            changes.get("caption"),
        )
    return current_attachment(conn, target_id, sha256)


def attach(
    register: Register,
    conn: Connection,
    user: str,
    target_id: str,
    filename: str,
    content: bytes,
    caption: str | None = None,
    media_type: str | None = None,
    approve: bool = True,
    once: bool = False,
) -> Attached:
    """Keep ``content`` and file (or, with ``approve=False``, draft) its attachment record.

    A record awaiting its first approval (a new hazard's draft) gets a drafted attachment
    whatever ``approve`` says: it is submitted and approved with the record, or after it.
    With ``once`` (the web application), content attached to ``target_id`` already is refused
    (``AlreadyAttached``, naming that attachment): by an attachment there now, whoever attached
    it, or by a draft or submitted report of ``user``.
    """
    if not register.is_current(conn, target_id):  # NotFound for an unknown record
        if not register.awaiting(conn, target_id):
            raise NotFound(f"{target_id} is not in the register and awaits no approval")
        approve = False
    digest = hashlib.sha256(content).hexdigest()
    if once:
        # Two uploads of one file to one record at once (a double click, a retry, two users
        # filing the same photo) must not both pass: whoever sends them, one waits.
        register.store.one_at_a_time(conn, f"attachment {target_id} {digest}")
        existing = already_attached(conn, user, target_id, digest)
        if existing is not None:
            raise AlreadyAttached(filename, target_id, existing)
    item = Submission(
        "attachment",
        {
            "target_id": target_id,
            "filename": filename,
            "media_type": media_type
            or mimetypes.guess_type(filename)[0]
            or "application/octet-stream",
            "sha256": digest,
            "size_bytes": len(content),
            "caption": caption,
        },
        date.today(),
    )
    if conn.execute(select(blob.c.sha256).where(blob.c.sha256 == digest)).first() is None:
        conn.execute(blob.insert().values(sha256=digest, content=content))
    if approve:
        approval = register.file(user, [item], conn=conn)
        return Attached(
            approval.record_ids[0],
            approval.report_ids[0],
            ReportStatus.APPROVED,
            digest,
            len(content),
            filename,
            caption,
        )
    (draft,) = register.draft(user, [item], conn=conn)
    return Attached(
        draft.record_id, draft.report_id, draft.status, digest, len(content), filename, caption
    )


def content(conn: Connection, sha256: str) -> bytes:
    found = conn.execute(select(blob.c.content).where(blob.c.sha256 == sha256)).scalar()
    if found is None:
        raise NotFound(f"no stored content with SHA-256 {sha256}")
    return bytes(found)
