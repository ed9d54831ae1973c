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
from safeground.storage.schema import blob


@dataclass
class Attached:
    record_id: str
    report_id: int
    status: ReportStatus
    sha256: str
    size_bytes: int


class AlreadyAttached(WorkflowError):
    """The same content is attached to the same record already, by a draft or submitted report
    of the same user: a retried upload (a form saved again after a failure, a request whose
    answer was lost) must not attach a file twice. ``existing`` is that report."""

    def __init__(self, filename: str, target_id: str, existing: Report):
        self.existing = existing
        changes = existing.changes
        super().__init__(
            f"{filename} is attached to {target_id} already: your {existing.status} report "
            f"{existing.report_id} attaches the same file ({changes.get('filename')}, "
            f"{existing.record_id}, SHA-256 {str(changes.get('sha256'))[:12]}…), so it is not "
            "attached twice"
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
    With ``once`` (the web application), content that ``user`` attaches to ``target_id`` in a
    draft or submitted report already is refused (``AlreadyAttached``, naming that report).
    """
    if not register.is_current(conn, target_id):  # NotFound for an unknown record
        if not register.awaiting(conn, target_id):
            raise NotFound(f"{target_id} is not in the register and awaits no approval")
        approve = False
    digest = hashlib.sha256(content).hexdigest()
    if once:
        # Two uploads of one file at once (a double click, a retry) must not both pass.
        register.store.one_at_a_time(conn, f"attachment {user} {target_id} {digest}")
        existing = pending_attachment(conn, user, target_id, digest)
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
        )
    (draft,) = register.draft(user, [item], conn=conn)
    return Attached(draft.record_id, draft.report_id, draft.status, digest, len(content))


def content(conn: Connection, sha256: str) -> bytes:
    found = conn.execute(select(blob.c.content).where(blob.c.sha256 == sha256)).scalar()
    if found is None:
        raise NotFound(f"no stored content with SHA-256 {sha256}")
    return bytes(found)
