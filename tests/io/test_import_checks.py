"""Bad input is reported by file, row, field and reason, all at once, and nothing is written."""

from __future__ import annotations

import pytest
from shapely.geometry import Point

from safeground.domain.errors import ValidationFailed
from safeground.io.importer import ImportFailed, import_file
from tests import geometries as g
from tests.io.conftest import ACCIDENTS, HAZARDS, counts, mapping, write_geojson

CSV_HEAD = "lon,lat,kind,year,place\n"


def failure(reg, path, chosen) -> ImportFailed:
    before = counts(reg)
    with pytest.raises(ImportFailed) as caught:
        import_file(reg, path, chosen, "im")
    assert counts(reg) == before, "a failed import must write nothing"
    assert isinstance(caught.value, ValidationFailed)
    return caught.value


def test_missing_required_field_names_file_row_field_and_column(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + "46.91,39.95,1,2021,A\n46.92,39.95,,2021,B\n")
    error = failure(reg, path, mapping(ACCIDENTS))
    [problem] = error.row_problems
    assert (problem.file, problem.row, problem.field) == ("acc.csv", 2, "accident_type")
    assert "Field required" in problem.reason and "column kind is empty" in problem.reason
    assert "acc.csv row 2: accident_type: Field required" in str(error)


def test_unknown_code_names_the_code(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + "46.91,39.95,7,2021,A\n")
    [problem] = failure(reg, path, mapping(ACCIDENTS)).row_problems
    assert problem.field == "accident_type"
    assert problem.reason == "unknown code '7' in column kind (known: 1, 2)"


def test_invalid_polygon_is_reported_not_repaired(reg, tmp_path):
    rows = [
        {"name": "ok", "class": "S", "date": "2021-02-01", "geometry": g.HAZARD},
        {"name": "bowtie", "class": "S", "date": "2021-02-01", "geometry": g.BOWTIE},
    ]
    path = write_geojson(tmp_path / "h.geojson", rows)
    [problem] = failure(reg, path, mapping(HAZARDS)).row_problems
    assert (problem.row, problem.field) == (2, "geometry")
    assert "invalid geometry: Self-intersection" in problem.reason


def test_utm_coordinates_without_a_crs_are_flagged(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + "662400,4418500,1,2021,A\n")
    [problem] = failure(reg, path, mapping(ACCIDENTS)).row_problems
    assert problem.field == "geometry"
    assert (
        "not longitude/latitude and neither the file nor the mapping gives a CRS" in problem.reason
    )


def test_utm_coordinates_declared_as_lon_lat_are_flagged(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + "662400,4418500,1,2021,A\n")
    chosen = mapping(ACCIDENTS, format={"lon": "lon", "lat": "lat", "crs": "EPSG:4326"})
    [problem] = failure(reg, path, chosen).row_problems
    assert "not WGS84 longitude/latitude" in problem.reason and "wrong CRS?" in problem.reason


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_utm_polygon_in_a_geojson_is_flagged(reg, tmp_path):
    rows = [{"name": "utm", "class": "S", "date": "2021-02-01", "geometry": g.UTM_SQUARE}]
    path = write_geojson(tmp_path / "h.geojson", rows, crs=None)
    [problem] = failure(reg, path, mapping(HAZARDS)).row_problems
    # GeoJSON is WGS84 by definition, so the coordinates are what is wrong.
    assert "not WGS84 longitude/latitude" in problem.reason and "wrong CRS?" in problem.reason


@pytest.mark.parametrize(
    ("lon", "lat", "hint"),
    [
        (-46.91, 39.95, "probably a flipped sign of the longitude"),
        (46.91, -39.95, "probably a flipped sign of the latitude"),
        (39.95, 46.91, "probably longitude and latitude swapped"),
        (10.0, 10.0, None),
    ],
)
def test_points_outside_the_region_are_flagged_with_a_hint(reg, tmp_path, lon, lat, hint):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + f"{lon},{lat},1,2021,A\n")
    [problem] = failure(reg, path, mapping(ACCIDENTS)).row_problems
    assert problem.field == "geometry"
    assert f"point ({lon:g}, {lat:g}) lies outside the region Karabakh" in problem.reason
    if hint:
        assert hint in problem.reason and problem.reason.endswith("not changed")
    else:
        assert "probably" not in problem.reason


def test_polygon_outside_the_region(reg, tmp_path):
    moved = g.box(-46.91, 39.90, -46.90, 39.91)
    rows = [{"name": "far", "class": "S", "date": "2021-02-01", "geometry": moved}]
    path = write_geojson(tmp_path / "h.geojson", rows)
    [problem] = failure(reg, path, mapping(HAZARDS)).row_problems
    assert (
        "Polygon with bounds" in problem.reason
        and "flipped sign of the longitude" in problem.reason
    )


def test_every_problem_of_every_row_is_collected(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(
        CSV_HEAD
        + "46.91,39.95,9,20x1,A\n"  # unknown code, bad year (twice: date of information too)
        + "abc,39.95,1,2021,B\n"  # not a number
        + "46.91,39.95,1,2021,C\n"  # fine
    )
    error = failure(reg, path, mapping(ACCIDENTS))
    found = {(p.row, p.field) for p in error.row_problems}
    assert found == {
        (1, "date_of_information"),
        (1, "accident_type"),
        (1, "accident_date"),
        (2, "geometry"),
    }
    assert "2 rows cannot be imported (4 problems); nothing was imported" in str(error)


def test_long_problem_lists_are_cut_with_a_count(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text(CSV_HEAD + "".join(f"46.9,39.9,9,2021,{i}\n" for i in range(30)))
    message = str(failure(reg, path, mapping(ACCIDENTS)))
    assert "30 rows cannot be imported" in message and "... and 10 more" in message


def test_missing_column_is_a_file_problem(reg, tmp_path):
    path = tmp_path / "acc.csv"
    path.write_text("lon,lat,kind,year\n46.9,39.9,1,2021\n")
    error = failure(reg, path, mapping(ACCIDENTS))
    assert "acc.csv: the mapping reads column(s) place, not in the file" in str(error)


def test_missing_file(reg, tmp_path):
    error = failure(reg, tmp_path / "nope.csv", mapping(ACCIDENTS))
    assert "nope.csv: no such file" in str(error)


def test_date_of_information_is_required(reg, tmp_path):
    rows = [{"name": "F", "class": "S", "date": None, "geometry": g.HAZARD}]
    path = write_geojson(tmp_path / "h.geojson", rows)
    [problem] = failure(reg, path, mapping(HAZARDS)).row_problems
    assert problem.field == "date_of_information" and "every report needs" in problem.reason


def test_point_for_a_hazard_polygon_is_refused(reg, tmp_path):
    rows = [{"name": "F", "class": "S", "date": "2021-01-01", "geometry": Point(46.9, 39.9)}]
    path = write_geojson(tmp_path / "h.geojson", rows)
    [problem] = failure(reg, path, mapping(HAZARDS)).row_problems
    assert (
        problem.field == "geometry"
        and "expected Polygon or MultiPolygon, got Point" in problem.reason
    )
