"""A record's history: every report (approved, rejected, withdrawn, pending), who, when, why,
and the change each approved report made, with the dated status changes of a hazardous area."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from safeground.domain.personal import mask
from safeground.domain.records import record_model
from safeground.domain.reports import Report, replay
from safeground.service.register import Register
from safeground.storage.schema import hazard_change


@dataclass
class Entry:
    report: Report
    diff: dict[str, tuple[Any, Any]]
    notice: str | None


@dataclass
class History:
    record_id: str
    record_type: str
    entries: list[Entry]
    changes: list[dict[str, Any]]  # status/classification changes (hazardous areas)


def history(register: Register, record_id: str, include_personal: bool = False) -> History:
    reports = register.reports(record_id, include_personal=True)
    versions = {v.report.report_id: v for v in replay(reports).versions}
    entries = []
    for rep in sorted(
        reports, key=lambda r: (r.date_of_information, r.approval_seq or 0, r.report_id)
    ):
        version = versions.get(rep.report_id)
        if version is not None:
            entries.append(Entry(rep, version.diff, version.notice))
        else:
            entries.append(Entry(rep, {}, None))
    if not include_personal:
        hidden = set(record_model(reports[0].record_type).personal_fields)
        for entry in entries:
            for name in hidden & entry.diff.keys():
                old, new = entry.diff[name]
                entry.diff[name] = (mask(old), mask(new))
    changes = []
    if reports[0].record_type == "hazardous_area":
        with register.store.read() as conn:
            rows = conn.execute(
                select(hazard_change)
                .where(hazard_change.c.hazard_id == record_id)
                .order_by(hazard_change.c.fid)
            )
            changes = [dict(r._mapping) for r in rows]
    return History(record_id, reports[0].record_type, entries, changes)
