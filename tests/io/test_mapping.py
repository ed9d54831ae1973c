"""Mappings: the shipped ones load, and a bad mapping fails early with where and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safeground.domain.errors import ValidationFailed
from safeground.io import mappings
from safeground.io.mapping import MappingError, load_mapping, parse_mapping
from tests.io.conftest import HAZARDS

SHIPPED = [
    "colombia-mine-events",
    "geoboundaries-adm1",
    "geoboundaries-adm2",
    "geonames-cities1000",
    "geonames-cities500",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_mappings_load_and_name_source_and_licence(name):
    found = load_mapping(name)
    assert found.name == name
    text = mappings.shipped_path(name).read_text(encoding="utf-8")  # type: ignore[union-attr]
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Source:" in header and "Licence:" in header


def test_shipped_lookup_and_paths(tmp_path):
    assert set(SHIPPED) <= set(mappings.shipped())
    assert mappings.load_mapping("geoboundaries-adm2").source == "geoboundaries-aze-adm2"
    copy = tmp_path / "mine.yaml"
    copy.write_text(mappings.shipped_path("geoboundaries-adm2").read_text())  # type: ignore[union-attr]
    assert load_mapping(str(copy)).name == str(copy)
    with pytest.raises(MappingError, match=r"no shipped mapping by that name.*colombia"):
        load_mapping("no-such-mapping")


def test_colombian_mapping_chooses_types_by_code():
    found = load_mapping("colombia-mine-events")
    assert found.record_types() == ["accident", "eo_item", "hazardous_area"]
    assert found.geometry_field("hazardous_area") == "reference_point"
    assert found.choose_type({"TIPO_EVENTO": "8"}) == ("hazardous_area", None)
    assert found.choose_type({"TIPO_EVENTO": 1.0}) == ("accident", None)
    kind, why = found.choose_type({"TIPO_EVENTO": "9"})
    assert kind is None and "unknown code '9' in column TIPO_EVENTO" in str(why)


def problems_of(data: dict[str, Any]) -> str:
    with pytest.raises(MappingError) as caught:
        parse_mapping(data, name="bad")
    assert isinstance(caught.value, ValidationFailed)
    return str(caught.value)


def with_fields(**fields: Any) -> dict[str, Any]:
    return {**HAZARDS, "records": {"hazardous_area": fields}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_fields(name="name"), "records.hazardous_area.name: write {column: name}"),
        (with_fields(nmae={"column": "name"}), "not a field of hazardous_area; did you mean name?"),
        (
            with_fields(classification={"column": "c", "codes": {"1": "shaa"}}),
            "records.hazardous_area.classification.codes.1: 'shaa' is not valid",
        ),
        (with_fields(classification={"value": "maybe"}), "'maybe' is not valid for classification"),
        (with_fields(name={"column": "a", "value": "b"}), "give exactly one of column, value"),
        (with_fields(name={"column": "a", "format": "weekly"}), "format 'weekly': use year"),
        (with_fields(name={"column": "a", "format": "year"}), "name is not a date"),
        (with_fields(name={"geometry": "input"}), "name is not a geometry field"),
        (with_fields(name={"column": "a", "colour": "red"}), "colour: unknown key"),
        (
            with_fields(name={"template": "{a}", "codes": {"b": {"1": "x"}}}),
            "codes.b: not a {placeholder} of the template",
        ),
        ({**HAZARDS, "record_type": "minefield"}, "unknown record type 'minefield'"),
        (
            {**HAZARDS, "record_type": {"column": "t", "codes": {"1": "hazardous_areas"}}},
            "record_type.codes.1: unknown record type 'hazardous_areas'; did you mean",
        ),
        ({**HAZARDS, "records": {}}, "records: no block for hazardous_area"),
        (
            {**HAZARDS, "records": {**HAZARDS["records"], "accident": {}}},
            "records.accident: record_type never chooses it",
        ),
        ({**HAZARDS, "format": {"lon": "x"}}, "give both lon and lat columns"),
        ({**HAZARDS, "format": {"crs": "EPSG:999999"}}, "unknown CRS 'EPSG:999999'"),
        ({**HAZARDS, "region": {"name": "R", "bbox": [48, 38, 45, 41]}}, "min < max"),
        ({**HAZARDS, "region": {"name": "R", "bbox": [0, 0, 500000, 10]}}, "longitude/latitude"),
        (
            {k: v for k, v in HAZARDS.items() if k != "date_of_information"},
            "date_of_information: required",
        ),
        ({**HAZARDS, "sauce": "x"}, "sauce: unknown key"),
    ],
)
def test_bad_mappings_say_where_and_why(data, expected):
    assert expected in problems_of(data)


def test_yaml_syntax_error_gives_the_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("source: x\nrecords:\n  a: {column: [\n")
    with pytest.raises(MappingError, match=r"line \d+: not valid YAML"):
        load_mapping(str(path))


def test_a_mapping_must_be_a_yaml_mapping(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(MappingError, match="expected a YAML mapping"):
        load_mapping(str(path))


def test_all_problems_are_reported_at_once():
    message = problems_of(with_fields(nmae={"column": "a"}, classification={"value": "x"}))
    assert "nmae" in message and "classification" in message
