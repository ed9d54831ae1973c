"""The command line, end to end on a temporary register."""

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from safeground.cli.main import app
from tests import geometries as g

runner = CliRunner()


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = str(tmp_path / "cli.gpkg")
    monkeypatch.setenv("SAFEGROUND_STORE", path)
    monkeypatch.setenv("SAFEGROUND_USER", "im.officer")
    result = runner.invoke(app, ["init", "--country", "AZ"])
    assert result.exit_code == 0, result.output
    return path


def run(*args):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_draft_submit_approve_history_and_ledger(store):
    code, out = run(
        "record",
        "add",
        "hazardous_area",
        "--data",
        json.dumps({"name": "F1", "geometry": g.HAZARD.wkt}),
        "--date",
        "2021-02-01",
        "--submit",
    )
    assert code == 0 and "AZ-HA-2021-00001: draft report 1" in out
    assert "AZ-HA-2021-00001" in run("report", "list")[1]
    code, out = run("report", "approve", "1", "--reason", "checked on site")
    assert code == 0
    data = json.dumps(
        {
            "hazard_id": "AZ-HA-2021-00001",
            "activity_type": "clearance",
            "processed": [{"land_type": "cleared", "geometry": g.WEST_HALF.wkt}],
        }
    )
    assert (
        run("record", "add", "activity", "--data", data, "--date", "2021-05-01", "--approve")[0]
        == 0
    )
    code, out = run("history", "AZ-HA-2021-00001")
    assert "approved by im.officer" in out and "review: checked on site" in out
    assert "open -> worked_on (first Clearance progress report" in out
    code, out = run("ledger", "--verify")
    assert code == 0 and "agrees with the polygons" in out


def test_errors_name_the_field_and_exit_non_zero(store):
    code, out = run(
        "record",
        "add",
        "hazardous_area",
        "--data",
        json.dumps({"geometry": g.BOWTIE.wkt}),
        "--date",
        "2021-02-01",
    )
    assert code == 1 and "geometry" in out and "Self-intersection" in out
    code, out = run("record", "add", "no_such_type", "--data", "{}")
    assert code == 1 and "unknown record type" in out


def test_personal_data_masked_unless_asked(store):
    run(
        "record",
        "add",
        "accident",
        "--data",
        json.dumps({"accident_type": "mine"}),
        "--date",
        "2021-01-01",
        "--approve",
    )
    run(
        "record",
        "add",
        "victim",
        "--data",
        json.dumps(
            {"accident_id": "AZ-ACC-2021-00001", "outcome": "killed", "name": "Leyla Mammadova"}
        ),
        "--date",
        "2021-01-02",
        "--approve",
    )
    assert "L**** M********" in run("record", "show", "AZ-VIC-2021-00001")[1]
    assert "Leyla Mammadova" not in run("history", "AZ-VIC-2021-00001")[1]
    assert "Leyla Mammadova" in run("record", "show", "AZ-VIC-2021-00001", "--show-personal")[1]


def test_missing_register_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEGROUND_STORE", str(tmp_path / "none.gpkg"))
    code, out = run("ledger")
    assert code == 1 and "safeground init" in out


def test_commands_that_only_read_work_while_a_writer_holds_the_lock(store, tmp_path):
    """ledger, record list, export and dump read in a reader's transaction: on a GeoPackage
    they run beside a write in progress instead of waiting for its lock (and timing out)."""
    assert run("record", "add", "organisation", "--data", '{"name": "HALO"}', "--approve")[0] == 0
    writer = sqlite3.connect(store, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert run("ledger")[0] == 0
        code, out = run("record", "list", "organisation")
        assert code == 0 and "HALO" in out
        assert run("export", str(tmp_path / "out.geojson"), "--format", "geojson")[0] == 0
        assert run("dump", str(tmp_path / "dump.jsonl"))[0] == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_photo_of_a_drafted_record_is_drafted_and_approved_with_it(store, tmp_path):
    hazard = json.dumps({"name": "F1", "geometry": g.HAZARD.wkt})
    assert run("record", "add", "hazardous_area", "--data", hazard, "--date", "2021-02-01")[0] == 0
    photo = tmp_path / "site.jpg"
    photo.write_bytes(b"\xff\xd8 a photo")
    code, out = run("attach", "AZ-HA-2021-00001", str(photo))
    assert code == 0, out
    assert "draft report 2: submit and approve it with AZ-HA-2021-00001's report" in out
    attachment = out.split(":")[0]
    code, out = run("report", "submit", "2")
    assert code == 1 and "AZ-HA-2021-00001 is in draft report 1: submit it with this one" in out
    assert run("report", "submit", "1", "2")[0] == 0
    code, out = run("report", "approve", "2")
    assert code == 1 and "is in report 1, not yet approved: approve it first" in out
    assert run("report", "approve", "1", "2")[0] == 0
    assert "target_id: AZ-HA-2021-00001" in run("record", "show", attachment)[1]
