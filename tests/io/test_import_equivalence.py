"""The columnar importer writes exactly what the row-by-row importer wrote.

``tests/data/import-snapshot.json`` was written by the row-by-row importer (commit "Snapshot of
the row-by-row import") from the two real Colombian cuts: a digest of every row of every table
it touched, with the columns that hold the time of the import left out (they are checked to be
present), the import's summary and its rejects file. The test imports the same cuts again and
compares table by table, on both backends, so a difference names the table that changed; with
the files prepared in this process and in a second one (``parallel``).

Regenerate only on purpose (``SAFEGROUND_WRITE_IMPORT_SNAPSHOT=1``, GeoPackage run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select, text

import safeground
from safeground.io.importer import import_many
from safeground.io.mapping import load_mapping
from safeground.service.register import Register
from safeground.storage.schema import (
    hazard_change,
    id_sequence,
    processed_land,
    record_tables,
    report,
    report_personal,
)
from tests.io.conftest import DATA

SNAPSHOT = DATA / "import-snapshot.json"
SHIPPED = Path(safeground.__file__).parent / "demo" / "data" / "colombia-mine-events"
# Two cuts (duplicates, a flipped sign) and two whole years (hazards, every event type).
CUTS = [
    DATA / "colombia-mine-events" / "2000.json",
    DATA / "colombia-mine-events" / "2004-rows-1370-1380.json",
    SHIPPED / "1990.json",
    SHIPPED / "1999.json",
]
# When the import ran: present in every row, different in every run.
VOLATILE = {"created_at", "submitted_at", "reviewed_at", "updated_at", "import_batch"}
LAYERS = ("accident", "eo_item", "hazardous_area")


def _cell(value: Any) -> Any:
    if isinstance(value, BaseGeometry):
        return value.wkb_hex
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _without_count(review_reason: str) -> str:
    """An import's review reason as it reads since imports file each file as it comes, when
    the number of rows is not known yet: the row-by-row importer's said how many."""
    return re.sub(r"^import of \d+ rows from ", "import from ", review_reason)


def _digest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    text_rows = [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    return {"rows": len(rows), "sha256": hashlib.sha256("\n".join(text_rows).encode()).hexdigest()}


def register_contents(register: Register) -> dict[str, Any]:
    """A digest per table of everything an import writes (R-trees only on GeoPackage)."""
    tables = [report, report_personal, id_sequence, processed_land, hazard_change]
    tables += [record_tables[name] for name in LAYERS]
    found: dict[str, Any] = {}
    with register.store.begin() as conn:
        for table in tables:
            key = list(table.primary_key.columns)
            rows = []
            for row in conn.execute(select(table).order_by(*key)).mappings():
                values = dict(row)
                for name in VOLATILE & set(values):
                    assert values[name] is not None, f"{table.name}.{name} is empty"
                    values[name] = "<volatile>"
                if values.get("review_reason"):
                    values["review_reason"] = _without_count(values["review_reason"])
                rows.append({k: _cell(v) for k, v in values.items()})
            found[table.name] = _digest(rows)
        if register.store.dialect == "sqlite":
            for name in LAYERS:
                rtree = conn.execute(
                    text(f"SELECT * FROM rtree_{name}_geometry ORDER BY id")
                ).mappings()
                found[f"rtree_{name}_geometry"] = _digest([dict(r) for r in rtree])
    return found


def import_cuts(register: Register, folder: Path, parallel: bool) -> dict[str, Any]:
    mapping = load_mapping("colombia-mine-events")
    rejects = folder / "rejects.csv"
    options: dict[str, Any] = {"skip_invalid": True, "rejects": rejects, "parallel": parallel}
    first = import_many(register, CUTS, mapping, "im", **options)
    again = import_many(register, CUTS, mapping, "im", **options)
    summary = first.summary().replace(str(folder), "<tmp>")
    return {
        "summary": [line for line in summary.splitlines() if "batch" not in line],
        "record_ids": first.record_ids,
        "again": again.summary().replace(str(folder), "<tmp>").splitlines(),
        "rejects": rejects.read_text(encoding="utf-8").splitlines(),
        "tables": register_contents(register),
    }


@pytest.mark.parametrize("parallel", [False, True], ids=["one process", "two processes"])
def test_import_writes_what_the_row_by_row_import_wrote(register, tmp_path, parallel):
    found = import_cuts(register, tmp_path, parallel)
    if os.environ.get("SAFEGROUND_WRITE_IMPORT_SNAPSHOT") and register.store.dialect == "sqlite":
        SNAPSHOT.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", "utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert found["summary"] == expected["summary"]
    assert found["record_ids"] == expected["record_ids"]
    assert found["again"] == expected["again"]
    assert found["rejects"] == expected["rejects"]
    for name, digest in expected["tables"].items():
        if name.startswith("rtree_") and register.store.dialect != "sqlite":
            continue
        assert found["tables"][name] == digest, f"table {name} differs"
