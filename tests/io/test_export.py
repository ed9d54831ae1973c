"""Exports open in GIS tools (read back with pyogrio) and keep personal data out by default."""

from __future__ import annotations

import json

import pyogrio
import pytest

from safeground.domain.errors import ValidationFailed
from safeground.io.export import export_layers, layer_names
from tests.io.conftest import populate

PERSONAL = ("name", "phone", "address")


@pytest.fixture
def full(reg):
    populate(reg)
    return reg


def test_layers_are_the_record_tables_and_the_derived_ones():
    names = layer_names()
    assert {"hazardous_area", "victim", "processed_land", "hazard_change"} <= set(names)
    assert "report" not in names and "victim_personal" not in names


def test_geopackage_export_opens_with_pyogrio(full, tmp_path):
    [out] = export_layers(full, tmp_path / "out.gpkg", "gpkg")
    layers = {str(name): kind for name, kind in pyogrio.list_layers(out)}
    assert set(layers) == {
        "organisation",
        "admin_area",
        "hazardous_area",
        "activity",
        "accident",
        "victim",
        "attachment",
        "processed_land",
        "hazard_change",
    }
    assert layers["accident"] == "Point" and layers["hazard_change"] is None
    hazards = pyogrio.read_dataframe(out, layer="hazardous_area")
    assert hazards.crs.to_epsg() == 4326 and len(hazards) == 1
    assert hazards.loc[0, "status"] == "worked_on" and hazards.loc[0, "cleared_m2"] > 0
    assert json.loads(hazards.loc[0, "evidence"]) == ["front_line"]
    assert hazards.loc[0, "status_date"] == "2021-05-01"
    areas = pyogrio.read_dataframe(out, layer="admin_area")
    assert len(areas) == 6 and set(areas.geometry.geom_type) <= {"Polygon", "MultiPolygon"}
    land = pyogrio.read_dataframe(out, layer="processed_land")
    assert land.loc[0, "land_type"] == "cleared"
    victims = pyogrio.read_dataframe(out, layer="victim", read_geometry=False)
    assert not set(PERSONAL) & set(victims.columns)
    assert victims.loc[0, "age"] == 34


def test_personal_fields_only_on_request(full, tmp_path):
    [out] = export_layers(full, tmp_path / "p.gpkg", "gpkg", ["victim"], include_personal=True)
    victims = pyogrio.read_dataframe(out, layer="victim", read_geometry=False)
    assert victims.loc[0, "name"] == "Ali Aliyev" and victims.loc[0, "phone"] == "+994 50 000 00 00"
    for fmt in ("geojson", "csv", "gpkg"):
        written = export_layers(full, tmp_path / ("no.gpkg" if fmt == "gpkg" else fmt), fmt)
        for path in written:
            assert b"Ali Aliyev" not in path.read_bytes(), path


def test_geojson_export_one_file_per_layer(full, tmp_path):
    written = export_layers(full, tmp_path / "gj", "geojson", ["hazardous_area", "hazard_change"])
    assert [p.name for p in written] == ["hazardous_area.geojson", "hazard_change.geojson"]
    hazards = pyogrio.read_dataframe(written[0])
    assert hazards.geometry[0].geom_type == "Polygon"
    changes = pyogrio.read_dataframe(written[1], read_geometry=False)
    assert set(changes["attribute"]) == {"status", "classification"}
    [single] = export_layers(full, tmp_path / "one.geojson", "geojson", ["accident"])
    assert single == tmp_path / "one.geojson"


def test_csv_export_with_wkt_geometry(full, tmp_path):
    written = export_layers(full, tmp_path / "csv", "csv", ["accident", "organisation"])
    accident = written[0].read_text().splitlines()
    assert accident[0].startswith("WKT,record_id,")
    assert '"POINT (46.95 39.95)"' in accident[1]
    back = pyogrio.read_dataframe(written[0])
    assert back.geometry[0].wkt == "POINT (46.95 39.95)"
    organisations = pyogrio.read_dataframe(written[1], read_geometry=False)
    assert list(organisations["name"]) == ["ANAMA"]


def test_named_empty_layers_are_written_and_unnamed_ones_skipped(reg, tmp_path):
    assert export_layers(reg, tmp_path / "none.gpkg", "gpkg") == []
    [out] = export_layers(reg, tmp_path / "empty.gpkg", "gpkg", ["hazardous_area", "task"])
    assert {str(n) for n, _ in pyogrio.list_layers(out)} == {"hazardous_area", "task"}


def test_bad_export_requests(reg, tmp_path):
    with pytest.raises(ValidationFailed, match="unknown export format 'shp'"):
        export_layers(reg, tmp_path / "x", "shp")
    with pytest.raises(ValidationFailed, match="unknown layer 'minefield'"):
        export_layers(reg, tmp_path / "x.gpkg", "gpkg", ["minefield"])
    with pytest.raises(ValidationFailed, match="is the register itself"):
        export_layers(reg, reg.store.path, "gpkg")  # type: ignore[attr-defined]
