"""The bulk forms give what the one-by-one forms give: geodesic areas of many geometries, the
projection of many newly created hazardous areas, and what a batch approval writes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from sqlalchemy import create_engine, select

import safeground.service.projection as projection
import safeground.service.register as register_module
from safeground.domain.geometry import geodesic_area, geodesic_areas
from safeground.domain.hazard import project_created_hazards, project_hazard
from safeground.domain.records import HazardousArea, to_payload
from safeground.domain.reports import Operation, Report, ReportStatus, build_record
from safeground.service import checks
from safeground.service.register import Register, Submission
from safeground.storage.schema import hazard_change, processed_land, record_tables
from tests import geometries as g
from tests.helpers import add

D = date
SQUARE = box(g.X0, g.Y0, g.X0 + g.D, g.Y0 + g.D)
HOLE = box(g.X0 + g.D / 4, g.Y0 + g.D / 4, g.X0 + g.D / 2, g.Y0 + g.D / 2)
HOLE_2 = box(g.X0 + 0.6 * g.D, g.Y0 + 0.6 * g.D, g.X0 + 0.9 * g.D, g.Y0 + 0.8 * g.D)
WITH_HOLES = Polygon(SQUARE.exterior.coords, [HOLE.exterior.coords, HOLE_2.exterior.coords])
MULTI = MultiPolygon([WITH_HOLES, affinity.translate(SQUARE, xoff=2 * g.D)])

# Every kind of geometry the one-by-one area takes, in one array.
CATALOGUE: list[Any] = [
    SQUARE,
    WITH_HOLES,
    shapely.reverse(WITH_HOLES),  # clockwise exterior, counter-clockwise holes
    MULTI,
    None,
    box(10, 10, 13, 12),  # large: 3° by 2°, densified to 100,000 vertices
    box(-75, 59.5, -74, 60.5),  # a degree square at 60°N
    box(-179.9, -80, -176.9, -79.9),  # near the pole, short of the antimeridian
    Point(g.X0, g.Y0),
    LineString([(g.X0, g.Y0), (g.X0 + g.D, g.Y0)]),
    Polygon(),
    MultiPolygon(),
    shapely.GeometryCollection([WITH_HOLES, Point(0, 0), MULTI]),
    box(g.X0, g.Y0, g.X0 + 1e-6, g.Y0 + 1e-6),  # a few cm²
]


def test_vectorised_areas_are_the_one_by_one_areas():
    # Not only to the square metre: the same figures, added up in the same order.
    assert geodesic_areas(CATALOGUE).tolist() == [geodesic_area(x) for x in CATALOGUE]
    assert geodesic_areas(CATALOGUE[::-1]).tolist() == [geodesic_area(x) for x in CATALOGUE[::-1]]
    assert geodesic_areas([]).tolist() == []
    assert geodesic_areas([None, Point(0, 0)]).tolist() == [0.0, 0.0]


lon = st.floats(min_value=-170, max_value=170, allow_nan=False)
lat = st.floats(min_value=-80, max_value=80, allow_nan=False)
size = st.floats(min_value=1e-5, max_value=0.05, allow_nan=False)


@st.composite
def areal(draw):
    """A polygon, one with a hole, or a multipolygon of such, anywhere but at the poles."""
    x, y, r = draw(lon), draw(lat), draw(size)
    sides = draw(st.integers(min_value=1, max_value=8))
    shell = Point(x, y).buffer(r, sides)
    if draw(st.booleans()):
        shell = shell.difference(Point(x, y).buffer(r / 3, sides))
    if draw(st.booleans()):
        return MultiPolygon([shell, affinity.translate(shell, xoff=3 * r)])
    return shell


@settings(max_examples=60, deadline=None)
@given(st.lists(areal(), max_size=6))
def test_vectorised_areas_of_any_polygons(geoms):
    found = geodesic_areas(geoms).tolist()
    one_by_one = [geodesic_area(x) for x in geoms]
    assert all(abs(a - b) < 1.0 for a, b in zip(found, one_by_one, strict=True))
    assert found == one_by_one


# -- projecting created areas in bulk --------------------------------------------------------


def _created(n: int, values: dict[str, Any]) -> tuple[Report, HazardousArea]:
    record = build_record("hazardous_area", values)
    assert isinstance(record, HazardousArea)
    rep = Report(
        report_id=100 + n,
        record_id=f"AZ-HA-2021-{n:05d}",
        record_type="hazardous_area",
        operation=Operation.CREATE,
        date_of_information=D(2021, 3, n),
        changes=to_payload(record),
        author="im",
        status=ReportStatus.APPROVED,
        approval_seq=n,
        source="test",
        source_key=str(n),
        built=record,
    )
    return rep, record


CREATED = [
    {"geometry": WITH_HOLES.wkt},
    {"geometry": MULTI.wkt, "classification": "cha", "evidence": ["front_line"]},
    {"estimated_area_m2": 5000.5, "reference_point": Point(g.X0, g.Y0).wkt},
    {"classification": "indication"},
    {"status": "suspended", "status_reason": "access denied", "geometry": SQUARE.wkt},
    {"status": "closed"},
]


def test_created_areas_project_as_one_by_one():
    created = [_created(n, values) for n, values in enumerate(CREATED, start=1)]
    views = project_created_hazards(created)
    for (rep, _), view in zip(created, views, strict=True):
        expected = project_hazard(rep.record_id, [rep], [], [])
        assert view == expected
        # Equal is not enough for what is stored: the same types (an enum, a string).
        assert [type(c.new) for c in view.changes] == [type(c.new) for c in expected.changes]
        assert view.balance.estimated_m2 == expected.balance.estimated_m2
    assert project_created_hazards([]) == []


def test_only_an_approved_create_report_projects_in_bulk():
    rep, record = _created(1, CREATED[0])
    rep.operation = Operation.UPDATE
    with pytest.raises(ValueError, match="not an approved create report"):
        project_created_hazards([(rep, record)])
    rep, record = _created(1, CREATED[0])
    rep.status = ReportStatus.SUBMITTED
    with pytest.raises(ValueError, match="not an approved create report"):
        project_created_hazards([(rep, record)])


# -- what a batch writes, with and without the bulk path -------------------------------------

POSTGIS_URL = os.environ.get("SAFEGROUND_TEST_POSTGIS_URL")


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def two_registers(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Register, Register]]:
    """Two empty registers on the same backend."""
    if request.param == "gpkg":
        pair = (
            Register.create(str(tmp_path / "a.gpkg"), "AZ"),
            Register.create(str(tmp_path / "b.gpkg"), "AZ"),
        )
        yield pair
        for reg in pair:
            reg.store.engine.dispose()
        return
    if not POSTGIS_URL:
        if os.environ.get("CI"):
            pytest.fail("PostGIS tests must run on CI: SAFEGROUND_TEST_POSTGIS_URL is not set")
        pytest.skip("no PostGIS: set SAFEGROUND_TEST_POSTGIS_URL (make test starts one)")
    admin = create_engine(POSTGIS_URL)
    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    separator = "&" if "?" in POSTGIS_URL else "?"
    with admin.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    pair = tuple(
        Register.create(f"{POSTGIS_URL}{separator}options=-csearch_path%3D{s},public", "AZ")
        for s in schemas
    )
    yield pair  # type: ignore[misc]
    for reg in pair:
        reg.store.engine.dispose()
    with admin.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def _batches(register: Register) -> None:
    """New areas of every kind, some with an item found in them in the same batch; then a
    second batch that adds more, changes old ones and releases land; then an approval of
    submitted reports, which are read back from the register rather than held in memory."""
    with register.store.begin() as conn:
        linked = next(register.reserve_ids(conn, {("AZ", "HA", 2021): 1})[("AZ", "HA", 2021)])
    first = [Submission("hazardous_area", v, D(2021, 3, 1)) for v in CREATED]
    first.append(
        Submission(
            "hazardous_area",
            {"geometry": SQUARE.wkt},
            D(2021, 3, 2),
            record_id=linked,
            operation=Operation.CREATE,
        )
    )
    # As an import files it: the record validated once, its geometry placed afterwards.
    values = {"name": "imported", "evidence": ["verbal_report"]}
    record = build_record("hazardous_area", values).model_copy(update={"geometry": MULTI})
    first.append(
        Submission("hazardous_area", {**values, "geometry": MULTI}, D(2021, 3, 3), record=record)
    )
    item = {"category": "ap_mine", "hazard_id": linked, "geometry": Point(g.X0, g.Y0).wkt}
    first.append(Submission("eo_item", item, D(2021, 3, 5)))
    ids = register.file("im", first).record_ids
    land = {"land_type": "cleared", "geometry": g.WEST_HALF.wkt}
    second = [
        Submission("hazardous_area", {"geometry": g.HAZARD.wkt}, D(2021, 4, 1)),
        Submission("hazardous_area", {"name": "renamed"}, D(2021, 4, 2), record_id=ids[0]),
        Submission(
            "activity",
            {"hazard_id": linked, "activity_type": "clearance", "processed": [land]},
            D(2021, 4, 3),
        ),
    ]
    register.file("im", second)
    drafts = register.draft(
        "op", [Submission("hazardous_area", v, D(2021, 5, 1)) for v in CREATED[:3]]
    )
    report_ids = [r.report_id for r in drafts]
    register.submit("op", report_ids)
    register.approve("im", report_ids)


def _contents(register: Register) -> dict[str, list[dict[str, Any]]]:
    tables = [record_tables["hazardous_area"], hazard_change, processed_land]
    found = {}
    with register.store.begin() as conn:
        for table in tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).mappings()
            found[table.name] = [
                {
                    k: v.wkb_hex if hasattr(v, "wkb_hex") else v
                    for k, v in r.items()
                    if k != "updated_at"
                }
                for r in rows
            ]
    return found


def test_a_batch_writes_what_the_one_by_one_projection_writes(two_registers, monkeypatch):
    bulk, one_by_one = two_registers
    projected: list[str] = []

    def spy(created: list[tuple[Report, HazardousArea]]) -> list[Any]:
        projected.extend(rep.record_id for rep, _ in created)
        return project_created_hazards(created)

    with monkeypatch.context() as patch:
        patch.setattr(projection, "project_created_hazards", spy)
        _batches(bulk)
    # The new areas but the one an item of their batch was found in: 7, 1, then 3 (twice: on
    # submission, the approval is tried and rolled back).
    assert len(projected) == 14 and len(set(projected)) == 11
    with monkeypatch.context() as patch:
        patch.setattr(register_module, "new_hazards", lambda conn, created: set())
        _batches(one_by_one)
    found, expected = _contents(bulk), _contents(one_by_one)
    assert len(found["hazardous_area"]) == 12
    assert len(found["processed_land"]) == 1
    for name, rows in expected.items():
        assert found[name] == rows, f"table {name} differs"


# -- references, checked field by field over the batch ---------------------------------------


def test_missing_references_in_the_order_of_the_batch(register):
    org = add(register, "organisation", D(2021, 1, 1), name="Demo Army Engineers")
    team = add(register, "team", D(2021, 1, 2), name="T1", organisation_id=org, team_type="manual")
    values: list[tuple[str, str, dict[str, Any]]] = [
        (
            "ACT-1",
            "activity",
            {
                "activity_type": "clearance",
                "hazard_id": "HA-X",
                "organisation_id": org,
                "team_ids": ["TM-1", team, "TM-2"],
            },
        ),
        ("LNK-1", "link", {"from_id": "ACT-1", "to_id": "NOPE"}),
        # In the batch, or in the register, but not of the type the field names.
        ("EO-1", "eo_item", {"category": "uxo", "hazard_id": "HA-NEW", "activity_id": org}),
        ("HA-NEW", "hazardous_area", {"organisation_id": "ORG-9"}),
        (
            "ACT-2",
            "activity",
            {"activity_type": "clearance", "hazard_id": "EO-1", "team_ids": ["TM-1"]},
        ),
        (
            "ATT-1",
            "attachment",
            {"target_id": team, "filename": "a.jpg", "sha256": "0" * 64, "size_bytes": 1},
        ),
    ]
    records = {i: build_record(t, v, i) for i, t, v in values}
    with register.store.begin() as conn:
        problems = checks.missing_references(conn, records)
    assert [(p.record, p.field, p.reason) for p in problems] == [
        ("ACT-1", "hazard_id", "no hazardous area HA-X in the register"),
        ("ACT-1", "team_ids", "no team TM-1 in the register"),
        ("ACT-1", "team_ids", "no team TM-2 in the register"),
        ("LNK-1", "to_id", "no record NOPE in the register"),
        ("EO-1", "activity_id", f"no activity {org} in the register"),
        ("HA-NEW", "organisation_id", "no organisation ORG-9 in the register"),
        ("ACT-2", "hazard_id", "no hazardous area EO-1 in the register"),
        ("ACT-2", "team_ids", "no team TM-1 in the register"),
    ]
