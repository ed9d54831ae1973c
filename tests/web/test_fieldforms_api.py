"""Field forms over HTTP: the list, XLSForm downloads, and uploads of submission exports that
become the uploader's drafts (on GeoPackage and PostGIS, with the accounts of tests/web)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pyxform.xls2xform import convert
from sqlalchemy import select

from safeground.io.fieldforms import FORMS
from safeground.storage.schema import audit_log, report

DATA = Path(__file__).resolve().parent.parent / "data" / "fieldforms"
EORE = DATA / "kobo-eore.csv"


def upload(session, name: str, path: Path, filename: str | None = None, **form):
    files = {"file": (filename or path.name, path.read_bytes(), "text/csv")}
    return session.post(f"/api/forms/{name}/submissions", files=files, data=form)


def drafts(scenario) -> list[dict]:
    with scenario.register.store.read() as conn:
        rows = conn.execute(select(report).where(report.c.status == "draft"))
        return [dict(r._mapping) for r in rows]


def test_anyone_lists_and_downloads_the_forms(client):
    listed = client.get("/forms")
    assert listed.status_code == 200
    assert [f["name"] for f in listed.json()] == list(FORMS)
    nts = listed.json()[0]
    assert nts["xlsform"] == "/forms/nts.xlsx" and nts["form_id"] == "safeground_nts"
    response = client.get("/forms/nts.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="safeground_nts.xlsx"' in response.headers["content-disposition"]
    xform = convert(xlsform=BytesIO(response.content), file_type=".xlsx").xform
    assert 'id="safeground_nts"' in xform
    assert client.get("/forms/nothing.xlsx").status_code == 404


def test_upload_needs_a_principal_who_may_draft(client):
    assert upload(client, "eore", EORE).status_code == 401


def test_bad_rows_are_422_with_row_submission_and_field_and_nothing_lands(login, scenario):
    before = drafts(scenario)
    response = upload(login("clerk"), "eore", EORE)
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem == {
        "field": "beneficiaries",
        "message": "male_18_plus: a count cannot be negative",
        "record": "kobo-eore.csv row 2",
        "row": 2,
        "submission": "5e8b1c77-0d3f-4a9e-b6c2-2f71a9d4e302",
    }
    assert drafts(scenario) == before


def test_upload_drafts_for_the_uploader_once_and_is_audited(login, scenario):
    clerk = login("clerk")
    response = upload(clerk, "eore", EORE, skip_invalid="true")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["drafted"], body["source"]) == (1, "kobo:safeground_eore")
    assert [p["row"] for p in body["rejected"]] == [2]
    (record,) = body["reports"]
    mine = [d for d in drafts(scenario) if d["record_id"] == record["record_id"]]
    assert [(d["author"], d["source_key"]) for d in mine] == [
        ("clerk", "5e8b1c77-0d3f-4a9e-b6c2-2f71a9d4e301")
    ]
    seen = clerk.get(f"/api/reports/{record['report_id']}")
    assert seen.status_code == 200 and seen.json()["status"] == "draft"
    again = upload(clerk, "eore", EORE, skip_invalid="true").json()
    assert (again["drafted"], again["already_imported"]) == (0, 1)
    with scenario.register.store.read() as conn:
        entries = conn.execute(select(audit_log).where(audit_log.c.action == "forms.import")).all()
    assert [e.username for e in entries] == ["clerk", "clerk"]
    assert entries[0].detail["report_ids"] == [record["report_id"]]
    assert [e.detail["rejected_submissions"] for e in entries] == [1, 1]


def test_oversize_wrong_kind_and_unknown_form_are_refused(login, scenario):
    clerk = login("clerk")
    big = b"a," * (scenario.settings.max_upload_bytes // 2 + 10)
    response = clerk.post(
        "/api/forms/eore/submissions", files={"file": ("big.csv", big, "text/csv")}
    )
    assert response.status_code == 413
    response = clerk.post(
        "/api/forms/eore/submissions", files={"file": ("photo.jpg", b"\xff\xd8", "image/jpeg")}
    )
    assert response.status_code == 415
    assert upload(clerk, "nothing", EORE).status_code == 404
    not_an_export = clerk.post(
        "/api/forms/eore/submissions",
        files={"file": ("labels.csv", b"Session date,Place\n2024-03-11,School\n", "text/csv")},
    )
    assert not_an_export.status_code == 422
    assert "neither a KoboToolbox export" in not_an_export.json()["problems"][0]["message"]
