"""Reports and the approval workflow: draft, edit, withdraw, submit, approve, reject.

Each write lands with its audit entry in one transaction: the register's change and the record
of who made it are never apart.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from safeground.domain.access import Principal
from safeground.domain.errors import NotFound
from safeground.domain.records import record_model
from safeground.domain.reports import Operation, Report, ReportStatus
from safeground.service import accounts
from safeground.service import attachments as attachment_service
from safeground.service.register import Register, Submission
from safeground.storage.reportlog import find_reports, load_report
from safeground.web.api.views import (
    check_record_visible,
    check_report_visible,
    hidden_records,
    report_json,
    visible_reports,
)
from safeground.web.deps import (
    MAX_ID,
    Limit,
    Offset,
    ReportId,
    client_address,
    get_register,
    require,
)

router = APIRouter(tags=["reports"])

Drafter = Annotated[Principal, Depends(require(lambda p: p.can_draft, "draft reports"))]
Reviewer = Annotated[
    Principal, Depends(require(lambda p: p.can_approve, "approve or reject reports"))
]
Reader = Annotated[Principal, Depends(require(lambda p: p.sees_records, "read reports"))]


class NewReport(BaseModel):
    record_type: str = Field(examples=["hazardous_area"])
    changes: dict[str, Any] = Field(
        description="Field values; geometries as GeoJSON geometry objects in WGS84"
    )
    date_of_information: date
    record_id: str | None = Field(None, description="The record to update or retire")
    operation: Operation | None = None
    reason: str | None = None


class DraftEdit(BaseModel):
    changes: dict[str, Any] | None = None
    date_of_information: date | None = None
    reason: str | None = None


class Approve(BaseModel):
    reason: str | None = None


ReportIds = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]], Field(min_length=1, max_length=1000)
]


class Submit(BaseModel):
    report_ids: ReportIds = Field(description="One's drafts, submitted together or not at all")


class ApproveMany(Approve):
    report_ids: ReportIds = Field(description="Submitted reports, approved together or not at all")


class Reject(BaseModel):
    reason: str = Field(min_length=1, description="Why: the author reads it")


class Withdraw(BaseModel):
    reason: str | None = Field(
        None,
        description="Why, kept in the record's history; required of an administrator "
        "withdrawing a disabled account's draft",
    )


def _username(principal: Principal) -> str:
    assert principal.username is not None  # the require() dependencies ensure it
    return principal.username


def _loaded(conn: Connection, principal: Principal, report_id: int) -> Report:
    rep = load_report(conn, report_id, include_personal=principal.can_see_personal)
    if rep is None:
        raise NotFound(f"no report {report_id}")
    check_report_visible(conn, principal, rep)
    return rep


def _audit(
    conn: Connection,
    request: Request,
    principal: Principal,
    action: str,
    rep: Report,
    **detail: Any,
) -> None:
    accounts.audit(
        conn,
        principal.username,
        action,
        f"report {rep.report_id}",
        {"record_id": rep.record_id, **detail},
        client_address(request),
    )


@router.get("/reports")
def list_reports(
    request: Request,
    principal: Reader,
    status: ReportStatus | None = None,
    record_type: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Reports, newest first; data entry staff see their organisation's and approved ones."""
    with get_register(request).store.read() as conn:
        authors = (
            accounts.members_of(conn, principal.organisation_id)
            if principal.is_organisation_scoped
            else None
        )
        found = find_reports(
            conn,
            status,
            record_type,
            authors,
            limit,
            offset,
            principal.can_see_personal,
            hidden_records(principal),
        )
    return {
        "limit": limit,
        "offset": offset,
        "items": [report_json(r, principal) for r in found],
    }


@router.get("/reports/{report_id}")
def get_report(request: Request, report_id: ReportId, principal: Reader) -> dict[str, Any]:
    with get_register(request).store.read() as conn:
        return report_json(_loaded(conn, principal, report_id), principal)


@router.get("/reports/{report_id}/dependents")
def get_dependents(request: Request, report_id: ReportId, principal: Reader) -> dict[str, Any]:
    """The draft and submitted reports naming the record this report concerns (an accident's
    victims, a new record's photos) that the caller may read: a form reopens them with it, the
    queue submits and approves them with it."""
    register = get_register(request)
    with register.store.read() as conn:
        rep = _loaded(conn, principal, report_id)
        found = register.dependents(conn, rep.record_id, principal.can_see_personal)
        readable = visible_reports(conn, principal, found)
    return {"items": [report_json(r, principal) for r in readable]}


@router.get("/reports/{report_id}/content", response_class=Response)
def report_content(request: Request, report_id: ReportId, principal: Reader) -> Response:
    """The file an attachment's report holds: a reviewer sees a photo before approving it."""
    register = get_register(request)
    with register.store.read() as conn:
        rep = _loaded(conn, principal, report_id)
        if rep.record_type != "attachment" or "sha256" not in rep.changes:
            raise NotFound(f"report {report_id} attaches no file")
        data = attachment_service.content(conn, rep.changes["sha256"])
    return Response(data, media_type=rep.changes.get("media_type") or "application/octet-stream")


def _check_may_file(register: Register, principal: Principal, body: NewReport) -> None:
    """Data entry may touch only its own organisation's tasks."""
    if body.record_type != "task" or not principal.is_organisation_scoped:
        return
    if body.record_id is not None:
        check_record_visible(principal, register.get(body.record_id))
    elif body.changes.get("organisation_id") != principal.organisation_id:
        principal.require(False, "plan tasks for another organisation")


@router.post("/reports", status_code=201)
def create_report(request: Request, body: NewReport, principal: Drafter) -> dict[str, Any]:
    """A new draft report; the register's field rules run now, its approval rules at submit."""
    register = get_register(request)
    _check_may_file(register, principal, body)
    item = Submission(
        body.record_type,
        body.changes,
        body.date_of_information,
        record_id=body.record_id,
        operation=body.operation,
        reason=body.reason,
    )
    with register.store.begin() as conn:
        (rep,) = register.draft(_username(principal), [item], conn=conn)
        _audit(conn, request, principal, "report.draft", rep, record_type=rep.record_type)
    return report_json(rep, principal)


@router.patch("/reports/{report_id}")
def edit_report(
    request: Request, report_id: ReportId, body: DraftEdit, principal: Drafter
) -> dict[str, Any]:
    """Revise one's own draft; personal fields the author may not see are kept."""
    register = get_register(request)
    with register.store.begin() as conn:
        _loaded(conn, principal, report_id)
        rep = register.edit(
            _username(principal),
            report_id,
            _keeping_hidden(conn, principal, report_id, body.changes),
            body.date_of_information,
            body.reason,
            conn=conn,
        )
        _audit(conn, request, principal, "report.edit", rep)
    return report_json(rep, principal)


def _keeping_hidden(
    conn: Connection, principal: Principal, report_id: int, changes: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The new changes with the personal fields the editor was not shown (a victim's name for
    data entry): sent without them, they would be erased. Sent, they replace the stored ones."""
    if changes is None or principal.can_see_personal:
        return changes
    stored = load_report(conn, report_id, include_personal=True)
    assert stored is not None  # _loaded found it in this transaction
    hidden = record_model(stored.record_type).personal_fields
    return {**{k: v for k, v in stored.changes.items() if k in hidden}, **changes}


@router.post("/reports/submit")
def submit_reports(request: Request, body: Submit, principal: Drafter) -> dict[str, Any]:
    """Submit several of one's drafts together, as a form's accident with its victims: the
    approval checks run on all of them at once, so a victim may name the accident submitted
    with it. All are submitted, or none (422 with the problems, each naming its record)."""
    return {"items": _submit(request, principal, body.report_ids)}


@router.post("/reports/{report_id}/submit")
def submit_report(request: Request, report_id: ReportId, principal: Drafter) -> dict[str, Any]:
    """Submit one's draft for review; the approval checks run now (422 with their problems)."""
    (submitted,) = _submit(request, principal, [report_id])
    return submitted


def _submit(request: Request, principal: Principal, report_ids: list[int]) -> list[dict[str, Any]]:
    register = get_register(request)
    with register.store.begin() as conn:
        for report_id in report_ids:
            _loaded(conn, principal, report_id)
        reports = register.submit(_username(principal), report_ids, conn=conn)
        for rep in reports:
            _audit(conn, request, principal, "report.submit", rep)
    return [report_json(rep, principal) for rep in reports]


@router.post("/reports/approve")
def approve_reports(request: Request, body: ApproveMany, principal: Reviewer) -> dict[str, Any]:
    """Approve several submitted reports in one transaction, as an accident with its victims:
    all are approved, or none. Nobody approves a report of their own."""
    items, notices = _approve(request, principal, body.report_ids, body.reason)
    return {"items": items, "notices": notices}


@router.post("/reports/{report_id}/approve")
def approve_report(
    request: Request, report_id: ReportId, principal: Reviewer, body: Approve | None = None
) -> dict[str, Any]:
    """Approve a submitted report: the register, the ledger and the map change now."""
    (approved,), notices = _approve(request, principal, [report_id], body.reason if body else None)
    return {**approved, "notices": notices}


def _approve(
    request: Request, principal: Principal, report_ids: list[int], reason: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    register = get_register(request)
    with register.store.begin() as conn:
        reports = [_loaded(conn, principal, report_id) for report_id in report_ids]
        for rep in reports:
            principal.require(
                principal.may_review(rep.author),
                f"approve a report of their own (report {rep.report_id})",
            )
        approval = register.approve(_username(principal), report_ids, reason, conn=conn)
        approved = [_loaded(conn, principal, report_id) for report_id in approval.report_ids]
        for rep in approved:
            _audit(conn, request, principal, "report.approve", rep, reason=reason)
    return [report_json(rep, principal) for rep in approved], approval.notices


@router.post("/reports/{report_id}/reject")
def reject_report(
    request: Request, report_id: ReportId, body: Reject, principal: Reviewer
) -> dict[str, Any]:
    """Reject a submitted report; one that was to create a record takes with it the submitted
    reports naming that record (``rejected_with``), which could never be approved."""
    register = get_register(request)
    with register.store.begin() as conn:
        rep = _loaded(conn, principal, report_id)
        principal.require(principal.may_review(rep.author), "reject a report of their own")
        rejected = register.reject(_username(principal), report_id, body.reason, conn=conn)
        for done in rejected:
            _audit(conn, request, principal, "report.reject", done, reason=done.review_reason)
        rep = _loaded(conn, principal, report_id)
    return {**report_json(rep, principal), "rejected_with": [r.report_id for r in rejected[1:]]}


@router.post("/reports/{report_id}/withdraw")
def withdraw_report(
    request: Request, report_id: ReportId, principal: Drafter, body: Withdraw | None = None
) -> dict[str, Any]:
    """Withdraw one's draft: kept, withdrawn, out of the drafts. One that was to create a record
    takes with it the drafts naming that record (``withdrawn_with``), which could never be
    submitted. An administrator may withdraw the draft of a disabled account, with a reason."""
    register = get_register(request)
    reason = body.reason if body else None
    who = _username(principal)
    with register.store.begin() as conn:
        _loaded(conn, principal, report_id)
        withdrawn = register.withdraw(
            who, report_id, reason, conn=conn, administrator=principal.can_manage_users
        )
        for done in withdrawn:
            detail = accounts.withdrawal_detail(done, who, withdrawn)
            _audit(conn, request, principal, "report.withdraw", done, **detail)
        rep = _loaded(conn, principal, report_id)
    return {**report_json(rep, principal), "withdrawn_with": [r.report_id for r in withdrawn[1:]]}
