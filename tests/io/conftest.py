"""Fixtures for import, export and dump tests: a fresh GeoPackage register and small inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from sqlalchemy import func, select

from safeground.domain.reports import Operation
from safeground.io.importer import import_file
from safeground.io.mapping import Mapping, load_mapping, parse_mapping
from safeground.service.register import Register, Submission
from safeground.storage.schema import blob, id_sequence, record_tables, report
from tests import geometries as g

DATA = Path(__file__).resolve().parent.parent / "data"

# A hazardous-area mapping for synthetic inputs near Aghdam (see tests/geometries.py).
HAZARDS: dict[str, Any] = {
    "source": "test-hazards",
    "region": {"name": "Karabakh", "bbox": [45.0, 38.5, 48.0, 41.0]},
    "date_of_information": {"column": "date", "format": "date"},
    "record_type": "hazardous_area",
    "records": {
        "hazardous_area": {
            "name": {"column": "name"},
            "classification": {"column": "class", "codes": {"S": "sha", "C": "cha"}},
            "geometry": {"geometry": "input"},
        }
    },
}

# An accident mapping for point inputs (CSV lon/lat, JSON arrays).
ACCIDENTS: dict[str, Any] = {
    "source": "test-accidents",
    "format": {"lon": "lon", "lat": "lat"},
    "region": {"name": "Karabakh", "bbox": [45.0, 38.5, 48.0, 41.0]},
    "date_of_information": {"column": "year", "format": "year"},
    "record_type": "accident",
    "records": {
        "accident": {
            "accident_type": {"column": "kind", "codes": {"1": "mine", "2": "uxo"}},
            "accident_date": {"column": "year", "format": "year"},
            "place_name": {"column": "place"},
        }
    },
}


def mapping(base: dict[str, Any], **changes: Any) -> Mapping:
    """A validated mapping: ``base`` with top-level keys replaced."""
    return parse_mapping({**base, **changes}, name="test")


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Register]:
    register = Register.create(str(tmp_path / "r.gpkg"), country="AZ")
    yield register
    register.store.engine.dispose()


def write_geojson(path: Path, rows: list[dict[str, Any]], crs: str | None = "EPSG:4326") -> Path:
    """GeoJSON from rows whose ``geometry`` is a shapely geometry."""
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    frame.to_file(path, driver="GeoJSON")
    return path


def counts(register: Register) -> dict[str, int]:
    """Rows in the report log, the ID sequences and every non-empty record table."""
    with register.store.begin() as conn:
        found = {
            "report": conn.execute(select(func.count()).select_from(report)).scalar_one(),
            "id_sequence": conn.execute(select(func.count()).select_from(id_sequence)).scalar_one(),
        }
        for name, table in record_tables.items():
            n = conn.execute(select(func.count()).select_from(table)).scalar_one()
            if n:
                found[name] = n
    return found


def populate(register: Register) -> dict[str, str]:
    """A small register with every kind of history: imports, workflow steps, personal data."""

    def add(record_type: str, on: date, **fields: Any) -> str:
        return register.file("im", [Submission(record_type, fields, on)]).record_ids[0]

    ids: dict[str, str] = {}
    ids["org"] = add("organisation", date(2021, 1, 5), name="ANAMA")
    ids["hazard"] = add(
        "hazardous_area",
        date(2021, 2, 1),
        name="F1",
        geometry=g.HAZARD.wkt,
        evidence=["front_line"],
    )
    draft = register.draft(
        "op",
        [
            Submission(
                "activity",
                {
                    "hazard_id": ids["hazard"],
                    "activity_type": "clearance",
                    "processed": [{"land_type": "cleared", "geometry": g.WEST_HALF.wkt}],
                },
                date(2021, 5, 1),
            )
        ],
    )[0]
    register.submit("op", draft.report_id)
    register.approve("im", [draft.report_id], reason="checked on site")
    ids["activity"] = draft.record_id
    rejected = register.draft(
        "op", [Submission("organisation", {"name": "Nobody"}, date(2021, 6, 1))]
    )
    register.submit("op", rejected[0].report_id)
    register.reject("im", rejected[0].report_id, reason="not accredited")
    register.draft("op", [Submission("organisation", {"name": "Still a draft"}, date(2021, 6, 2))])
    ids["accident"] = add(
        "accident", date(2021, 3, 1), accident_type="mine", geometry="POINT (46.95 39.95)"
    )
    ids["victim"] = add(
        "victim",
        date(2021, 3, 2),
        accident_id=ids["accident"],
        outcome="injured",
        sex="male",
        name="Ali Aliyev",
        phone="+994 50 000 00 00",
    )
    register.file(
        "im", [Submission("victim", {"age": 34}, date(2021, 4, 1), record_id=ids["victim"])]
    )
    ids["retired"] = add("organisation", date(2021, 1, 6), name="Gone")
    register.file(
        "im",
        [
            Submission(
                "organisation",
                {},
                date(2021, 7, 1),
                record_id=ids["retired"],
                operation=Operation.RETIRE,
            )
        ],
    )
    content = b"%PDF-1.4 scanned form"
    digest = hashlib.sha256(content).hexdigest()
    with register.store.begin() as conn:
        conn.execute(blob.insert().values(sha256=digest, content=content))
    add(
        "attachment",
        date(2021, 3, 3),
        target_id=ids["accident"],
        filename="form.pdf",
        sha256=digest,
        size_bytes=len(content),
    )
    import_file(
        register,
        DATA / "karabakh" / "geoBoundaries-AZE-ADM2-cut.geojson",
        load_mapping("geoboundaries-adm2"),
        "im",
    )
    return ids
