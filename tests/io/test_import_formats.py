"""Each input format lands the same records: GeoJSON, GeoPackage, zipped Shapefile, CSV, JSON."""

from __future__ import annotations

import json
import zipfile
from datetime import date

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import MultiPolygon, Point

from safeground.io.importer import ImportFailed, import_file
from tests import geometries as g
from tests.io.conftest import ACCIDENTS, HAZARDS, mapping, write_geojson

HAZARD_ROWS = [
    {"name": "F1", "class": "S", "date": "2021-02-01", "geometry": g.HAZARD},
    {
        "name": "F2",
        "class": "C",
        "date": "2021-03-01",
        "geometry": g.box(46.95, 39.95, 46.96, 39.96),
    },
]


def check_hazards(reg, report, source_name):
    assert report.rows_read == 2 and report.imported == 2
    assert report.by_type == {"hazardous_area": 2}
    first = reg.get(report.record_ids[0])
    assert first["name"] == "F1" and first["classification"] == "sha"
    assert first["geometry"].equals(g.HAZARD)
    assert first["estimated_area_m2"] == pytest.approx(949_464, rel=1e-3)
    assert first["source"] == "test-hazards" and first["source_key"] == f"{source_name}#1"
    second = reg.get(report.record_ids[1])
    assert second["classification"] == "cha" and second["record_id"].startswith("AZ-HA-2021-")


def test_geojson(reg, tmp_path):
    path = write_geojson(tmp_path / "hazards.geojson", HAZARD_ROWS)
    report = import_file(reg, path, mapping(HAZARDS), "im")
    check_hazards(reg, report, "hazards.geojson")
    [rep] = reg.reports(report.record_ids[0])
    assert rep.status == "approved" and rep.source_key == "hazards.geojson#1"
    assert rep.date_of_information == date(2021, 2, 1)
    assert "hazards.geojson row 1" in str(rep.reason)


def test_geopackage_with_a_named_layer(reg, tmp_path):
    path = tmp_path / "survey.gpkg"
    frame = gpd.GeoDataFrame(HAZARD_ROWS, geometry="geometry", crs="EPSG:4326")
    pyogrio.write_dataframe(frame, path, layer="hazards")
    pyogrio.write_dataframe(frame.iloc[:1], path, layer="other")
    with pytest.raises(ImportFailed, match=r"several layers .*hazards.*other.*format\.layer"):
        import_file(reg, path, mapping(HAZARDS), "im")
    report = import_file(reg, path, mapping(HAZARDS, format={"layer": "hazards"}), "im")
    check_hazards(reg, report, "survey.gpkg")


def test_zipped_shapefile(reg, tmp_path):
    frame = gpd.GeoDataFrame(HAZARD_ROWS, geometry="geometry", crs="EPSG:4326")
    pyogrio.write_dataframe(frame, tmp_path / "hazards.shp")
    path = tmp_path / "hazards.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        for part in tmp_path.glob("hazards.*"):
            if part.suffix != ".zip":
                zipped.write(part, part.name)
    report = import_file(reg, path, mapping(HAZARDS), "im")
    check_hazards(reg, report, "hazards.zip")


def test_csv_with_lon_lat_columns(reg, tmp_path):
    path = tmp_path / "accidents.csv"
    path.write_text(
        "lon,lat,kind,year,place\n46.91,39.95,1,2021,Aghdam\n46.92,39.96,2,2022,Fuzuli\n"
    )
    report = import_file(reg, path, mapping(ACCIDENTS), "im")
    assert report.imported == 2 and report.by_type == {"accident": 2}
    first = reg.get(report.record_ids[0])
    assert first["accident_type"] == "mine" and first["place_name"] == "Aghdam"
    assert first["geometry"].equals(Point(46.91, 39.95))
    # Dates by year only: 1 January, precision "year".
    assert first["accident_date"] == date(2021, 1, 1) and first["date_precision"] == "year"
    assert report.record_ids[1].startswith("AZ-ACC-2022-")


def test_csv_with_a_wkt_column(reg, tmp_path):
    path = tmp_path / "hazards.csv"
    pd.DataFrame(
        [
            {**{k: v for k, v in r.items() if k != "geometry"}, "wkt": r["geometry"].wkt}
            for r in HAZARD_ROWS
        ]
    ).to_csv(path, index=False)
    report = import_file(reg, path, mapping(HAZARDS, format={"wkt": "wkt"}), "im")
    check_hazards(reg, report, "hazards.csv")


def test_json_array_of_objects_with_lat_lon_keys(reg, tmp_path):
    path = tmp_path / "accidents.json"
    path.write_text(
        json.dumps(
            [
                {"latitude": 39.95, "longitude": 46.91, "kind": 1, "year": 2021, "place": "A"},
                {"latitude": 39.96, "longitude": 46.92, "kind": 2, "year": 2021, "place": "B"},
            ]
        )
    )
    chosen = mapping(ACCIDENTS, format={"lon": "longitude", "lat": "latitude"})
    report = import_file(reg, path, chosen, "im")
    assert report.imported == 2
    assert reg.get(report.record_ids[1])["accident_type"] == "uxo"


def test_declared_crs_is_reprojected_to_wgs84(reg, tmp_path):
    path = tmp_path / "utm.csv"
    # Aghdam in UTM zone 38N metres.
    path.write_text("x,y,kind,year,place\n662400,4418500,1,2021,Aghdam\n")
    chosen = mapping(ACCIDENTS, format={"lon": "x", "lat": "y", "crs": "EPSG:32638"})
    report = import_file(reg, path, chosen, "im")
    point = reg.get(report.record_ids[0])["geometry"]
    assert point.x == pytest.approx(46.90, abs=0.01) and point.y == pytest.approx(39.90, abs=0.01)


def test_a_file_crs_is_used_and_a_conflicting_declaration_refused(reg, tmp_path):
    utm = gpd.GeoDataFrame(HAZARD_ROWS, geometry="geometry", crs="EPSG:4326").to_crs(32638)
    path = tmp_path / "utm.gpkg"
    pyogrio.write_dataframe(utm, path)
    report = import_file(reg, path, mapping(HAZARDS), "im")
    got = reg.get(report.record_ids[0])["geometry"]
    assert got.symmetric_difference(g.HAZARD).area < 1e-12
    with pytest.raises(ImportFailed, match="file says its CRS is EPSG:32638 but the mapping"):
        import_file(reg, path, mapping(HAZARDS, format={"crs": "EPSG:4326"}), "im")


def test_polygon_to_multipolygon_only_when_asked(reg, tmp_path):
    path = write_geojson(tmp_path / "h.geojson", HAZARD_ROWS[:1])
    asked = dict(
        HAZARDS["records"]["hazardous_area"], geometry={"geometry": "input", "to_multi": True}
    )
    report = import_file(reg, path, mapping(HAZARDS, records={"hazardous_area": asked}), "im")
    assert isinstance(reg.get(report.record_ids[0])["geometry"], MultiPolygon)
    other = write_geojson(tmp_path / "h2.geojson", HAZARD_ROWS[1:])
    report = import_file(reg, other, mapping(HAZARDS), "im")
    assert reg.get(report.record_ids[0])["geometry"].geom_type == "Polygon"


def test_csv_encoding_and_list_cells(reg, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "name,class,date,wkt,evidence\n"
        f'Añelo,S,2021-02-01,"{g.HAZARD.wkt}",front_line; verbal_report\n'.encode("latin-1")
    )
    fields = {
        **HAZARDS["records"]["hazardous_area"],
        "evidence": {"column": "evidence", "separator": ";"},
    }
    chosen = mapping(HAZARDS, format={"wkt": "wkt"}, records={"hazardous_area": fields})
    with pytest.raises(ImportFailed, match=r"declare format\.encoding"):
        import_file(reg, path, chosen, "im")
    latin = mapping(
        HAZARDS, format={"wkt": "wkt", "encoding": "latin-1"}, records={"hazardous_area": fields}
    )
    hazard = reg.get(import_file(reg, path, latin, "im").record_ids[0])
    assert hazard["name"] == "Añelo" and hazard["evidence"] == ["front_line", "verbal_report"]
