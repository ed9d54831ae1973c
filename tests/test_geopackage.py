"""The embedded register is a GeoPackage that GDAL (so QGIS) reads as it is."""

import sqlite3
from datetime import date

import pyogrio
import pytest

from safeground.service.register import Register, Submission
from tests import geometries as g
from tests.helpers import add


@pytest.fixture
def gpkg(tmp_path):
    path = tmp_path / "r.gpkg"
    register = Register.create(str(path), country="AZ")
    hazard_id = add(register, "hazardous_area", date(2021, 2, 1), geometry=g.HAZARD.wkt, name="F1")
    register.file(
        "im",
        [
            Submission(
                "activity",
                {
                    "hazard_id": hazard_id,
                    "activity_type": "ts",
                    "processed": [{"land_type": "reduced", "geometry": g.WEST_HALF.wkt}],
                },
                date(2021, 3, 1),
            )
        ],
    )
    add(
        register, "accident", date(2021, 4, 1), accident_type="mine", geometry="POINT (46.95 39.95)"
    )
    return path


def test_gdal_sees_the_layers_with_their_attributes(gpkg):
    layers = dict(pyogrio.list_layers(gpkg))
    for name in ("hazardous_area", "processed_land", "eo_item", "accident", "task", "admin_area"):
        assert name in layers
    assert layers["accident"] == "Point"
    hazards = pyogrio.read_dataframe(gpkg, layer="hazardous_area")
    assert hazards.crs.to_epsg() == 4326
    assert hazards.loc[0, "name"] == "F1"
    assert hazards.loc[0, "remaining_m2"] == pytest.approx(
        hazards.loc[0, "estimated_area_m2"] / 2, rel=1e-3
    )
    assert hazards.geometry[0].equals(g.HAZARD)
    processed = pyogrio.read_dataframe(gpkg, layer="processed_land")
    assert processed.loc[0, "land_type"] == "reduced"
    assert (
        pyogrio.read_info(gpkg, layer="processed_land")["dtypes"][
            list(pyogrio.read_info(gpkg, layer="processed_land")["fields"]).index("credited_m2")
        ]
        == "float64"
    )


def test_spatial_index_answers_bounding_box_queries(gpkg):
    near = pyogrio.read_dataframe(gpkg, layer="accident", bbox=(46.94, 39.94, 46.96, 39.96))
    far = pyogrio.read_dataframe(gpkg, layer="accident", bbox=(40, 40, 41, 41))
    assert len(near) == 1 and len(far) == 0
    with sqlite3.connect(gpkg) as conn:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (rtree,) = conn.execute("SELECT count(*) FROM rtree_accident_geometry").fetchone()
    assert app_id == 0x47504B47 and rtree == 1


def test_personal_data_is_not_a_layer(gpkg):
    assert "victim_personal" not in dict(pyogrio.list_layers(gpkg))
