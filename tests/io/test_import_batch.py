"""Imports are atomic, re-runnable and honest about duplicates and rejected rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

import safeground.service.register as register_module
from safeground.io.importer import ImportFailed, import_file, import_many
from safeground.storage.schema import report
from tests.io.conftest import ACCIDENTS, counts, mapping

CSV_HEAD = "lon,lat,kind,year,place\n"
GOOD = "46.91,39.95,1,2021,Aghdam\n"


def write(path: Path, *lines: str) -> Path:
    path.write_text(CSV_HEAD + "".join(lines))
    return path


def test_one_bad_row_writes_nothing(reg, tmp_path):
    path = write(tmp_path / "a.csv", GOOD * 5, "46.9,39.9,9,2021,bad\n")
    before = counts(reg)
    with pytest.raises(ImportFailed):
        import_file(reg, path, mapping(ACCIDENTS), "im")
    assert counts(reg) == before == {"report": 0, "id_sequence": 0}


def test_a_crash_in_the_middle_of_the_write_leaves_the_register_unchanged(
    reg, tmp_path, monkeypatch
):
    write(tmp_path / "first.csv", GOOD)
    import_file(reg, tmp_path / "first.csv", mapping(ACCIDENTS), "im")
    before = counts(reg)
    real = register_module.insert_new_records

    def half_then_crash(conn, records, *rest):
        real(conn, records[: len(records) // 2], *rest)
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(register_module, "insert_new_records", half_then_crash)
    path = write(tmp_path / "a.csv", *[f"46.9{i},39.95,1,2021,P{i}\n" for i in range(10)])
    with pytest.raises(RuntimeError, match="disk unplugged"):
        import_file(reg, path, mapping(ACCIDENTS), "im")
    assert counts(reg) == before
    monkeypatch.undo()
    assert import_file(reg, path, mapping(ACCIDENTS), "im").imported == 10


def test_many_files_are_one_batch_and_fail_together(reg, tmp_path):
    one = write(tmp_path / "one.csv", GOOD, GOOD)
    two = write(tmp_path / "two.csv", GOOD, "46.9,39.9,9,2021,bad\n")
    with pytest.raises(ImportFailed, match=r"two\.csv row 2: accident_type: unknown code '9'"):
        import_many(reg, [one, two], mapping(ACCIDENTS), "im")
    assert counts(reg)["report"] == 0
    three = write(tmp_path / "three.csv", GOOD)
    result = import_many(reg, [one, three], mapping(ACCIDENTS), "im")
    assert result.imported == 3 and result.files == ["one.csv", "three.csv"]
    with reg.store.begin() as conn:
        batches = set(conn.scalars(select(report.c.import_batch)))
    assert batches == {result.import_batch}


def test_skip_invalid_writes_rejects_next_to_the_input(reg, tmp_path):
    path = write(
        tmp_path / "a.csv", GOOD, "46.9,39.9,9,2021,bad code\n", GOOD, "-46.9,39.9,1,2021,west\n"
    )
    result = import_file(reg, path, mapping(ACCIDENTS), "im", skip_invalid=True)
    assert (result.imported, result.rejected_rows) == (2, 2)
    assert result.rejects_files == [tmp_path / "a.rejects.csv"]
    with (tmp_path / "a.rejects.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["_row"] for r in rows] == ["2", "4"]
    assert rows[0]["place"] == "bad code" and rows[0]["_field"] == "accident_type"
    assert "unknown code '9'" in rows[0]["_reason"]
    assert rows[1]["lon"] == "-46.9" and "flipped sign" in rows[1]["_reason"]
    assert set(rows[0]) == {
        "lon",
        "lat",
        "kind",
        "year",
        "place",
        "_file",
        "_row",
        "_field",
        "_reason",
    }
    assert "2 rows rejected" in result.summary() and "a.rejects.csv" in result.summary()


def test_skip_invalid_to_a_given_rejects_file(reg, tmp_path):
    one = write(tmp_path / "one.csv", "46.9,39.9,9,2021,x\n")
    two = write(tmp_path / "two.csv", GOOD, "46.9,39.9,,2021,y\n")
    out = tmp_path / "out" / "rejects.csv"
    out.parent.mkdir()
    result = import_many(reg, [one, two], mapping(ACCIDENTS), "im", skip_invalid=True, rejects=out)
    assert result.imported == 1 and result.rejects_files == [out]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["_file"], r["_row"], r["_field"]) for r in rows] == [
        ("one.csv", "1", "accident_type"),
        ("two.csv", "2", "accident_type"),
    ]


def test_unwritable_rejects_file_stops_the_import(reg, tmp_path):
    path = write(tmp_path / "a.csv", GOOD, "46.9,39.9,9,2021,x\n")
    with pytest.raises(ImportFailed, match="cannot write the rejects file"):
        import_file(
            reg,
            path,
            mapping(ACCIDENTS),
            "im",
            skip_invalid=True,
            rejects=tmp_path / "no" / "r.csv",
        )
    assert counts(reg)["report"] == 0


def test_re_running_an_import_adds_nothing(reg, tmp_path):
    path = write(tmp_path / "a.csv", GOOD, "46.92,39.96,2,2022,Fuzuli\n")
    first = import_file(reg, path, mapping(ACCIDENTS), "im")
    assert first.imported == 2
    before = counts(reg)
    again = import_file(reg, path, mapping(ACCIDENTS), "im")
    assert (again.imported, again.already_imported, again.record_ids) == (0, 2, [])
    assert counts(reg) == before
    assert "2 already imported" in again.summary()
    # A grown file: only the new row lands.
    write(path, GOOD, "46.92,39.96,2,2022,Fuzuli\n", "46.93,39.97,1,2023,Jabrayil\n")
    grown = import_file(reg, path, mapping(ACCIDENTS), "im")
    assert (grown.imported, grown.already_imported) == (1, 2)


def test_key_columns_identify_rows_wherever_they_are(reg, tmp_path):
    keyed = mapping(ACCIDENTS, key=["place"])
    path = write(tmp_path / "a.csv", GOOD, "46.92,39.96,2,2022,Fuzuli\n")
    import_file(reg, path, keyed, "im")
    write(path, "46.92,39.96,2,2022,Fuzuli\n", GOOD)  # reordered
    assert import_file(reg, path, keyed, "im").already_imported == 2
    repeated = write(tmp_path / "b.csv", "46.9,39.9,1,2021,Khojaly\n", "46.9,39.9,2,2021,Khojaly\n")
    with pytest.raises(
        ImportFailed, match=r"b\.csv row 2: key: source key 'Khojaly' repeats b\.csv row 1"
    ):
        import_file(reg, repeated, keyed, "im")


def test_exact_duplicates_are_imported_and_reported(reg, tmp_path):
    twin = "46.95,39.95,1,2021,Twin\n"
    path = write(tmp_path / "a.csv", twin, GOOD, twin, twin, GOOD, "46.97,39.9,2,2021,alone\n")
    result = import_file(reg, path, mapping(ACCIDENTS), "im")
    assert result.imported == 6 and len(set(result.record_ids)) == 6
    assert (result.duplicate_groups, result.duplicate_rows) == (2, 5)
    assert result.duplicate_examples == ["a.csv rows 1, 3, 4", "a.csv rows 2, 5"]
    summary = result.summary()
    assert "5 rows in 2 groups of identical rows (3 beyond the first" in summary
    assert "a.csv rows 1, 3, 4" in summary
    keys = {reg.get(i)["source_key"] for i in result.record_ids}
    assert keys == {f"a.csv#{n}" for n in range(1, 7)}


def test_the_registers_refusal_names_rows_and_can_be_skipped(reg, tmp_path):
    records = {"accident": {**ACCIDENTS["records"]["accident"], "hazard_id": {"column": "hz"}}}
    linked = mapping(ACCIDENTS, records=records)
    path = tmp_path / "a.csv"
    path.write_text(
        "lon,lat,kind,year,place,hz\n46.9,39.9,1,2021,A,\n46.9,39.9,1,2021,B,AZ-HA-2021-00099\n"
    )
    with pytest.raises(ImportFailed) as caught:
        import_file(reg, path, linked, "im")
    assert (
        "a.csv row 2: hazard_id: refused by the register: no hazardous area AZ-HA-2021-00099"
        in str(caught.value)
    )
    assert counts(reg)["report"] == 0
    result = import_file(reg, path, linked, "im", skip_invalid=True, rejects=tmp_path / "r.csv")
    assert (result.imported, result.rejected_rows) == (1, 1)
    assert "refused by the register" in (tmp_path / "r.csv").read_text()


def test_summary_reads_well(reg, tmp_path):
    path = write(tmp_path / "a.csv", GOOD, "46.92,39.96,2,2022,Fuzuli\n")
    summary = import_file(reg, path, mapping(ACCIDENTS), "im").summary()
    assert summary.splitlines()[0] == "Import of a.csv with mapping test (source test-accidents)"
    assert "2 rows read" in summary and "2 imported (accident 2)" in summary
    assert "no identical rows" in summary and "no rows rejected" in summary


def test_import_on_both_backends(register, tmp_path):
    """Also on PostGIS (skipped without SAFEGROUND_TEST_POSTGIS_URL)."""
    twin = "46.95,39.95,1,2021,Twin\n"
    path = write(tmp_path / "a.csv", twin, twin, "46.9,39.9,9,2021,bad\n")
    with pytest.raises(ImportFailed):
        import_file(register, path, mapping(ACCIDENTS), "im")
    assert counts(register)["report"] == 0
    result = import_file(register, path, mapping(ACCIDENTS), "im", skip_invalid=True)
    assert (result.imported, result.duplicate_groups, result.rejected_rows) == (2, 1, 1)
    assert register.get(result.record_ids[1])["source_key"] == "a.csv#2"
    again = import_file(register, path, mapping(ACCIDENTS), "im", skip_invalid=True)
    assert (again.imported, again.already_imported) == (0, 2)


def test_one_file_imported_twice_at_once_lands_once(register, tmp_path):
    """On PostgreSQL, the second import waits for the first's transaction (one import of a
    source at a time) and then finds its rows imported: before, it read the source's reports
    before the first committed, found none, and imported every row a second time."""
    import threading

    if register.store.dialect != "postgresql":
        pytest.skip("a GeoPackage has one writer at a time")
    path = write(tmp_path / "a.csv", GOOD, "46.92,39.95,1,2021,Aghdam\n")
    first_filed, outcome = threading.Event(), {}

    def second() -> None:
        first_filed.wait()
        outcome["second"] = import_file(register, path, mapping(ACCIDENTS), "im2")

    def hold(conn, report) -> None:  # inside the first import's transaction, once it is filed
        first_filed.set()
        racer.join(timeout=1.0)
        assert racer.is_alive()  # waiting for this transaction

    racer = threading.Thread(target=second)
    racer.start()
    first = import_many(register, [path], mapping(ACCIDENTS), "im", after_import=hold)
    racer.join(timeout=10)
    assert (first.imported, outcome["second"].imported) == (2, 0)
    assert outcome["second"].already_imported == 2
    with register.store.read() as conn:
        assert len(conn.execute(select(report.c.report_id)).all()) == 2
