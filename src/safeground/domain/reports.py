"""Reports and the replay that turns approved reports into a record's current view.

Every change to the register arrives as a report with a date of information. Only approved
reports count, and they are applied in date-of-information order, so that a late paper report
dated earlier takes its place in history. Reports with the same date are applied in the order
they were approved (their approval sequence), and the replay says so: IMSMA NG silently ignored
one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from safeground.domain.errors import Problem, ValidationFailed
from safeground.domain.records import Record, record_model, to_payload


class ReportStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # a draft its author dropped: kept, never submitted


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RETIRE = "retire"


@dataclass
class Report:
    report_id: int
    record_id: str
    record_type: str
    operation: Operation
    date_of_information: date
    changes: dict[str, Any]
    author: str
    reason: str | None = None
    status: ReportStatus = ReportStatus.DRAFT
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    # Who settled the report (approved, rejected or withdrew it), when and why.
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    review_reason: str | None = None
    approval_seq: int | None = None
    source: str | None = None
    source_key: str | None = None
    # The record a create report builds, once validated (not stored: saves re-validating).
    built: Record | None = field(default=None, repr=False, compare=False)

    @property
    def order_key(self) -> tuple[date, int]:
        """Where an approved report falls in its record's history."""
        return (self.date_of_information, self.approval_seq or 0)


@dataclass
class Version:
    """A record's state after one approved report, and what the report changed."""

    report: Report
    state: dict[str, Any] | None
    diff: dict[str, tuple[Any, Any]]
    notice: str | None = None


@dataclass
class Replay:
    record: Record | None
    versions: list[Version] = field(default_factory=list)

    @property
    def notices(self) -> list[str]:
        return [v.notice for v in self.versions if v.notice]


def validation_problems(exc: ValidationError, record: str | None = None) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if not loc and ": " in message:
            loc, message = message.split(": ", 1)
        problems.append(Problem(field=loc or None, reason=message, record=record))
    return problems


def build_record(record_type: str, values: dict[str, Any], record_id: str | None = None) -> Record:
    """Validate values into a record, raising ValidationFailed that names each field."""
    try:
        return record_model(record_type).model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed(validation_problems(exc, record_id)) from None


def apply_report(state: dict[str, Any] | None, report: Report) -> dict[str, Any] | None:
    """The payload after ``report``; raises ValidationFailed if the result is not a valid record."""
    if report.operation is Operation.RETIRE:
        return None
    if report.operation is Operation.CREATE:
        if state is not None:
            raise ValidationFailed(
                [
                    Problem(
                        None,
                        "record exists already: a create report must be the first",
                        report.record_id,
                    )
                ]
            )
        merged = dict(report.changes)
    else:
        if state is None:
            raise ValidationFailed(
                [Problem(None, "no earlier approved report creates this record", report.record_id)]
            )
        merged = {**state, **report.changes}
        merged = {k: v for k, v in merged.items() if v is not None}
    return to_payload(build_record(report.record_type, merged, report.record_id))


def approved_in_order(reports: list[Report]) -> list[Report]:
    return sorted(
        (r for r in reports if r.status is ReportStatus.APPROVED), key=lambda r: r.order_key
    )


def replay(reports: list[Report]) -> Replay:
    """Rebuild a record from its approved reports, keeping every version and its diff."""
    state: dict[str, Any] | None = None
    versions: list[Version] = []
    previous: Report | None = None
    for report in approved_in_order(reports):
        after = apply_report(state, report)
        notice = None
        if previous is not None and previous.date_of_information == report.date_of_information:
            notice = (
                f"report {report.report_id} has the same date of information "
                f"({report.date_of_information}) as report {previous.report_id}; "
                "applied after it, in the order they were approved"
            )
        versions.append(Version(report, after, diff_states(state, after), notice))
        state, previous = after, report
    record = None if state is None else build_record(reports[0].record_type, state)
    return Replay(record, versions)


def diff_states(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, tuple[Any, Any]]:
    before, after = before or {}, after or {}
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }
