"""Field forms: XLSForms derived from the record models, checked by pyxform (and ODK Validate),
and KoboToolbox / ODK Central submission exports imported as drafts (fixtures in
tests/data/fieldforms, described in tests/data/README.md)."""

from __future__ import annotations

import csv
import shutil
import zipfile
from datetime import date
from io import BytesIO
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from pyxform.errors import PyXFormError
from pyxform.xls2xform import convert
from shapely.geometry import box
from typer.testing import CliRunner

from safeground.cli.main import app
from safeground.domain import codes as c
from safeground.domain.records import BENEFICIARY_GROUPS
from safeground.domain.reports import Operation, ReportStatus, build_record
from safeground.io.fieldforms import FORMS, get_form
from safeground.io.fieldforms.submissions import (
    import_submissions,
    parse_odk_point,
    parse_odk_shape,
)
from safeground.io.fieldforms.xlsform import workbook, xlsform_bytes
from safeground.io.importer import ImportFailed
from safeground.service.register import Register, Submission
from tests import geometries as g
from tests.io.conftest import counts

DATA = Path(__file__).resolve().parent.parent / "data" / "fieldforms"
KOBO_NTS = DATA / "kobo-nts.csv"
FIRST_HAZARD = "AZ-HA-2021-00001"


def to_xform(content: bytes, validate: bool = False) -> str:
    warnings: list[str] = []
    result = convert(
        xlsform=BytesIO(content), warnings=warnings, file_type=".xlsx", validate=validate
    )
    assert warnings == []
    return result.xform


def sheet(content: bytes, name: str) -> list[dict]:
    rows = list(load_workbook(BytesIO(content))[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def built(report):
    """The record a drafted create report describes, as the register validates it."""
    return build_record(report.record_type, report.changes)


def zipped(folder: Path, out: Path) -> Path:
    """An ODK Central export ZIP from the CSV files of a fixture folder."""
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.glob("*.csv")):
            archive.write(path, path.name)
    return out


def kobo_xlsx(folder: Path, out: Path) -> Path:
    """A KoboToolbox XLSX export: the submissions sheet first, then one sheet per repeat."""
    main = next(p for p in folder.glob("safeground_*.csv"))
    with pd.ExcelWriter(out) as writer:
        for path in [main, *sorted(p for p in folder.glob("*.csv") if p != main)]:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.to_excel(writer, sheet_name=path.stem[:31], index=False)
    return out


@pytest.fixture
def reg(register: Register) -> Register:
    """A register holding one hazardous area, AZ-HA-2021-00001 (tests/geometries.HAZARD)."""
    register.file(
        "im",
        [Submission("hazardous_area", {"name": "F1", "geometry": g.HAZARD.wkt}, date(2021, 2, 1))],
    )
    return register


# -- the forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_converts_to_an_xform_with_pyxform(name):
    form = FORMS[name]
    xform = to_xform(xlsform_bytes(form))
    assert f'id="{form.form_id}"' in xform and f'version="{form.version}"' in xform
    settings = sheet(xlsform_bytes(form), "settings")[0]
    assert settings == {
        "form_title": form.title,
        "form_id": form.form_id,
        "version": form.version,
        "default_language": "English (en)",
    }


def test_questions_types_and_choices_come_from_the_models_and_codes():
    content = xlsform_bytes(get_form("nts"))
    survey = {r["name"]: r for r in sheet(content, "survey")}
    assert survey["geometry"]["type"] == "geoshape"
    assert survey["reference_point"]["type"] == "geopoint"
    assert survey["evidence"]["type"] == "select_multiple evidence"
    assert survey["reliability"]["type"] == "integer"
    assert survey["reliability"]["constraint"] == ". >= 1 and . <= 6"
    assert survey["estimated_area_m2"]["relevant"] == "${geometry} = ''"
    assert survey["classification"]["required"] == "yes"
    assert "-ORG-" in survey["organisation_id"]["constraint"]
    assert [f"beneficiaries_{g}" in survey for g in BENEFICIARY_GROUPS] == [True] * 8
    choices = sheet(content, "choices")
    evidence = [
        (r["name"], r["label::English (en)"]) for r in choices if r["list_name"] == "evidence"
    ]
    assert evidence == [(e.value, e.label) for e in c.Evidence]
    classes = [r["name"] for r in choices if r["list_name"] == "classification_choices"]
    assert classes == ["indication", "sha", "cha"]


def test_repeats_carry_a_count_the_import_checks():
    survey = sheet(xlsform_bytes(get_form("clearance_completion")), "survey")
    types = [(r["type"], r["name"]) for r in survey]
    start = types.index(("begin_repeat", "processed"))
    assert types[start + 1 : start + 3] == [
        ("select_one processed_land_type_choices", "processed_land_type"),
        ("geoshape", "processed_geometry"),
    ]
    count = next(r for r in survey if r["name"] == "processed_count")
    assert count["type"] == "calculate" and count["calculation"] == "count(${processed})"


def test_a_broken_form_does_not_convert():
    """The conversion check can fail: a constraint naming a question that does not exist."""
    book = workbook(get_form("eore"))
    book["survey"].append(["integer", "extra", "Extra", None, None, "${nowhere} > 1"])
    buffer = BytesIO()
    book.save(buffer)
    with pytest.raises(PyXFormError, match="nowhere"):
        to_xform(buffer.getvalue())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="ODK Validate needs Java")
def test_every_form_passes_odk_validate():
    for form in FORMS.values():
        to_xform(xlsform_bytes(form), validate=True)


# -- ODK geometry strings -----------------------------------------------------------------------


def test_odk_points_are_latitude_first():
    point = parse_odk_point("39.925 46.925 402.5 4.5")
    assert (point.x, point.y) == (46.925, 39.925) and not point.has_z
    with pytest.raises(ValueError, match="ODK writes latitude first"):
        parse_odk_point("139.9 46.9 0 5")


def test_odk_shapes_become_polygons_and_are_never_closed_for_you():
    shape = parse_odk_shape(
        "39.9 46.9 0 3;39.9 46.91 0 3;39.91 46.91 0 3;39.91 46.9 0 3;39.9 46.9 0 3"
    )
    assert shape.equals(g.HAZARD)
    with pytest.raises(ValueError, match="not closed"):
        parse_odk_shape("39.9 46.9 0 3;39.9 46.91 0 3;39.91 46.91 0 3;39.91 46.9 0 3")
    with pytest.raises(ValueError, match="at least 4 points"):
        parse_odk_shape("39.9 46.9 0 3;39.9 46.91 0 3")


# -- imports ------------------------------------------------------------------------------------


def test_bad_submissions_are_named_and_nothing_is_drafted(reg):
    before = counts(reg)
    with pytest.raises(ImportFailed) as failed:
        import_submissions(reg, get_form("nts"), KOBO_NTS, "nts.team")
    text = str(failed.value)
    assert (
        "kobo-nts.csv row 3 (submission 3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a03): geometry: invalid geometry: Self-intersection"
        in text
    )
    assert (
        "row 4 (submission 3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a04): classification: 'probable' is not one of the form's choices"
        in text
    )
    assert (
        "row 4 (submission 3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a04): reliability: Input should be less than or equal to 6"
        in text
    )
    assert len(failed.value.problems) == 3
    assert counts(reg) == before


def test_kobo_nts_export_becomes_drafts_once(reg, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = import_submissions(
        reg, get_form("nts"), KOBO_NTS, "nts.team", skip_invalid=True, rejects=rejects
    )
    assert (result.submissions, result.drafted, result.rejected_submissions) == (6, 3, 2)
    assert result.rejected_upstream == 1  # row 6: not approved in KoboToolbox
    drafts = {r.source_key: r for r in reg.pending(ReportStatus.DRAFT)}
    assert set(drafts) == {f"3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a0{i}" for i in (1, 2, 5)}
    new = drafts["3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a01"]
    assert new.author == "nts.team" and new.source == "kobo:safeground_nts"
    assert new.operation is Operation.CREATE and new.record_id == "AZ-HA-2024-00001"
    record = built(new)
    assert record is not None
    assert record.geometry.equals(box(46.92, 39.92, 46.93, 39.93))  # lon/lat from "lat lon"
    assert (record.reference_point.x, record.reference_point.y) == (46.925, 39.925)
    assert record.evidence == [c.Evidence.FRONT_LINE, c.Evidence.VERBAL_REPORT]
    assert record.beneficiaries == {"female_5_12": 10, "female_18_plus": 40, "male_18_plus": 35}
    assert record.expected_returnees == 120 and record.reliability == 3
    assert "submission 3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a01" in str(new.reason)
    indication = built(drafts["3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a02"])
    assert indication is not None and indication.estimated_area_m2 == 2500
    update = drafts["3b1f0c2e-8d7a-4c55-9a61-0f2d3e4b5a05"]
    assert update.operation is Operation.UPDATE and update.record_id == FIRST_HAZARD
    assert update.changes["classification"] == "cha" and "name" not in update.changes
    with rejects.open() as f:
        rejected = list(csv.DictReader(f))
    assert [(r["_row"], r["_field"]) for r in rejected] == [
        ("3", "geometry"),
        ("4", "classification; reliability"),
    ]
    reg.withdraw("nts.team", new.report_id)  # a withdrawn draft stays imported
    again = import_submissions(reg, get_form("nts"), KOBO_NTS, "nts.team", skip_invalid=True)
    assert (again.drafted, again.already_imported) == (0, 3)
    assert len(reg.pending(ReportStatus.DRAFT)) == 2


def test_an_update_must_name_a_record_of_the_forms_type(register, tmp_path):
    """Without AZ-HA-2021-00001 in the register, row 5 (an update of it) is refused."""
    with pytest.raises(ImportFailed, match=r"row 5 .*record_id: no record AZ-HA-2021-00001"):
        import_submissions(register, get_form("nts"), KOBO_NTS, "nts.team")


def test_odk_central_zip_completion_is_drafted_and_approves_to_a_closed_area(reg, tmp_path):
    export = zipped(DATA / "odk-clearance-completion", tmp_path / "export.zip")
    form = get_form("clearance_completion")
    with pytest.raises(ImportFailed) as failed:
        import_submissions(reg, form, export, "team3")
    messages = [str(p) for p in failed.value.row_problems]
    assert messages == [
        "export.zip row 2 (submission 9c0e5d7a-2b41-4e8f-a3d6-71c2b5f08e12): processed: the submission has 2 entries but the export has 1",
        "export.zip row 2 (submission 9c0e5d7a-2b41-4e8f-a3d6-71c2b5f08e12): processed[1]/processed_land_type: 'destroyed' is not one of the form's choices (cancelled, reduced, cleared)",
        "export.zip row 3 (submission 9c0e5d7a-2b41-4e8f-a3d6-71c2b5f08e13): processed[1]/processed_geometry: the shape is not closed (its last point is not its first): a geotrace, not a geoshape? Not closed automatically",
    ]
    result = import_submissions(reg, form, export, "team3", skip_invalid=True)
    assert result.drafted == 1 and result.source == "odk:safeground_clearance_completion"
    draft = reg.pending(ReportStatus.DRAFT)[0]
    activity = built(draft)
    assert activity is not None and activity.outcome is c.Outcome.COMPLETION
    assert [(p.land_type, p.method, p.technical_asset) for p in activity.processed] == [
        (c.LandType.CLEARED, c.ReleaseMethod.MANUAL, True),
        (c.LandType.REDUCED, c.ReleaseMethod.NON_TECHNICAL, False),
    ]
    assert activity.processed[0].geometry.equals(g.WEST_HALF)
    reg.submit("team3", draft.report_id)
    reg.approve("im", [draft.report_id], reason="QA visit passed")
    hazard = reg.get(FIRST_HAZARD)
    assert hazard["status"] == "closed" and hazard["remaining_m2"] < 1


def test_odk_repeat_missing_from_a_lone_csv_is_an_error_not_a_loss(reg, tmp_path):
    lone = DATA / "odk-clearance-completion" / "safeground_clearance_completion.csv"
    with pytest.raises(ImportFailed, match="import the ZIP of all CSV files"):
        import_submissions(reg, get_form("clearance_completion"), lone, "team3")


def test_odk_accident_with_victims_linked_to_it(reg, tmp_path):
    export = zipped(DATA / "odk-accident", tmp_path / "accident.zip")
    result = import_submissions(reg, get_form("accident"), export, "hotline", skip_invalid=True)
    assert [str(p).split(": ", 1)[1] for p in result.rejected] == [
        "accident_type: 'landmine' is not one of the form's choices (demining, mine, ied, uxo, cluster, stored_ammunition, other)",
        "geometry: '46.9512' is not an ODK point 'latitude longitude altitude accuracy'",
    ]
    drafts = {r.record_type: r for r in reg.pending(ReportStatus.DRAFT)}
    accident = built(drafts["accident"])
    assert accident is not None
    assert (accident.geometry.x, accident.geometry.y) == (46.9427, 39.9312)  # split columns
    victims = [r for r in reg.pending(ReportStatus.DRAFT) if r.record_type == "victim"]
    assert [v.changes["accident_id"] for v in victims] == [drafts["accident"].record_id] * 2
    assert [v.source_key for v in victims] == [
        "d41a7c3e-55b0-4f2a-9e17-3a8c6b2d9f21/victims[1]",
        "d41a7c3e-55b0-4f2a-9e17-3a8c6b2d9f21/victims[2]",
    ]
    assert "name" not in victims[0].changes  # personal data: kept apart, given only on request
    personal = reg.reports(victims[0].record_id, include_personal=True)[0]
    assert personal.changes["name"] == "Ruslan Mammadov"


def test_kobo_xlsx_items_linked_by_parent_index(reg, tmp_path):
    export = kobo_xlsx(DATA / "kobo-items-found", tmp_path / "items.xlsx")
    result = import_submissions(reg, get_form("items_found"), export, "eod1", skip_invalid=True)
    assert [str(p).split(": ", 1)[1] for p in result.rejected] == ["items: at least 1 entry needed"]
    items = [built(r) for r in reg.pending(ReportStatus.DRAFT)]
    assert [(i.category, i.model, i.quantity, i.hazard_id) for i in items if i] == [
        (c.ItemCategory.AP_MINE, "PMN-2", 2, FIRST_HAZARD),
        (c.ItemCategory.UXO, "OF-462 122 mm", 1, FIRST_HAZARD),
    ]


def test_kobo_dash_separated_groups_and_a_negative_count(reg):
    with pytest.raises(
        ImportFailed, match=r"row 2 .*beneficiaries: male_18_plus: a count cannot be negative"
    ):
        import_submissions(reg, get_form("eore"), DATA / "kobo-eore.csv", "eore1")
    import_submissions(reg, get_form("eore"), DATA / "kobo-eore.csv", "eore1", skip_invalid=True)
    session = built(reg.pending(ReportStatus.DRAFT)[0])
    assert session is not None and session.audience == [c.Audience.CHILDREN, c.Audience.TEACHERS]
    assert sum(session.beneficiaries.values()) == 23 + 19 + 25 + 17 + 2


def test_an_export_with_label_headers_or_of_another_form_is_refused(reg, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("Date of information;Name of the area\n2024-04-02;Field\n")
    with pytest.raises(ImportFailed, match="neither a KoboToolbox export"):
        import_submissions(reg, get_form("nts"), labels, "u")
    with pytest.raises(
        ImportFailed, match="not an export of field form accident: no column for accident_type"
    ):
        import_submissions(reg, get_form("accident"), KOBO_NTS, "u")


def test_answers_in_unknown_columns_are_reported(reg, tmp_path):
    frame = pd.read_csv(DATA / "kobo-eore.csv", dtype=str, keep_default_na=False)
    frame["teacher_name"] = ["Leyla", ""]
    path = tmp_path / "eore.csv"
    frame.to_csv(path, index=False)
    result = import_submissions(reg, get_form("eore"), path, "eore1", skip_invalid=True)
    assert "not questions of form eore (not imported): teacher_name" in result.summary()


# -- the command line ---------------------------------------------------------------------------

runner = CliRunner()


def test_cli_lists_writes_and_imports(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEGROUND_STORE", str(tmp_path / "cli.gpkg"))
    monkeypatch.setenv("SAFEGROUND_USER", "nts.team")
    assert runner.invoke(app, ["init", "--country", "AZ"]).exit_code == 0
    listed = runner.invoke(app, ["forms", "list"])
    assert listed.exit_code == 0 and "safeground_clearance_completion" in listed.output
    out = tmp_path / "nts.xlsx"
    written = runner.invoke(app, ["forms", "xlsform", "nts", "--out", str(out)])
    assert written.exit_code == 0 and out.is_file()
    to_xform(out.read_bytes())
    folder = tmp_path / "forms"
    assert runner.invoke(app, ["forms", "xlsform", "--all", "--out", str(folder)]).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{f.form_id}.xlsx" for f in FORMS.values()
    )

    export = tmp_path / "eore.csv"
    shutil.copy(DATA / "kobo-eore.csv", export)
    failed = runner.invoke(app, ["forms", "import", "eore", str(export)])
    assert failed.exit_code == 1 and "a count cannot be negative" in failed.output
    done = runner.invoke(app, ["forms", "import", "eore", str(export), "--skip-invalid"])
    assert done.exit_code == 0, done.output
    assert "1 drafted as 1 draft report (AZ-EORE-2024-00001)" in done.output
    assert (tmp_path / "eore.rejects.csv").is_file()
    listed = runner.invoke(app, ["report", "list", "--status", "draft"])
    assert "AZ-EORE-2024-00001" in listed.output and "nts.team" in listed.output
    unknown = runner.invoke(app, ["forms", "import", "nope", str(export)])
    assert unknown.exit_code == 1 and "no field form 'nope'" in unknown.output
