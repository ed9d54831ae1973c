"""A dump restores into an empty register exactly: same reports, same views, same dump."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from safeground.io.dump import RestoreRefused, dump, is_dump, restore
from safeground.service.rebuild import rebuild_all
from safeground.service.register import Register, Submission
from safeground.storage.schema import (
    hazard_change,
    processed_land,
    record_tables,
    victim_personal,
)
from tests.io.conftest import counts, populate

# Set to the time of the rebuild: the one column of a view not derived from the reports.
NOT_DERIVED = {"updated_at"}


def views(register: Register) -> dict[str, list[tuple[Any, ...]]]:
    """Every current-view table, rows sorted, without the rebuild time."""
    tables = {**record_tables, "processed_land": processed_land, "hazard_change": hazard_change}
    tables["victim_personal"] = victim_personal
    found = {}
    with register.store.begin() as conn:
        for name, table in tables.items():
            columns = [c for c in table.c if c.name not in NOT_DERIVED]
            rows = [
                tuple(v.wkb if hasattr(v, "wkb") else v for v in row)
                for row in conn.execute(select(*columns))
            ]
            found[name] = sorted(rows, key=repr)
    return found


def fresh(tmp_path: Path, name: str) -> Register:
    return Register.create(str(tmp_path / name), country="XX")


@pytest.fixture
def full(reg):
    populate(reg)
    return reg


def test_dump_restore_dump_is_identical(full, tmp_path):
    first = tmp_path / "a.jsonl"
    rows = dump(full, first)
    copy = fresh(tmp_path, "copy.gpkg")
    assert restore(copy, first) == rows
    second = tmp_path / "b.jsonl"
    assert dump(copy, second) == rows
    assert first.read_bytes() == second.read_bytes()
    restored, original = views(copy), views(full)
    # Names were left out of the dump (no include_personal): the rows are there, empty.
    assert restored.pop("victim_personal") == [("AZ-VIC-2021-00001", None, None, None)]
    original.pop("victim_personal")
    assert restored == original
    assert counts(copy) == counts(full)
    # The restored register goes on where the original stopped.
    nxt = copy.file("im", [_organisation()]).record_ids[0]
    assert nxt == full.file("im", [_organisation()]).record_ids[0]


def _organisation() -> Submission:
    return Submission("organisation", {"name": "Next"}, date(2021, 1, 5))


def test_the_dump_is_json_lines_with_a_header(full, tmp_path):
    out = tmp_path / "d.jsonl"
    dump(full, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "safeground-dump" and header["version"] == 1
    assert header["personal"] is False
    tables = [json.loads(line)["table"] for line in lines[1:]]
    assert tables == sorted(tables, key=["setting", "id_sequence", "report", "blob"].index)
    reports = [json.loads(line)["row"] for line in lines[1:] if '"table":"report"' in line]
    statuses = {r["status"] for r in reports}
    assert statuses == {"approved", "rejected", "draft"}
    assert any(r["import_batch"] for r in reports) and any(r["review_reason"] for r in reports)
    assert {"setting", "id_sequence", "blob"} <= set(tables)


def test_personal_data_only_on_request(full, tmp_path):
    plain, personal = tmp_path / "plain.jsonl", tmp_path / "personal.jsonl"
    dump(full, plain)
    dump(full, personal, include_personal=True)
    assert "Ali Aliyev" not in plain.read_text(encoding="utf-8")
    assert "Ali Aliyev" in personal.read_text(encoding="utf-8")
    assert json.loads(personal.read_text().splitlines()[0])["personal"] is True
    with_names = fresh(tmp_path, "p.gpkg")
    restore(with_names, personal)
    assert views(with_names) == views(full)
    without = fresh(tmp_path, "np.gpkg")
    restore(without, plain)
    assert views(without)["victim_personal"] == [
        (row[0], None, None, None) for row in views(full)["victim_personal"]
    ]


def test_gzip_round_trip_is_byte_stable(full, tmp_path):
    out = tmp_path / "d.jsonl.gz"
    dump(full, out)
    assert out.read_bytes()[:2] == b"\x1f\x8b" and is_dump(out)
    copy = fresh(tmp_path, "gz.gpkg")
    restore(copy, out)
    again = tmp_path / "again.jsonl.gz"
    dump(copy, again)
    assert out.read_bytes() == again.read_bytes()


def test_restore_refuses_a_non_empty_register(full, tmp_path):
    out = tmp_path / "d.jsonl"
    dump(full, out)
    before = counts(full)
    with pytest.raises(RestoreRefused, match="restore needs an empty register"):
        restore(full, out)
    assert counts(full) == before


def test_is_dump_and_bad_files(full, tmp_path):
    out = tmp_path / "d.jsonl"
    dump(full, out)
    assert is_dump(out)
    assert not is_dump(Path(full.store.path))  # type: ignore[attr-defined]
    assert not is_dump(tmp_path / "missing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text('{"format": "something-else"}\n')
    assert not is_dump(other)
    with pytest.raises(RestoreRefused, match="not a Safeground dump"):
        restore(fresh(tmp_path, "o.gpkg"), other)
    future = tmp_path / "future.jsonl"
    future.write_text('{"format": "safeground-dump", "version": 99}\n')
    with pytest.raises(RestoreRefused, match="version 99 dump"):
        restore(fresh(tmp_path, "f.gpkg"), future)


def test_a_broken_line_restores_nothing(full, tmp_path):
    out = tmp_path / "d.jsonl"
    dump(full, out)
    out.write_text(out.read_text() + '{"table": "nope", "row": {}}\n')
    target = fresh(tmp_path, "t.gpkg")
    with pytest.raises(Exception, match="not a dump row"):
        restore(target, out)
    assert counts(target) == {"report": 0, "id_sequence": 0}


def test_rebuild_all_repairs_stale_views(full):
    expected = views(full)
    table = record_tables["hazardous_area"]
    with full.store.begin() as conn:
        conn.execute(table.update().values(remaining_m2=0, status="closed"))
        conn.execute(record_tables["accident"].delete())
        conn.execute(
            record_tables["organisation"]
            .insert()
            .values(
                record_id="AZ-ORG-1999-00001",
                name="orphan",
                version=1,
                updated_at=datetime.now(UTC),
                last_report_id=1,
            )
        )
        rebuild_all(full, conn)
    assert views(full) == expected


def test_restore_on_both_backends(full, register, tmp_path):
    """Also on PostGIS (skipped without SAFEGROUND_TEST_POSTGIS_URL): sequences move on."""
    out = tmp_path / "d.jsonl"
    dump(full, out, include_personal=True)
    restore(register, out)
    again = tmp_path / "again.jsonl"
    dump(register, again, include_personal=True)
    assert out.read_bytes() == again.read_bytes()
    assert views(register) == views(full)
    assert (
        register.file("im", [_organisation()]).record_ids
        == full.file("im", [_organisation()]).record_ids
    )
