"""The bulk parts of the columnar import agree with the row-by-row rules they stand for.

The R-tree of a GeoPackage is filled in bulk (its insert trigger dropped for the insert and
restored in the same transaction), geometries are checked, encoded and serialised in vectorised
calls, and report keys are reserved up front. Each is checked here against the scalar rule or
against what GDAL reads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from safeground.domain.geometry import geometries_acceptable, geometry_problems
from safeground.domain.records import RECORD_TYPES, to_payload, to_payloads
from safeground.io import importer
from safeground.io.mapping import load_mapping
from safeground.service.register import Register, Submission
from safeground.storage import gpkg
from safeground.storage.schema import report
from safeground.storage.types import encode_geometries, encode_json, gpkg_envelope, gpkg_wkb
from tests.io.conftest import ACCIDENTS, mapping
from tests.io.test_import_equivalence import CUTS, SHIPPED


@pytest.fixture
def imported(tmp_path: Path) -> Iterator[tuple[Register, Path]]:
    path = tmp_path / "co.gpkg"
    register = Register.create(str(path), country="CO")
    paths = [*CUTS, SHIPPED / "2002.json"]
    mapping = load_mapping("colombia-mine-events")
    importer.import_many(register, paths, mapping, "im", skip_invalid=True, rejects=tmp_path / "r")
    yield register, path
    register.store.engine.dispose()


def _triggers(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))


def test_rtree_holds_exactly_the_envelope_of_every_geometry(imported):
    _, path = imported
    with sqlite3.connect(path) as conn:
        for layer in ("accident", "eo_item"):
            features = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
            assert len(features) > 100
            tree = conn.execute(
                f"SELECT id, minx, maxx, miny, maxy FROM rtree_{layer}_geometry ORDER BY id"
            ).fetchall()
            assert [row[0] for row in tree] == sorted(features.index.tolist())
            found = np.array([row[1:] for row in tree])
            minx, miny, maxx, maxy = shapely.bounds(features.geometry.sort_index().array).T
            # SQLite keeps 32-bit floats, rounded outwards.
            assert (found[:, 0] <= minx).all() and (found[:, 1] >= maxx).all()
            assert (found[:, 2] <= miny).all() and (found[:, 3] >= maxy).all()
            assert np.allclose(found, np.column_stack([minx, maxx, miny, maxy]), atol=1e-5)


def test_gdal_spatial_filter_finds_what_the_geometries_say(imported):
    _, path = imported
    everything = pyogrio.read_dataframe(path, layer="eo_item")
    for bbox in [(-76.0, 6.0, -75.0, 7.5), (-74.5, 3.0, -73.0, 5.0), (-70.0, -4.0, -67.0, 0.0)]:
        inside = everything[everything.geometry.intersects(box(*bbox))]
        filtered = pyogrio.read_dataframe(path, layer="eo_item", bbox=bbox)
        assert len(inside) > 0 or bbox[0] == -70.0
        assert sorted(filtered.record_id) == sorted(inside.record_id)


def test_insert_triggers_are_back_after_an_import(imported, tmp_path):
    _, path = imported
    fresh = tmp_path / "fresh.gpkg"
    Register.create(str(fresh), country="CO").store.engine.dispose()
    assert _triggers(path) == _triggers(fresh)
    assert any(name.endswith("_insert") for name in _triggers(path))


def test_a_failure_while_indexing_writes_nothing_and_keeps_the_triggers(tmp_path, monkeypatch):
    path = tmp_path / "co.gpkg"
    register = Register.create(str(path), country="CO")
    before = _triggers(path)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gpkg, "rtree_entries", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        importer.import_many(register, CUTS[:1], load_mapping("colombia-mine-events"), "im")
    register.store.engine.dispose()
    assert _triggers(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM report").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM rtree_accident_geometry").fetchone() == (0,)


def test_reports_filed_after_an_import_take_the_next_numbers(register):
    mapping = load_mapping("colombia-mine-events")
    result = importer.import_many(register, CUTS[:1], mapping, "im")
    later = register.file("im", [Submission("organisation", {"name": "DAICMA"}, date(2021, 1, 1))])
    with register.store.begin() as conn:
        numbers = sorted(conn.scalars(report.select().with_only_columns(report.c.report_id)))
    assert numbers == list(range(1, result.imported + 2))
    assert later.report_ids == [result.imported + 1]


TRICKY = [
    Point(-74.1, 4.6),
    Point(),
    Point(1, 2, 3),
    Point(200, 10),
    Point(10, -95),
    LineString([(0, 0), (1, 1)]),
    Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]),  # a bow tie: self-intersecting
    box(46.9, 39.9, 47.0, 40.0),
    MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]),
    MultiPolygon([box(0, 0, 2, 2), box(1, 1, 3, 3)]),  # overlapping parts: invalid
    Polygon(),
]


@pytest.mark.parametrize("expected", [("Point",), ("Polygon", "MultiPolygon")])
def test_vectorised_geometry_checks_agree_with_the_rule(expected):
    found = geometries_acceptable(np.array(TRICKY, dtype=object), expected)
    assert found.tolist() == [not geometry_problems(g, expected) for g in TRICKY]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_bulk_geometry_encoding_is_the_geometry_type_encoding(dialect):
    geoms = [*TRICKY, None]
    encoded = encode_geometries(geoms, dialect)
    assert encoded[-1] is None
    for geom, value in zip(geoms[:-1], encoded[:-1], strict=True):
        if dialect == "postgresql":
            assert shapely.from_wkb(value).equals_exact(geom, 0) or geom.is_empty
            assert shapely.get_srid(shapely.from_wkb(value)) == 4326
            continue
        assert shapely.from_wkb(gpkg_wkb(value)).equals_exact(geom, 0) or geom.is_empty
        envelope = gpkg_envelope(value)
        if geom.is_empty:
            assert envelope is None
        else:
            minx, miny, maxx, maxy = geom.bounds
            assert envelope == (minx, maxx, miny, maxy)


def test_bulk_payloads_are_the_payloads():
    records = [
        RECORD_TYPES["eo_item"].model_validate(
            {"category": "uxo", "geometry": Point(-74, 5 + i / 10), "found_date": "2001-01-01"}
        )
        for i in range(3)
    ]
    records += [
        RECORD_TYPES["hazardous_area"].model_validate(
            {"name": "Field 12", "geometry": box(46.9, 39.9, 47.0, 40.0), "benchmark": Point(1, 2)}
        ),
        RECORD_TYPES["accident"].model_validate({"accident_type": "mine"}),
        RECORD_TYPES["organisation"].model_validate({"name": "ANAMA"}),
    ]
    assert to_payloads(records) == [to_payload(r) for r in records]
    assert to_payloads([]) == []


def test_json_is_written_by_orjson_as_json_would_read_it_and_refuses_non_finite_numbers():
    value = {"b": [1, 2.5, None, "Ağdam"], "a": {"2": True, "1": "x"}, "c": 1e-7}
    text = encode_json(value)
    assert json.loads(text) == value
    assert text.startswith('{"a":{"1":"x","2":true},"b":[1,2.5,null,"Ağdam"]')
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN or infinity"):
            encode_json({"a": [1, {"b": bad}]})


def test_cells_equal_in_python_but_of_other_types_are_mapped_apart(reg, tmp_path):
    # 1 == 1.0 == True in Python, but they are different codes ("1", "1", "true").
    path = tmp_path / "kinds.json"
    rows = [
        {"kind": kind, "lon": 46.9, "lat": 39.9, "year": 2020, "place": "A"}
        for kind in (1, True, 1.0, 1)
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    codes = {"1": "mine", "true": "uxo"}
    records = {
        "accident": {
            **ACCIDENTS["records"]["accident"],
            "accident_type": {"column": "kind", "codes": codes},
        }
    }
    result = importer.import_file(reg, path, mapping(ACCIDENTS, records=records), "im")
    found = [reg.get(record_id)["accident_type"] for record_id in result.record_ids]
    assert found == ["mine", "uxo", "mine", "mine"]
