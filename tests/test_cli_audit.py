"""Every command-line write lands in the audit log with its change, and a failed one leaves no
entry; on GeoPackage and PostGIS."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from sqlalchemy import select
from typer.testing import CliRunner

from safeground.cli.main import app
from safeground.service.register import Register
from safeground.storage.schema import audit_log, report
from tests import geometries as g
from tests.risk import registers

runner = CliRunner()
DATA = Path(__file__).resolve().parent / "data"
HAZARD = "AZ-HA-2021-00001"


@pytest.fixture(autouse=True)
def acting_user(monkeypatch):
    monkeypatch.setenv("SAFEGROUND_USER", "officer")


def run(store: str, *args: object) -> tuple[int, str]:
    result = runner.invoke(app, [*(str(a) for a in args), "--store", store])
    return result.exit_code, result.output


def entries(store: str) -> list[dict[str, Any]]:
    """The audit log, oldest first."""
    register = Register.open(store)
    try:
        with register.store.read() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.audit_id))
            return [dict(r._mapping) for r in rows]
    finally:
        register.store.engine.dispose()


def actions(store: str) -> list[tuple[str, str | None, str | None]]:
    return [(e["action"], e["username"], e["target"]) for e in entries(store)]


def drafts(store: str) -> int:
    register = Register.open(store)
    try:
        with register.store.read() as conn:
            return len(conn.execute(select(report.c.report_id)).all())
    finally:
        register.store.engine.dispose()


@pytest.fixture
def store(store_location: str) -> str:
    assert run(store_location, "init", "--country", "AZ")[0] == 0
    return store_location


def test_init_is_audited_and_a_second_init_adds_nothing(store):
    (created,) = entries(store)
    assert (created["action"], created["username"]) == ("register.create", "officer")
    assert created["detail"] == {"country": "AZ", "tolerance_m": 1.0}
    code, out = run(store, "init", "--country", "AZ")
    assert code == 1 and "exists already" in out
    assert len(entries(store)) == 1


def _hazard(name: str = "F1") -> str:
    return json.dumps({"name": name, "geometry": g.HAZARD.wkt})


def test_drafting_submitting_approving_and_rejecting_are_audited(store):
    _hazard_added(store, "--submit")
    new = entries(store)[1:]
    assert [(e["action"], e["target"]) for e in new] == [
        ("report.draft", "report 1"),
        ("report.submit", "report 1"),
    ]
    assert new[0]["detail"] == {"record_id": HAZARD, "record_type": "hazardous_area"}

    # A draft whose submission fails goes with its audit entry: the command is one transaction.
    unknown_hazard = json.dumps({"hazard_id": "AZ-HA-2099-00001", "activity_type": "clearance"})
    code, out = run(
        store,
        "record",
        "add",
        "activity",
        "--data",
        unknown_hazard,
        "--date",
        "2021-03-01",
        "--submit",
    )
    assert code == 1 and "AZ-HA-2099-00001" in out
    assert len(entries(store)) == 3 and drafts(store) == 1

    assert run(store, "report", "approve", "1", "--reason", "seen on site")[0] == 0
    approved = entries(store)[-1]
    assert (approved["action"], approved["username"], approved["target"]) == (
        "report.approve",
        "officer",
        "report 1",
    )
    assert approved["detail"] == {"record_id": HAZARD, "reason": "seen on site"}
    code, out = run(store, "report", "approve", "1")  # approved already
    assert code == 1 and "only a submitted report" in out
    assert len(entries(store)) == 4

    # Report numbers from here on are read from the output: PostgreSQL's sequence does not give
    # back the number of the draft rolled back above.
    data = json.dumps({"name": "F1 north"})
    code, out = run(
        store, "record", "update", HAZARD, "--data", data, "--approve", "--user", "reviewer"
    )
    assert code == 0, out
    filed = entries(store)[-1]
    assert (filed["action"], filed["username"], filed["target"]) == (
        "report.file",
        "reviewer",
        f"report {_report_number(out)}",
    )
    assert filed["detail"]["record_id"] == HAZARD
    code, out = run(store, "record", "update", HAZARD, "--data", '{"colour": "red"}', "--approve")
    assert code == 1 and "colour" in out
    assert len(entries(store)) == 5

    code, out = run(store, "record", "add", "hazardous_area", "--data", _hazard("F2"))
    draft = _report_number(out)
    assert run(store, "report", "reject", draft, "--reason", "a draft")[0] == 1
    assert run(store, "report", "submit", draft)[0] == 0
    assert run(store, "report", "submit", draft)[0] == 1  # submitted already
    assert run(store, "report", "reject", draft, "--reason", " ")[0] == 1
    assert run(store, "report", "reject", draft, "--reason", "a duplicate of F1")[0] == 0
    assert actions(store)[5:] == [
        ("report.draft", "officer", f"report {draft}"),
        ("report.submit", "officer", f"report {draft}"),
        ("report.reject", "officer", f"report {draft}"),
    ]
    assert entries(store)[-1]["detail"]["reason"] == "a duplicate of F1"

    # Several drafts at once: both or neither (one is not a draft any more).
    several = [
        _report_number(run(store, "record", "add", "hazardous_area", "--data", _hazard(name))[1])
        for name in ("F3", "F4")
    ]
    assert run(store, "report", "submit", *several, draft)[0] == 1
    assert len(entries(store)) == 10
    code, out = run(store, "report", "submit", *several)
    assert code == 0 and all(f"report {d} submitted" in out for d in several)
    assert actions(store)[10:] == [("report.submit", "officer", f"report {d}") for d in several]


def test_withdrawing_a_draft_is_audited_and_shown_in_its_history(store):
    code, out = run(
        store, "record", "add", "hazardous_area", "--data", _hazard(), "--date", "2021-02-01"
    )
    draft = _report_number(out)
    code, out = run(store, "report", "withdraw", draft, "--user", "clerk")
    assert code == 1 and f"report {draft} is officer's draft" in out
    assert len(entries(store)) == 2
    code, out = run(store, "report", "withdraw", draft, "--reason", "wrong form")
    assert code == 0 and f"report {draft} withdrawn" in out
    withdrawn = entries(store)[-1]
    assert (withdrawn["action"], withdrawn["username"], withdrawn["target"]) == (
        "report.withdraw",
        "officer",
        f"report {draft}",
    )
    assert withdrawn["detail"] == {"record_id": HAZARD, "reason": "wrong form"}
    code, out = run(store, "report", "withdraw", draft)
    assert code == 1 and "is withdrawn: only a draft can be withdrawn" in out
    assert len(entries(store)) == 3
    assert HAZARD not in run(store, "report", "list", "--status", "draft")[1]
    code, out = run(store, "history", HAZARD)
    assert f"report {draft} [withdrawn] create" in out and "; withdrawn by officer at" in out
    assert "why withdrawn: wrong form" in out


def test_an_administrator_withdraws_a_disabled_accounts_draft_with_a_reason(store):
    for name, role in (("clerk", "reviewer"), ("boss", "admin")):
        assert run(store, "user", "add", name, "--role", role)[0] == 0
    code, out = run(
        store,
        "record",
        "add",
        "hazardous_area",
        "--data",
        _hazard(),
        "--date",
        "2021-02-01",
        "--user",
        "clerk",
    )
    draft = _report_number(out)
    refused = (
        f"report {draft} is clerk's draft; only clerk, or an administrator once clerk's "
        "account is disabled, can withdraw it"
    )
    code, out = run(store, "report", "withdraw", draft, "--reason", "left")  # officer: no admin
    assert code == 1 and refused in out and "account is active" not in out
    code, out = run(store, "report", "withdraw", draft, "--reason", "left", "--user", "boss")
    assert code == 1 and f"{refused} (clerk's account is active)" in out
    count = len(entries(store))

    assert run(store, "user", "disable", "clerk")[0] == 0
    code, out = run(store, "report", "withdraw", draft, "--user", "boss")
    assert code == 1 and "say why you withdraw clerk's draft on their behalf" in out
    code, out = run(store, "report", "withdraw", draft, "--reason", "left")
    assert code == 1 and refused in out
    assert len(entries(store)) == count + 1  # the account's disabling only
    code, out = run(store, "report", "withdraw", draft, "--reason", "left", "--user", "boss")
    assert code == 0 and f"report {draft} withdrawn" in out
    withdrawn = entries(store)[-1]
    assert (withdrawn["action"], withdrawn["username"], withdrawn["target"]) == (
        "report.withdraw",
        "boss",
        f"report {draft}",
    )
    assert withdrawn["detail"] == {"record_id": HAZARD, "reason": "left", "on_behalf_of": "clerk"}
    code, out = run(store, "history", HAZARD)
    assert f"report {draft} [withdrawn] create" in out and ", by clerk; withdrawn by boss" in out
    assert "why withdrawn: left" in out


def _hazard_added(store: str, how: str) -> None:
    """Field F1 added on the command line, dated 1 February 2021, with ``--submit`` or
    ``--approve``."""
    code, out = run(
        store, "record", "add", "hazardous_area", "--data", _hazard(), "--date", "2021-02-01", how
    )
    assert code == 0, out


def _report_number(out: str) -> int:
    found = re.search(r" report (\d+)", out)
    assert found is not None, out
    return int(found.group(1))


def test_attaching_a_file_is_audited(store, tmp_path):
    _hazard_added(store, "--approve")
    photo = tmp_path / "site.jpg"
    photo.write_bytes(b"\xff\xd8 a photo")
    code, out = run(store, "attach", HAZARD, photo, "--caption", "north edge")
    assert code == 0, out
    attached = entries(store)[-1]
    assert (attached["action"], attached["target"]) == ("attachment.add", out.split(":")[0])
    assert attached["detail"]["target_id"] == HAZARD and attached["detail"]["report_id"] == 2
    code, out = run(store, "attach", "AZ-HA-2099-00001", photo)
    assert code == 1 and "no record AZ-HA-2099-00001" in out
    assert len(entries(store)) == 3


ACCIDENTS = """
source: test-accidents
format: {lon: lon, lat: lat}
region: {name: Karabakh, bbox: [45.0, 38.5, 48.0, 41.0]}
date_of_information: {column: year, format: year}
record_type: accident
records:
  accident:
    accident_type: {column: kind, codes: {"1": mine, "2": uxo}}
    accident_date: {column: year, format: year}
"""


def test_an_import_is_audited_with_its_counts_and_a_refused_one_is_not(store, tmp_path):
    mapping = tmp_path / "accidents.yaml"
    mapping.write_text(ACCIDENTS)
    rows = tmp_path / "accidents.csv"
    rows.write_text("lon,lat,year,kind\n46.9,39.9,2019,1\n46.8,39.8,2020,2\n46.7,39.7,2020,7\n")
    code, out = run(store, "import", rows, "--mapping", mapping)
    assert code == 1 and "kind" in out
    assert len(entries(store)) == 1
    code, out = run(
        store,
        "import",
        rows,
        "--mapping",
        mapping,
        "--skip-invalid",
        "--rejects",
        tmp_path / "rejects.csv",
    )
    assert code == 0, out
    imported = entries(store)[-1]
    assert (imported["action"], imported["target"]) == ("import", f"mapping {mapping}")
    detail = imported["detail"]
    assert detail["import_batch"].startswith("test-accidents/")
    assert {k: v for k, v in detail.items() if k != "import_batch"} == {
        "source": "test-accidents",
        "files": ["accidents.csv"],
        "rows_read": 3,
        "imported": 2,
        "already_imported": 0,
        "rejected_rows": 1,
    }


def test_a_restore_is_audited_and_a_refused_one_is_not(store, tmp_path):
    _hazard_added(store, "--approve")
    dumped = tmp_path / "register.jsonl"
    assert run(store, "dump", dumped)[0] == 0
    target = str(tmp_path / "restored.gpkg")
    assert run(target, "init", "--country", "AZ")[0] == 0
    code, out = run(target, "import", dumped)
    assert code == 0, out
    restored = entries(target)[-1]
    assert (restored["action"], restored["target"]) == ("dump.restore", "register.jsonl")
    assert restored["detail"]["rows"] > 0
    code, out = run(target, "import", dumped)
    assert code == 1 and "restore needs an empty register" in out
    assert [a for a, _, _ in actions(target)] == ["register.create", "dump.restore"]


def test_a_field_form_import_is_audited_with_its_rejects(store, tmp_path):
    export = tmp_path / "eore.csv"
    export.write_bytes((DATA / "fieldforms" / "kobo-eore.csv").read_bytes())
    code, out = run(store, "forms", "import", "eore", export, "--user", "eore.team")
    assert code == 1 and "a count cannot be negative" in out
    assert len(entries(store)) == 1
    code, out = run(
        store, "forms", "import", "eore", export, "--skip-invalid", "--user", "eore.team"
    )
    assert code == 0, out
    imported = entries(store)[-1]
    assert (imported["action"], imported["username"], imported["target"]) == (
        "forms.import",
        "eore.team",
        "form eore",
    )
    assert imported["detail"] == {
        "file": "eore.csv",
        "source": "kobo:safeground_eore",
        "report_ids": [1],
        "rejected_submissions": 1,
    }


def _not_a_risk_map(path: Path) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(46.90, 40.0, 0.02, 0.02),
    ) as dst:
        dst.write(np.zeros((1, 4, 4), dtype="float32"))
    return path


def test_risk_covariates_and_attachments_are_audited(store, tmp_path):
    register = Register.open(store)
    ids = registers.build(register)
    register.store.engine.dispose()
    line = tmp_path / "front.geojson"
    line.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[46.93, 39.95], [46.93, 39.995]],
                        },
                    }
                ],
            }
        )
    )
    code, out = run(store, "risk", "covariate", "add", "front_line", line)
    assert code == 0, out
    added = entries(store)[-1]
    assert (added["action"], added["target"]) == ("covariate.add", "front_line")
    assert added["detail"]["kind"] == "vector" and added["detail"]["filename"] == "front.geojson"
    notes = tmp_path / "notes.geojson"
    notes.write_text("not a layer")
    assert run(store, "risk", "covariate", "add", "notes", notes)[0] == 2

    tif = tmp_path / "risk.tif"
    code, out = run(
        store,
        "risk",
        "map",
        "--region",
        ids["district"],
        "--cell",
        100,
        "--out",
        tif,
        "--background",
        2000,
        "--no-grid-layer",
        "--attach",
    )
    assert code == 0, out
    assert run(store, "risk", "attach", "--map", tif)[0] == 0
    assert run(store, "risk", "attach", "--map", _not_a_risk_map(tmp_path / "plain.tif"))[0] == 2
    assert actions(store)[1:] == [
        ("covariate.add", "officer", "front_line"),
        ("risk.attach", "officer", "risk.tif"),
        ("risk.attach", "officer", "risk.tif"),
    ]
    attached = entries(store)[-1]["detail"]
    assert attached["scored"] == 3 and len(attached["sha256"]) == 64
