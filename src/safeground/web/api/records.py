"""Records: lists, current views, history, links and attachments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, or_, select

from safeground.domain.access import Principal
from safeground.domain.errors import NotFound, Problem, ValidationFailed
from safeground.domain.records import RECORD_TYPES, record_model
from safeground.service import accounts
from safeground.service import attachments as attachment_service
from safeground.service.history import history as record_history
from safeground.service.register import Register
from safeground.storage.schema import record_tables
from safeground.web.api.views import (
    HIDDEN_TYPES,
    check_not_hidden,
    check_record_visible,
    check_visible,
    hidden_records,
    record_json,
    report_json,
    visible_reports,
)
from safeground.web.deps import (
    CurrentPrincipal,
    Limit,
    Offset,
    client_address,
    get_register,
    get_settings,
    require,
)
from safeground.web.errors import ErrorBody, FieldProblem

router = APIRouter(tags=["records"])

# Query filters and the column each reads.
FILTERS = {"admin_area": "admin_area_id", "operator": "organisation_id", "status": "status"}
LINKED_PER_TYPE = 200


class RecordPage(BaseModel):
    record_type: str
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]]


@router.get("/records", response_model=RecordPage)
def list_records(
    request: Request,
    principal: CurrentPrincipal,
    record_type: Annotated[str, Query(alias="type")] = "hazardous_area",
    admin_area: str | None = None,
    operator: str | None = None,
    status: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> RecordPage:
    """Current records of one type, filtered by admin area, operator (organisation) and status."""
    model = record_model(record_type)
    principal.require(principal.may_read_record(record_type, principal.organisation_id), "list")
    table = record_tables[record_type]
    conditions = []
    wanted = {"admin_area": admin_area, "operator": operator, "status": status}
    for name, value in wanted.items():
        if value is None:
            continue
        if FILTERS[name] not in table.c:
            raise ValidationFailed([Problem(name, f"{record_type} has no {FILTERS[name]}")])
        conditions.append(table.c[FILTERS[name]] == value)
    hidden = hidden_records(principal)
    if hidden is not None and record_type in HIDDEN_TYPES:
        conditions.append(table.c.record_id.not_in(hidden))
    query = select(table).where(*conditions)
    with get_register(request).store.read() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(table.c.record_id).limit(limit).offset(offset)).all()
    items = [record_json({**r._mapping, "record_type": record_type}, principal) for r in rows]
    return RecordPage(
        record_type=model.record_type, total=total, limit=limit, offset=offset, items=items
    )


@router.get("/records/{record_id}")
def get_record(request: Request, record_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    """A record's current view, with ``record_type``; personal fields only for roles allowed."""
    register = get_register(request)
    values = register.get(record_id, include_personal=principal.can_see_personal)
    check_visible(register, principal, values)
    return record_json(values, principal)


@router.get("/records/{record_id}/history")
def get_history(request: Request, record_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every report of the record the principal may read: who, when, why, and what changed."""
    register = get_register(request)
    with register.store.read() as conn:
        record_type = register.record_type_of(conn, record_id)
        # Data entry reads a task's history by the task's reports (check_not_hidden), so a
        # retired task's too: its current view, which may_read_record judges, is gone.
        allowed = principal.may_read_record(record_type, principal.organisation_id)
        principal.require(allowed, f"read {record_type}")
        check_not_hidden(conn, principal, record_type, record_id)
    found = record_history(register, record_id, include_personal=principal.can_see_personal)
    hidden = (
        set()
        if principal.can_see_personal
        else set(record_model(found.record_type).personal_fields)
    )
    with register.store.read() as conn:
        readable = {
            r.report_id for r in visible_reports(conn, principal, [e.report for e in found.entries])
        }
    entries = [
        {
            **report_json(e.report, principal),
            "diff": {
                k: {"old": old, "new": new} for k, (old, new) in e.diff.items() if k not in hidden
            },
            "notice": e.notice,
        }
        for e in found.entries
        if e.report.report_id in readable
    ]
    return {
        "record_id": record_id,
        "record_type": found.record_type,
        "entries": jsonable_encoder(entries),
        "status_changes": jsonable_encoder(found.changes),
    }


@router.get("/records/{record_id}/links")
def get_links(request: Request, record_id: str, principal: CurrentPrincipal) -> dict[str, Any]:
    """Records this one names, records that name it, free links, and its attachments."""
    register = get_register(request)
    values = register.get(record_id)
    check_visible(register, principal, values)
    model = record_model(values["record_type"])
    references = [
        {"field": field, "record_type": target, "record_id": values.get(field)}
        for field, target in model.references.items()
        if isinstance(values.get(field), str)
    ]
    referenced_by: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []
    if not principal.sees_records:  # the public: an admin area's own references only
        return {
            "record_id": record_id,
            "references": references,
            "referenced_by": [],
            "links": [],
            "attachments": [],
        }
    hidden = hidden_records(principal)
    with register.store.read() as conn:
        for other_type, other in RECORD_TYPES.items():
            table = record_tables[other_type]
            for field, target in other.references.items():
                if (
                    target != values["record_type"]
                    or field not in table.c
                    or field.endswith("_ids")
                ):
                    continue
                query = (
                    select(table.c.record_id)
                    .where(table.c[field] == record_id)
                    .order_by(table.c.record_id)
                    .limit(LINKED_PER_TYPE)
                )
                if hidden is not None:
                    query = query.where(table.c.record_id.not_in(hidden))
                referenced_by += [
                    {"field": field, "record_type": other_type, "record_id": i}
                    for i in conn.scalars(query)
                ]
        link = record_tables["link"]
        linked = select(link).where(or_(link.c.from_id == record_id, link.c.to_id == record_id))
        if hidden is not None:
            linked = linked.where(link.c.record_id.not_in(hidden))
        for row in conn.execute(linked):
            links.append(
                {
                    "link_id": row.record_id,
                    "from_id": row.from_id,
                    "to_id": row.to_id,
                    "relation": row.relation,
                }
            )
        attachment = record_tables["attachment"]
        attached = select(attachment).where(attachment.c.target_id == record_id)
        if hidden is not None:
            attached = attached.where(attachment.c.record_id.not_in(hidden))
        for row in conn.execute(attached.order_by(attachment.c.record_id)):
            attachments.append(
                {
                    "record_id": row.record_id,
                    "filename": row.filename,
                    "media_type": row.media_type,
                    "size_bytes": row.size_bytes,
                    "sha256": row.sha256,
                    "caption": row.caption,
                    "content_url": f"/api/attachments/{row.record_id}/content",
                }
            )
    return {
        "record_id": record_id,
        "references": references,
        "referenced_by": referenced_by,
        "links": links,
        "attachments": attachments,
    }


class Attached(BaseModel):
    record_id: str
    report_id: int
    status: str
    sha256: str
    size_bytes: int


class AttachedAlready(Attached):
    filename: str | None
    caption: str | None


class AlreadyAttachedBody(ErrorBody):
    """A 409: the attachment of the same file to the record there already (approved, whoever
    attached it), or the caller's pending report attaching it."""

    existing: AttachedAlready


Drafter = Annotated[Principal, Depends(require(lambda p: p.can_draft, "attach files"))]


@router.post(
    "/records/{record_id}/attachments",
    status_code=201,
    response_model=Attached,
    responses={
        409: {
            "model": AlreadyAttachedBody,
            "description": "The same file (the same SHA-256) is attached to this record already, "
            "by an approved attachment (whoever attached it) or by the caller's draft or "
            "submitted report: `existing` is that attachment",
        }
    },
)
def add_attachment(
    request: Request,
    record_id: str,
    principal: Drafter,
    file: Annotated[UploadFile, File(description="The photo or scanned form")],
    caption: Annotated[str | None, Form()] = None,
) -> Attached | JSONResponse:
    """Attach a file (size-limited). Reviewers and above file it at once; data entry drafts it.
    A record awaiting its first approval gets a drafted attachment from anyone who may read its
    report, submitted and approved with it. The same file (the same SHA-256) is refused with 409,
    naming the attachment there already, while it is attached to the record (approved, whoever
    attached it) or while the caller's report attaching it is a draft or submitted: a retried
    upload never attaches a file twice, and a file on the record is not attached to it again."""
    for name, text in (("file", file.filename or ""), ("caption", caption or "")):
        if "\x00" in text:
            raise ValidationFailed([Problem(name, "text may not contain the NUL character")])
    limit = get_settings(request).max_upload_bytes
    content = file.file.read(limit + 1)
    if len(content) > limit:
        raise HTTPException(413, f"the file is larger than {limit:,} bytes")
    register = get_register(request)
    _check_may_attach(register, principal, record_id)
    assert principal.username is not None
    try:
        with register.store.begin() as conn:
            done = attachment_service.attach(
                register,
                conn,
                principal.username,
                record_id,
                file.filename or "upload",
                content,
                caption,
                file.content_type,
                approve=principal.can_approve,
                once=True,
            )
            accounts.audit(
                conn,
                principal.username,
                "attachment.add",
                done.record_id,
                {"target_id": record_id, "sha256": done.sha256, "report_id": done.report_id},
                client_address(request),
            )
    except attachment_service.AlreadyAttached as already:
        return _already_attached(already)
    return Attached.model_validate(done, from_attributes=True)


def _already_attached(already: attachment_service.AlreadyAttached) -> JSONResponse:
    existing = already.existing
    body = AlreadyAttachedBody(
        detail=str(already),
        problems=[FieldProblem(field="file", message=str(already), record=existing.record_id)],
        existing=AttachedAlready.model_validate(existing, from_attributes=True),
    )
    return JSONResponse(jsonable_encoder(body), status_code=409)


def _check_may_attach(register: Register, principal: Principal, record_id: str) -> None:
    """The record is one the principal may read, or awaits its first approval in a report the
    principal may read (a draft: its organisation's, for data entry)."""
    try:
        check_record_visible(principal, register.get(record_id))
    except NotFound:
        with register.store.read() as conn:
            awaiting = register.awaiting(conn, record_id)
            if not awaiting:
                raise
            if not visible_reports(conn, principal, awaiting):
                principal.require(False, f"attach files to {record_id}")


# Checked before the attachment is looked up: an anonymous or public caller learns nothing of
# which attachments exist (401 or 403 whatever the ID), and the OpenAPI document can say that
# the download always needs credentials (no ``{}``).
Downloader = Annotated[
    Principal, Depends(require(lambda p: p.sees_records, "download attachments"))
]


@router.get("/attachments/{record_id}/content", response_class=Response)
def attachment_content(request: Request, record_id: str, principal: Downloader) -> Response:
    """The attached file, for every role that reads records (never the public)."""
    register = get_register(request)
    values = register.get(record_id)
    if values["record_type"] != "attachment":
        raise NotFound(f"{record_id} is not an attachment")
    check_visible(register, principal, values)
    with register.store.read() as conn:
        data = attachment_service.content(conn, values["sha256"])
    return Response(data, media_type=values["media_type"] or "application/octet-stream")
