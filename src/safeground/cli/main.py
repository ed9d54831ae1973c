"""The ``safeground`` command: thin wrappers that parse arguments, call a service, print."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from safeground.cli.common import (
    StoreOption,
    UserOption,
    acting_user,
    migrated_register,
    open_register,
    run,
)
from safeground.cli.forms import forms_app
from safeground.cli.output import table
from safeground.cli.risk import risk_app
from safeground.cli.web import serve, token_app, user_app
from safeground.domain.personal import mask
from safeground.domain.records import RECORD_TYPES, record_model
from safeground.domain.reports import Operation, Report, ReportStatus
from safeground.service import accounts
from safeground.service import ledger as ledger_service
from safeground.service.history import history as record_history
from safeground.service.register import Register, Submission
from safeground.storage.reportlog import load_report
from safeground.storage.store import default_location

app = typer.Typer(
    help="Safeground: the mine action register, land-release ledger, risk and planning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
record_app = typer.Typer(help="Draft, show and list records.", no_args_is_help=True)
report_app = typer.Typer(
    help="The approval workflow: submit, withdraw, approve, reject, list.", no_args_is_help=True
)
app.add_typer(record_app, name="record")
app.add_typer(report_app, name="report")
app.add_typer(risk_app, name="risk")
app.add_typer(forms_app, name="forms")


@app.command()
def init(
    store: StoreOption = None,
    country: Annotated[str, typer.Option(help="ISO country code used in record IDs")] = "XX",
    tolerance: Annotated[
        float, typer.Option(help="Metres processed land may leave its hazard or overlap other land")
    ] = 1.0,
) -> None:
    """Create an empty register (a GeoPackage file by default, or PostGIS with a URL)."""
    location = store or default_location()
    who = acting_user(None)

    def audit_creation(conn: Connection) -> None:
        detail = {"country": country, "tolerance_m": tolerance}
        accounts.audit(conn, who, "register.create", None, detail)

    run(
        lambda: Register.create(
            location, country=country, tolerance_m=tolerance, after_create=audit_creation
        )
    )
    typer.echo(f"created register at {location} (country {country}, tolerance {tolerance:g} m)")


def _read_data(data: str) -> dict[str, Any]:
    text = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("give a JSON object of field values")
    return value


IncludePersonalOption = Annotated[
    bool, typer.Option(help="Include victims' personal data (names, phones, addresses)")
]
DataOption = Annotated[str, typer.Option("--data", help="Field values as JSON, or @file.json")]
DateOption = Annotated[
    str, typer.Option("--date", help="Date of information, YYYY-MM-DD [default: today]")
]


def _audit_report(conn: Connection, who: str, action: str, rep: Report, **detail: Any) -> None:
    accounts.audit(
        conn, who, action, f"report {rep.report_id}", {"record_id": rep.record_id, **detail}
    )


def _file_or_draft(
    store: str | None, user: str | None, item: Submission, submit: bool, approve: bool
) -> None:
    """File at once, or draft (and submit): in one transaction with the audit entries, so a
    draft whose submission fails is not left behind."""
    register = migrated_register(store)
    who = acting_user(user)
    if approve:
        with register.store.begin() as conn:
            result = run(lambda: register.file(who, [item], reason=item.reason, conn=conn))
            accounts.audit(
                conn,
                who,
                "report.file",
                f"report {result.report_ids[0]}",
                {
                    "record_id": result.record_ids[0],
                    "record_type": item.record_type,
                    "reason": item.reason,
                },
            )
        typer.echo(f"{result.record_ids[0]}: approved report {result.report_ids[0]}")
        for notice in result.notices:
            typer.echo(f"note: {notice}")
        return
    with register.store.begin() as conn:
        rep = run(lambda: register.draft(who, [item], conn=conn))[0]
        _audit_report(conn, who, "report.draft", rep, record_type=rep.record_type)
        if submit:
            run(lambda: register.submit(who, rep.report_id, conn=conn))
            _audit_report(conn, who, "report.submit", rep)
    typer.echo(f"{rep.record_id}: draft report {rep.report_id}")
    if submit:
        typer.echo(f"report {rep.report_id} submitted for review")


@record_app.command("add")
def record_add(
    record_type: Annotated[str, typer.Argument(help=f"One of: {', '.join(RECORD_TYPES)}")],
    data: DataOption,
    on: DateOption = "",
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
    submit: Annotated[bool, typer.Option(help="Submit the draft for review at once")] = False,
    approve: Annotated[bool, typer.Option(help="Approve at once (IM officer's own entry)")] = False,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Draft a report that creates a record."""
    run(lambda: record_model(record_type))
    item = Submission(record_type, _read_data(data), _date(on), reason=reason)
    _file_or_draft(store, user, item, submit, approve)


@record_app.command("update")
def record_update(
    record_id: str,
    data: DataOption,
    on: DateOption = "",
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
    retire: Annotated[bool, typer.Option(help="Retire the record (e.g. a duplicate)")] = False,
    submit: Annotated[bool, typer.Option(help="Submit the draft for review at once")] = False,
    approve: Annotated[bool, typer.Option(help="Approve at once (IM officer's own entry)")] = False,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Draft a report that changes (or retires) a record. Give null to clear a field."""
    register = open_register(store)
    with register.store.begin() as conn:
        record_type = run(lambda: register.record_type_of(conn, record_id))
    item = Submission(
        record_type,
        _read_data(data),
        _date(on),
        record_id=record_id,
        operation=Operation.RETIRE if retire else Operation.UPDATE,
        reason=reason,
    )
    _file_or_draft(store, user, item, submit, approve)


@record_app.command("show")
def record_show(
    record_id: str,
    show_personal: Annotated[bool, typer.Option(help="Show personal data unmasked")] = False,
    store: StoreOption = None,
) -> None:
    """The current view of a record."""
    register = open_register(store)
    values = run(lambda: register.get(record_id, include_personal=True))
    personal = set(record_model(values["record_type"]).personal_fields)
    for key, value in values.items():
        if key == "fid":
            continue
        if key in personal and not show_personal:
            value = mask(value)
        if hasattr(value, "wkt"):
            value = _short_wkt(value)
        typer.echo(f"{key:>22}: {'' if value is None else value}")


@record_app.command("list")
def record_list(
    record_type: str,
    bbox: Annotated[str | None, typer.Option(help="minlon,minlat,maxlon,maxlat")] = None,
    limit: int = 50,
    store: StoreOption = None,
) -> None:
    """List current records of a type, optionally within a bounding box."""
    from sqlalchemy import select

    from safeground.storage.schema import record_tables

    run(lambda: record_model(record_type))
    register = open_register(store)
    table_ = record_tables[record_type]
    query = select(table_).order_by(table_.c.record_id).limit(limit)
    if bbox:
        box = tuple(float(v) for v in bbox.split(","))
        if len(box) != 4:
            raise typer.BadParameter("bbox needs four numbers")
        query = query.where(register.store.bbox_clause(table_, box))
    with register.store.read() as conn:
        rows = conn.execute(query).all()
    fields = [
        f
        for f in (
            "name",
            "classification",
            "status",
            "category",
            "accident_type",
            "activity_type",
            "outcome",
            "remaining_m2",
            "hazard_id",
        )
        if f in table_.c
    ][:4]
    typer.echo(
        table(
            ["record_id", *fields], [[r.record_id, *(getattr(r, f) for f in fields)] for r in rows]
        )
    )


def _short_wkt(geom: Any) -> str:
    text = str(geom.wkt)
    return text if len(text) < 80 else f"{geom.geom_type} ({len(text)} chars of WKT)"


def _date(text: str) -> date:
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from None


@report_app.command("submit")
def report_submit(
    report_ids: list[int], store: StoreOption = None, user: UserOption = None
) -> None:
    """Submit drafts for review, checked together (an accident with its victims); the
    register's checks run now, and if any fails none is submitted."""
    register = migrated_register(store)
    who = acting_user(user)
    with register.store.begin() as conn:
        submitted = run(lambda: register.submit(who, report_ids, conn=conn))
        for rep in submitted:
            _audit_report(conn, who, "report.submit", rep)
    for rep in submitted:
        typer.echo(f"report {rep.report_id} submitted")


@report_app.command("withdraw")
def report_withdraw(
    report_id: int,
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Withdraw one's draft: kept in the record's history, never submitted. The drafts naming the
    record it was to create (its victims, its attachments) are withdrawn with it. An
    administrator (--user naming an enabled admin account) may withdraw the draft of a disabled
    account, with a --reason."""
    register = migrated_register(store)
    who = acting_user(user)
    with register.store.begin() as conn:
        admin = accounts.is_administrator(conn, who)
        withdrawn = run(
            lambda: register.withdraw(who, report_id, reason, conn=conn, administrator=admin)
        )
        for rep in withdrawn:
            _audit_report(
                conn, who, "report.withdraw", rep, **accounts.withdrawal_detail(rep, who, withdrawn)
            )
    for rep in withdrawn:
        typer.echo(f"report {rep.report_id} withdrawn")


@report_app.command("approve")
def report_approve(
    report_ids: list[int],
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Approve submitted reports; the register changes only now."""
    register = migrated_register(store)
    who = acting_user(user)
    with register.store.begin() as conn:
        result = run(lambda: register.approve(who, report_ids, reason, conn=conn))
        for report_id in result.report_ids:
            approved = load_report(conn, report_id)
            assert approved is not None  # approved a moment ago in this transaction
            _audit_report(conn, who, "report.approve", approved, reason=reason)
    typer.echo(f"approved {', '.join(map(str, result.report_ids))}")
    for notice in result.notices:
        typer.echo(f"note: {notice}")


@report_app.command("reject")
def report_reject(
    report_id: int,
    reason: Annotated[str, typer.Option(help="Why (required)")],
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Reject a submitted report with a reason; the reports naming the record it was to create
    (its victims, its attachments) are rejected with it."""
    register = migrated_register(store)
    who = acting_user(user)
    with register.store.begin() as conn:
        rejected = run(lambda: register.reject(who, report_id, reason, conn=conn))
        for rep in rejected:
            _audit_report(conn, who, "report.reject", rep, reason=rep.review_reason)
    for rep in rejected:
        typer.echo(f"report {rep.report_id} rejected")


@report_app.command("list")
def report_list(
    status: Annotated[ReportStatus, typer.Option(help="Which reports")] = ReportStatus.SUBMITTED,
    store: StoreOption = None,
) -> None:
    """Reports waiting in the workflow."""
    register = open_register(store)
    rows = [
        [r.report_id, r.record_id, r.operation.value, str(r.date_of_information), r.author]
        for r in register.pending(status)
    ]
    typer.echo(table(["report", "record", "operation", "date", "author"], rows, align_right={0}))


@app.command()
def history(
    record_id: str,
    show_personal: Annotated[bool, typer.Option(help="Show personal data unmasked")] = False,
    store: StoreOption = None,
) -> None:
    """Who changed what, when and why: every report of a record, in date-of-information order."""
    register = open_register(store)
    found = run(lambda: record_history(register, record_id, include_personal=show_personal))
    typer.echo(f"{record_id} ({found.record_type})")
    for entry in found.entries:
        r = entry.report
        head = (
            f"report {r.report_id} [{r.status.value}] {r.operation.value}, "
            f"dated {r.date_of_information}, by {r.author}"
        )
        if r.reviewed_by:
            head += f"; {r.status.value} by {r.reviewed_by} at {r.reviewed_at:%Y-%m-%d %H:%M}"
        typer.echo(head)
        for label, text in (
            ("why", r.reason),
            ("why withdrawn" if r.status is ReportStatus.WITHDRAWN else "review", r.review_reason),
            ("source", r.source_key),
        ):
            if text:
                typer.echo(f"    {label}: {text}")
        for name, (old, new) in entry.diff.items():
            typer.echo(f"    {name}: {_brief(old)} -> {_brief(new)}")
        if entry.notice:
            typer.echo(f"    note: {entry.notice}")
    if found.changes:
        typer.echo("status and classification:")
        for c in found.changes:
            typer.echo(
                f"    {c['changed_on']} {c['attribute']}: {c['old_value'] or '-'} -> "
                f"{c['new_value']} ({c['reason']}; {c['cause']})"
            )


def _brief(value: Any) -> str:
    text = (
        json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    )
    return text if len(text) <= 60 else text[:57] + "..."


@app.command("ledger")
def ledger_command(
    by: Annotated[
        str, typer.Option(help="admin_area, operator, classification or period")
    ] = "admin_area",
    period: Annotated[str, typer.Option(help="year or month, with --by period")] = "year",
    verify: Annotated[bool, typer.Option(help="Recount every area from its polygons")] = False,
    store: StoreOption = None,
) -> None:
    """Land-release totals (m²), and optionally a recount from polygons that must agree."""
    register = open_register(store)
    with register.store.read() as conn:
        rows = run(lambda: ledger_service.totals(conn, by, period))
        check = ledger_service.recount(conn) if verify else None
    headers = [by, "areas", "estimated", "cancelled", "reduced", "cleared", "remaining"]
    body = [
        [
            r.label,
            r.hazards,
            r.estimated_m2,
            r.cancelled_m2,
            r.reduced_m2,
            r.cleared_m2,
            r.remaining_m2,
        ]
        for r in rows
    ]
    if rows:
        body.append(
            [
                "TOTAL",
                sum(r.hazards for r in rows),
                *(sum(getattr(r, c) for r in rows) for c in ledger_service.AREA_COLUMNS),
            ]
        )
    if by in ("operator", "period"):
        headers = [h for h in headers if h not in ("estimated", "remaining")]
        body = [row[:2] + row[3:6] for row in body]
    typer.echo(table(headers, body, align_right=set(range(1, len(headers)))))
    if check is not None:
        typer.echo(
            f"recount from polygons: {check.hazards:,} areas, {check.pieces:,} processed "
            f"polygons; released {check.recounted_released_m2:,.0f} m² "
            f"(stored {check.stored_released_m2:,.0f}), remaining "
            f"{check.recounted_remaining_m2:,.0f} m² (stored {check.stored_remaining_m2:,.0f})"
        )
        if not check.agrees:
            for hazard_id, stored, counted in check.disagreements[:20]:
                typer.echo(
                    f"  {hazard_id}: stored {stored:,.1f} m², recounted {counted:,.1f} m²", err=True
                )
            typer.secho(
                f"ledger disagrees for {len(check.disagreements)} areas", fg="red", err=True
            )
            raise typer.Exit(1)
        typer.echo("ledger agrees with the polygons to the square metre")


@app.command()
def attach(
    record_id: str,
    file: Path,
    caption: Annotated[str | None, typer.Option(help="What it shows")] = None,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Attach a photo or scanned form to a record; kept in the register with its SHA-256.

    Filed at once, or drafted for a record awaiting its first approval: submit and approve it
    with that record's report."""
    from safeground.service.attachments import attach as attach_file

    register = migrated_register(store)
    who = acting_user(user)
    content = file.read_bytes()
    with register.store.begin() as conn:
        done = run(lambda: attach_file(register, conn, who, record_id, file.name, content, caption))
        accounts.audit(
            conn,
            who,
            "attachment.add",
            done.record_id,
            {"target_id": record_id, "sha256": done.sha256, "report_id": done.report_id},
        )
    typer.echo(f"{done.record_id}: {file.name} ({done.size_bytes:,} bytes, sha256 {done.sha256})")
    if done.status is ReportStatus.DRAFT:
        typer.echo(
            f"draft report {done.report_id}: submit and approve it with {record_id}'s report"
        )


@app.command("import")
def import_command(
    files: Annotated[
        list[Path], typer.Argument(help="Files to import in one transaction, or a dump")
    ],
    mapping: Annotated[
        str | None, typer.Option(help="A shipped mapping name or a mapping YAML file")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the valid rows; write the others to a rejects file")
    ] = False,
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows go (CSV)")] = None,
    store: StoreOption = None,
    user: UserOption = None,
) -> None:
    """Import files through a mapping (all or nothing), or restore a full dump."""
    from safeground.io.dump import is_dump, restore
    from safeground.io.importer import ImportReport, import_many
    from safeground.io.mapping import load_mapping

    register = migrated_register(store)
    who = acting_user(user)
    if len(files) == 1 and is_dump(files[0]):
        with register.store.begin() as conn:
            count = run(lambda: restore(register, files[0], conn))
            accounts.audit(conn, who, "dump.restore", files[0].name, {"rows": count})
        typer.echo(f"restored {count:,} rows from {files[0]}")
        return
    if mapping is None:
        raise typer.BadParameter("give --mapping (or a dump file to restore)")
    chosen = run(lambda: load_mapping(mapping))

    def audit_import(conn: Connection, done: ImportReport) -> None:
        accounts.audit(
            conn,
            who,
            "import",
            f"mapping {done.mapping}",
            {
                "source": done.source,
                "files": done.files,
                "rows_read": done.rows_read,
                "imported": done.imported,
                "already_imported": done.already_imported,
                "rejected_rows": done.rejected_rows,
                "import_batch": done.import_batch,
            },
        )

    report = run(
        lambda: import_many(
            register,
            files,
            chosen,
            who,
            skip_invalid=skip_invalid,
            rejects=rejects,
            after_import=audit_import,
        )
    )
    typer.echo(report.summary())


@app.command()
def export(
    out: Path,
    format: Annotated[str, typer.Option("--format", help="gpkg, geojson or csv")] = "gpkg",
    layer: Annotated[list[str] | None, typer.Option(help="Only these layers")] = None,
    include_personal: IncludePersonalOption = False,
    store: StoreOption = None,
) -> None:
    """Export the current views as GeoPackage, GeoJSON or CSV."""
    from safeground.io.export import export_layers

    register = open_register(store)
    written = run(lambda: export_layers(register, out, format, layer, include_personal))
    for path in written:
        typer.echo(str(path))


@app.command()
def dump(
    out: Path,
    include_personal: IncludePersonalOption = False,
    store: StoreOption = None,
) -> None:
    """Write a full dump (every report and setting) that `safeground import` restores."""
    from safeground.io.dump import dump as write_dump

    register = open_register(store)
    count = run(lambda: write_dump(register, out, include_personal))
    typer.echo(f"dumped {count:,} rows to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo register and reject files")] = Path(
        "demo"
    ),
) -> None:
    """Build the demo register from real data plus a SYNTHETIC Karabakh scenario."""
    from safeground.demo.build import build, summary

    made = run(lambda: build(out, echo=typer.echo))
    typer.echo("")
    typer.echo(summary(made))
    typer.echo("")
    typer.echo(f"The register is {out / 'safeground.gpkg'}: open it in QGIS (Layer > Add Layer >")
    typer.echo("Add Vector Layer), or explore it with `safeground --help` and --store.")


app.command()(serve)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
