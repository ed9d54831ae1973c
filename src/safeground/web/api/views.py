"""JSON views of records and reports for the API: geometry as GeoJSON, personal data only for
roles allowed to see it, organisation scoping applied."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import shapely
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import JSON, Connection, Select, literal, select, type_coerce, union_all

from safeground.domain.access import Principal
from safeground.domain.geometry import parse_geometry
from safeground.domain.records import Record, record_model
from safeground.domain.reports import Report
from safeground.io.fieldforms import form_for
from safeground.service import accounts
from safeground.service.register import Register
from safeground.storage.reportlog import latest_values
from safeground.storage.schema import report, unwrap

HIDDEN_COLUMNS = frozenset({"fid"})


@cache
def geometry_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if isinstance(unwrap(info.annotation), type)
        and issubclass(unwrap(info.annotation), BaseGeometry)
    )


@cache
def nested_geometry_fields(model: type[Record]) -> dict[str, frozenset[str]]:
    """List fields of parts with geometries of their own (an activity's processed land), with
    those geometry fields: a form reopening a draft draws them."""
    found = {}
    for name, info in model.model_fields.items():
        kind = unwrap(info.annotation)
        if typing.get_origin(kind) is not list:
            continue
        part = unwrap(typing.get_args(kind)[0])
        if isinstance(part, type) and issubclass(part, BaseModel) and geometry_fields(part):
            found[name] = geometry_fields(part)
    return found


def geojson(value: Any) -> Any:
    """A stored geometry (shapely, WKT or hex WKB) as a GeoJSON geometry object."""
    if value is None:
        return None
    geom = value if isinstance(value, BaseGeometry) else parse_geometry(value)
    return mapping(shapely.force_2d(geom))


def values_json(model: type[Record], values: dict[str, Any], personal: bool) -> dict[str, Any]:
    """Field values for output: geometries as GeoJSON; personal fields dropped unless allowed."""
    spatial = geometry_fields(model)
    nested = nested_geometry_fields(model)
    hidden = set() if personal else set(model.personal_fields)
    out = {
        k: geojson(v) if k in spatial else _parts_json(v, nested[k]) if k in nested else v
        for k, v in values.items()
        if k not in HIDDEN_COLUMNS and k not in hidden
    }
    return dict(jsonable_encoder(out))


def _parts_json(parts: Any, spatial: frozenset[str]) -> Any:
    if not isinstance(parts, list):
        return parts
    return [
        {k: geojson(v) if k in spatial else v for k, v in part.items()}
        if isinstance(part, dict)
        else part
        for part in parts
    ]


def record_json(values: dict[str, Any], principal: Principal) -> dict[str, Any]:
    model = record_model(values["record_type"])
    return values_json(model, values, principal.can_see_personal)


def report_json(rep: Report, principal: Principal) -> dict[str, Any]:
    model = record_model(rep.record_type)
    return {
        "report_id": rep.report_id,
        "record_id": rep.record_id,
        "record_type": rep.record_type,
        "operation": rep.operation,
        "status": rep.status,
        "date_of_information": rep.date_of_information.isoformat(),
        "changes": values_json(model, rep.changes, principal.can_see_personal),
        "form": _form_name(rep),
        "author": rep.author,
        "reason": rep.reason,
        "created_at": _iso(rep.created_at),
        "submitted_at": _iso(rep.submitted_at),
        "reviewed_by": rep.reviewed_by,
        "reviewed_at": _iso(rep.reviewed_at),
        "review_reason": rep.review_reason,
        "approval_seq": rep.approval_seq,
        "source": rep.source,
    }


def _form_name(rep: Report) -> str | None:
    """The browser form that reopens a draft (``/reports/new?form=...&report=...``)."""
    form = form_for(rep.record_type, rep.changes)
    return None if form is None else form.name


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


# Record types that name other records and are hidden with what they name (``hidden_records``),
# and the only types ever hidden from data entry: tasks, and these.
NAMING_TYPES = ("attachment", "link")
HIDDEN_TYPES = frozenset({"task", *NAMING_TYPES})


def hidden_records(principal: Principal) -> Select[Any] | None:
    """The IDs of the records a data entry account may not read, as a query: another
    organisation's tasks, the files attached to them and the links naming them, and so on
    along files and links (a file on such a link, a link naming such a file), their reports
    too, even approved. None for the other roles, which read every record.

    Whose a task is comes from its reports, not from its current view, so that a retired task
    (gone from the view) stays its organisation's, with its files and links. A task is the
    organisation's its approved reports leave it with (now, or when it was retired), not every
    one's it belonged to: a task handed over goes with its history to the organisation that
    now reports on it, whose staff could not otherwise read the task they work on, and the
    earlier owner loses sight of it all. A file or link is hidden if any of its reports ever
    named a hidden record, retired or pending files and links too (a report's file is
    downloaded through the report)."""
    if not principal.is_organisation_scoped:
        return None
    tasks = latest_values("task", "organisation_id")
    changes = type_coerce(report.c.changes, JSON)
    # What hides what: the other organisations' tasks hang from a root (no record's ID), a
    # file or link from each record it names. Hidden is whatever hangs from the root, at any
    # depth. Grown from that one row, PostgreSQL estimates the recursion small; grown from
    # every task, it guessed millions of rows and compiled the query (JIT): 0.3 s more at
    # 400,000 reports with 60,000 files and links.
    root = literal("", report.c.record_id.type)
    edges = (
        union_all(
            select(tasks.c.record_id, root.label("named")).where(
                tasks.c.value.is_distinct_from(principal.organisation_id)
            ),
            *(
                select(report.c.record_id, changes[name].as_string().label("named")).where(
                    report.c.record_type == kind
                )
                for kind in NAMING_TYPES
                for name in record_model(kind).names_any
            ),
        )
        .cte()
        .prefix_with("MATERIALIZED", dialect="postgresql")  # read once, not at each depth
    )
    # Unnamed CTEs: SQLAlchemy names each use apart, so one statement may hold several.
    hidden = select(root.label("record_id")).cte(recursive=True)
    hidden = hidden.union(
        select(edges.c.record_id).join(hidden, edges.c.named == hidden.c.record_id)
    )
    # DISTINCT (the union's rows are distinct already) makes PostgreSQL guess few rows, so a
    # caller's NOT IN stays one hashed set rather than a scan for each row.
    return select(hidden.c.record_id).where(hidden.c.record_id != root).distinct()


def visible_reports(conn: Connection, principal: Principal, reports: list[Report]) -> list[Report]:
    """The reports the principal may read (organisation scoping for data entry)."""
    if not principal.is_organisation_scoped:
        return [r for r in reports if principal.may_read_report(r.status, None)]
    organisations = accounts.organisations_of(conn, {r.author for r in reports})
    hidden = _hidden_among(
        conn, principal, {r.record_id for r in reports if r.record_type in HIDDEN_TYPES}
    )
    return [
        r
        for r in reports
        if r.record_id not in hidden
        and principal.may_read_report(r.status, organisations.get(r.author))
    ]


def _hidden_among(conn: Connection, principal: Principal, record_ids: set[str]) -> set[str]:
    query = hidden_records(principal)
    if query is None or not record_ids:
        return set()
    column = query.selected_columns[0]
    return set(conn.scalars(query.where(column.in_(sorted(record_ids)))))


def check_report_visible(conn: Connection, principal: Principal, rep: Report) -> None:
    if not visible_reports(conn, principal, [rep]):
        principal.require(False, f"read report {rep.report_id}")


def check_record_visible(principal: Principal, values: dict[str, Any]) -> None:
    record_type = values["record_type"]
    if not principal.may_read_record(record_type, values.get("organisation_id")):
        principal.require(False, f"read this {record_type}")


def check_not_hidden(
    conn: Connection, principal: Principal, record_type: str, record_id: str
) -> None:
    """None of ``hidden_records``, which judge a record by its reports: so a retired one, or
    one awaiting its first approval, is judged as a current one."""
    if record_type in HIDDEN_TYPES and _hidden_among(conn, principal, {record_id}):
        principal.require(False, f"read this {record_type}")


def check_visible(register: Register, principal: Principal, values: dict[str, Any]) -> None:
    """``check_record_visible``, and for data entry ``check_not_hidden`` (another
    organisation's task, or a file or link leading to one, current or retired)."""
    check_record_visible(principal, values)
    if not principal.is_organisation_scoped:
        return
    with register.store.read() as conn:
        check_not_hidden(conn, principal, values["record_type"], values["record_id"])
