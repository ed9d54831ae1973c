"""Field forms on the web: the XLSForms to download, and uploads of KoboToolbox / ODK Central
submission exports that become the uploader's drafts.

The forms hold no register data (only questions and code lists), so anyone may download them.
An upload needs a principal who may draft; it is size-limited like every upload, checked as a
whole before anything is written, and its drafts land with their audit entry in one transaction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection

from safeground.domain.access import Principal
from safeground.io.fieldforms import FORMS, get_form
from safeground.io.fieldforms.submissions import FieldImport, import_submissions
from safeground.io.fieldforms.xlsform import xlsform_bytes
from safeground.io.importer import ImportFailed
from safeground.service import accounts
from safeground.web.deps import client_address, get_register, get_settings, require

router = APIRouter(tags=["field forms"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".zip")
Drafter = Annotated[Principal, Depends(require(lambda p: p.can_draft, "import field data"))]


@router.get("/forms")
def list_forms() -> list[dict[str, str]]:
    """The field forms, with their XLSForm downloads."""
    return [
        {
            "name": f.name,
            "form_id": f.form_id,
            "version": f.version,
            "title": f.title,
            "record_type": f.record_type,
            "xlsform": f"/forms/{f.name}.xlsx",
            "submissions": f"/api/forms/{f.name}/submissions",
        }
        for f in FORMS.values()
    ]


@router.get("/forms/{name}.xlsx", response_class=Response)
def download_xlsform(name: str) -> Response:
    """The XLSForm to upload to KoboToolbox or ODK Central."""
    form = get_form(name)
    return Response(
        xlsform_bytes(form),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{form.form_id}.xlsx"'},
    )


@router.post("/api/forms/{name}/submissions", status_code=201, response_model=None)
def upload_submissions(
    request: Request,
    name: str,
    principal: Drafter,
    file: Annotated[
        UploadFile,
        File(description="KoboToolbox export (.xlsx, .csv) or ODK Central export (.csv, .zip)"),
    ],
    skip_invalid: Annotated[bool, Form(description="Draft the valid submissions only")] = False,
) -> dict[str, Any] | JSONResponse:
    """Draft the export's new submissions as the uploader's reports; all or nothing unless
    ``skip_invalid``. Importing the same export again adds nothing."""
    form = get_form(name)
    filename = Path(file.filename or "upload").name
    suffix = Path(filename).suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise HTTPException(
            415, f"{filename}: upload a .xlsx or .csv (KoboToolbox) or .csv or .zip (ODK Central)"
        )
    limit = get_settings(request).max_upload_bytes
    content = file.file.read(limit + 1)
    if len(content) > limit:
        raise HTTPException(413, f"the file is larger than {limit:,} bytes")
    username = principal.username
    assert username is not None  # the Drafter dependency ensures it

    def audit(conn: Connection, result: FieldImport) -> None:
        accounts.audit(
            conn,
            username,
            "forms.import",
            f"form {form.name}",
            {
                "file": filename,
                "source": result.source,
                "report_ids": result.report_ids,
                "rejected_submissions": result.rejected_submissions,
            },
            client_address(request),
        )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(content)
        try:
            result = import_submissions(
                get_register(request),
                form,
                path,
                username,
                skip_invalid=skip_invalid,
                name=filename,
                after_draft=audit,
            )
        except ImportFailed as failed:
            return JSONResponse(
                {"detail": str(failed), "problems": [_problem(p) for p in failed.row_problems]},
                status_code=422,
            )
    return {
        "form": result.form,
        "source": result.source,
        "submissions": result.submissions,
        "drafted": result.drafted,
        "already_imported": result.already_imported,
        "rejected_upstream": result.rejected_upstream,
        "reports": [
            {"report_id": r, "record_id": i}
            for r, i in zip(result.report_ids, result.record_ids, strict=True)
        ],
        "rejected": [_problem(p) for p in result.rejected],
        "notices": result.notices,
    }


def _problem(p: Any) -> dict[str, Any]:
    """One problem in the API's shape, with the row and the submission it concerns."""
    return {
        "field": p.field,
        "message": p.reason,
        "record": p.file if p.row is None else f"{p.file} row {p.row}",
        "row": p.row,
        "submission": getattr(p, "submission", None),
    }
