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

from safeground.domain.errors import NotFound
from safeground.domain.reports import ReportStatus
from safeground.service.register import Register, Submission
from safeground.storage.schema import blob


@dataclass
class Attached:
    record_id: str
    report_id: int
    status: ReportStatus
    sha256: str
    size_bytes: int


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
) -> Attached:
    """Keep ``content`` and file (or, with ``approve=False``, draft) its attachment record.

    A record awaiting its first approval (a new hazard's draft) gets a drafted attachment
    whatever ``approve`` says: it is submitted and approved with the record, or after it.
    """
    if not register.is_current(conn, target_id):  # NotFound for an unknown record
        if not register.awaiting(conn, target_id):
            raise NotFound(f"{target_id} is not in the register and awaits no approval")
        approve = False
    digest = hashlib.sha256(content).hexdigest()
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
