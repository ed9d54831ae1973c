"""``safeground forms``: XLSForm definitions for KoboToolbox / ODK Collect, and imports of their
submission exports into draft reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Connection

from safeground.cli.common import StoreOption, acting_user, migrated_register, run
from safeground.cli.output import table
from safeground.io.fieldforms import FORMS, get_form
from safeground.io.fieldforms.submissions import FieldImport, import_submissions
from safeground.io.fieldforms.xlsform import write_xlsform
from safeground.service import accounts

forms_app = typer.Typer(
    help="Field forms for KoboToolbox / ODK Collect: XLSForms, and imports of their exports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@forms_app.command("list")
def forms_list() -> None:
    """The field forms, their form IDs and versions."""
    rows = [[f.name, f.form_id, f.version, f.title] for f in FORMS.values()]
    typer.echo(table(["name", "form_id", "version", "title"], rows))


@forms_app.command("xlsform")
def forms_xlsform(
    name: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(FORMS)}")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="The .xlsx file (with --all: a folder)")
    ] = Path("."),
    all_forms: Annotated[
        bool, typer.Option("--all", help="Every form, into the --out folder")
    ] = False,
) -> None:
    """Write a form's XLSForm, to upload to KoboToolbox or ODK Central."""
    if all_forms == (name is not None):
        raise typer.BadParameter("give a form NAME or --all")
    if all_forms:
        out.mkdir(parents=True, exist_ok=True)
        paths = run(lambda: [write_xlsform(f, out / f"{f.form_id}.xlsx") for f in FORMS.values()])
    else:
        assert name is not None
        paths = run(lambda: [write_xlsform(get_form(name), out)])
    for path in paths:
        typer.echo(str(path))


@forms_app.command("import")
def forms_import(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(FORMS)}")],
    file: Annotated[
        Path,
        typer.Argument(help="KoboToolbox export (.xlsx, .csv) or ODK Central export (.csv, .zip)"),
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option(help="Draft the valid submissions; write the others to a rejects file"),
    ] = False,
    rejects: Annotated[
        Path | None, typer.Option(help="Where rejected rows go [default: FILE.rejects.csv]")
    ] = None,
    store: StoreOption = None,
    user: Annotated[str | None, typer.Option("--user", help="Whose drafts they become")] = None,
) -> None:
    """Import a submission export as draft reports (all or nothing, unless --skip-invalid)."""
    register = migrated_register(store)
    form = run(lambda: get_form(name))
    who = acting_user(user)
    target = rejects or file.with_name(f"{file.stem}.rejects.csv")

    def audit(conn: Connection, done: FieldImport) -> None:
        accounts.audit(
            conn,
            who,
            "forms.import",
            f"form {form.name}",
            {
                "file": file.name,
                "source": done.source,
                "report_ids": done.report_ids,
                "rejected_submissions": done.rejected_submissions,
            },
        )

    result = run(
        lambda: import_submissions(
            register, form, file, who, skip_invalid=skip_invalid, rejects=target, after_draft=audit
        )
    )
    typer.echo(result.summary())
