"""The risk layer: PNG tiles of the attached risk map, its listing, the map page, record scores.

The map is built by the risk code itself from the tiny register of ``tests/risk/registers.py``,
on both backends.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Transformer
from rio_tiler.colormap import cmap
from sqlalchemy import select

from safeground.risk.attach import attach_map
from safeground.risk.evidence import resolve_region
from safeground.risk.riskmap import build_map
from safeground.service import accounts
from safeground.service.register import Register, now
from safeground.storage.schema import risk_score
from safeground.web.app import create_app
from safeground.web.settings import Settings
from tests.risk import registers
from tests.web.conftest import PASSWORD, logged_in

WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")
VIRIDIS = cmap.get("viridis")
ZOOM = 16  # about 2 m a pixel: a 100 m cell is some 50 pixels wide


@dataclass
class Served:
    app: object
    map_path: Path
    ids: dict[str, str]
    model_version: str


@pytest.fixture
def served(store_location: str, tmp_path: Path) -> Iterator[Served]:
    register = Register.create(store_location, country="AZ")
    register.store.migrate()
    ids = registers.build(register)
    label, region = resolve_region(register, ids["district"])
    out = tmp_path / "risk.tif"
    result = build_map(register, label, region, 100.0, out, background=2000, grid_layer=False)
    attach_map(register, out, "planner")
    with register.store.begin() as conn:
        accounts.add_account(conn, "officer", "im_officer", PASSWORD, None)
        accounts.add_account(conn, "visitor", "public", PASSWORD, None)
    register.store.engine.dispose()
    app = create_app(Settings(store=store_location, secret_key="test"))
    yield Served(app, out, ids, result.model.version)
    app.state.register.store.engine.dispose()


@pytest.fixture
def as_user(served: Served) -> Callable[[str], TestClient]:
    return lambda username: logged_in(served.app, username)


def _cell_centres(path: Path) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The raster and the lon/lat of every cell centre, row by row."""
    with rasterio.open(path) as src:
        risk = src.read(1)
        rows, cols = np.indices(risk.shape)
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        to_wgs84 = Transformer.from_crs(src.crs, 4326, always_xy=True)
    lon, lat = to_wgs84.transform(np.asarray(xs), np.asarray(ys))
    return risk, list(zip(lon, lat, strict=True))


def _pixel_at(client: TestClient, lon: float, lat: float) -> tuple[int, ...]:
    """The RGBA of the risk tile's pixel at lon/lat."""
    tile = WEB_MERCATOR.tile(lon, lat, ZOOM)
    response = client.get(f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (256, 256)
    rgba = np.asarray(image.convert("RGBA"))
    box = WEB_MERCATOR.xy_bounds(tile)
    x, y = WEB_MERCATOR.xy(lon, lat)
    col = int((x - box.left) / (box.right - box.left) * 256)
    row = int((box.top - y) / (box.top - box.bottom) * 256)
    return tuple(int(v) for v in rgba[row, col])


def test_tiles_draw_the_map_with_the_ramp(served: Served, as_user) -> None:
    officer = as_user("officer")
    risk, centres = _cell_centres(served.map_path)
    flat = risk.ravel()
    # A mapped cell: the CHA's, whose risk is high; and a cell without a value.
    cha = registers.CHA.centroid
    valued = min(
        (i for i in np.flatnonzero(np.isfinite(flat))),
        key=lambda i: (centres[i][0] - cha.x) ** 2 + (centres[i][1] - cha.y) ** 2,
    )
    expected = VIRIDIS[int(np.floor(255 * float(flat[valued])))]
    assert _pixel_at(officer, *centres[valued]) == tuple(int(v) for v in expected)
    assert expected[3] == 255

    nodata = np.flatnonzero(np.isnan(flat))
    assert nodata.size, "the district's corners leave cells without a value"
    assert _pixel_at(officer, *centres[nodata[0]])[3] == 0  # transparent

    # Far from the map (Lisbon), and beyond the zoom range.
    tile = WEB_MERCATOR.tile(-9.14, 38.72, ZOOM)
    assert officer.get(f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png").status_code == 204
    assert officer.get("/tiles/risk/3/8/0.png").status_code == 400


def test_only_roles_that_see_records_get_the_layer(served: Served, as_user) -> None:
    tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, ZOOM)
    url = f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png"
    assert TestClient(served.app).get(url).status_code == 401
    visitor = as_user("visitor")
    assert visitor.get(url).status_code == 403
    assert "risk" not in {
        layer["id"] for layer in visitor.get("/tiles/layers.json").json()["layers"]
    }
    assert visitor.get(f"/api/records/{served.ids['cha']}/risk").status_code == 403
    assert "risk-legend" not in visitor.get("/").text

    officer = as_user("officer")
    layers = {layer["id"]: layer for layer in officer.get("/tiles/layers.json").json()["layers"]}
    risk = layers["risk"]
    with rasterio.open(served.map_path) as src:
        map_date = src.tags()["map_date"]
    assert risk["available"] is True
    assert risk["title"] == f"Risk (model {served.model_version}, {map_date})"
    assert risk["tiles"][0].endswith("/tiles/risk/{z}/{x}/{y}.png")
    assert [stop["risk"] for stop in risk["legend"]][::4] == [0.0, 1.0]
    assert risk["legend"][0]["colour"] == "#{:02x}{:02x}{:02x}".format(*VIRIDIS[0][:3])
    west, south, east, north = risk["bounds"]
    assert west < registers.CHA.centroid.x < east and south < registers.CHA.centroid.y < north
    page = officer.get("/").text
    assert 'value="risk"' in page and risk["title"] in page and "linear-gradient" in page


def test_a_changed_file_is_refused_not_drawn(served: Served, as_user) -> None:
    officer = as_user("officer")
    tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, ZOOM)
    url = f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png"
    assert officer.get(url).status_code == 200
    with served.map_path.open("ab") as f:
        f.write(b"\0")  # another file now, though GDAL would still read it
    risk = {layer["id"]: layer for layer in officer.get("/tiles/layers.json").json()["layers"]}
    assert risk["risk"]["available"] is False and "tiles" not in risk["risk"]
    assert "changed since it was attached" in risk["risk"]["problem"]
    refused = officer.get(url)
    assert refused.status_code == 409 and "attach it again" in refused.json()["detail"]
    page = officer.get("/").text
    assert "is not shown" in page and 'value="risk"' not in page
    served.map_path.unlink()
    gone = officer.get("/tiles/layers.json").json()["layers"]
    assert "cannot be read" in next(x for x in gone if x["id"] == "risk")["problem"]


def test_record_risk_from_risk_score(served: Served, as_user) -> None:
    officer = as_user("officer")
    found = officer.get(f"/api/records/{served.ids['cha']}/risk").json()
    risk, _ = _cell_centres(served.map_path)
    assert 0 <= found["mean_risk"] <= found["max_risk"] <= float(np.nanmax(risk))
    assert found["model_version"] == served.model_version and found["cells"] > 0
    task = officer.get(f"/api/records/{served.ids['task']}/risk").json()
    assert task["record_type"] == "task"
    missing = officer.get(f"/api/records/{served.ids['district']}/risk")
    assert missing.status_code == 404 and "no risk score" in missing.json()["detail"]


def test_hazard_tiles_carry_the_mean_risk_of_each_area(served: Served, as_user) -> None:
    officer = as_user("officer")
    listed = {layer["id"]: layer for layer in officer.get("/tiles/layers.json").json()["layers"]}
    assert "risk_mean" in listed["hazardous_area"]["properties"]
    features: dict[str, dict] = {}
    for zoom in (14, 10):  # drawn as they are, and generalised
        tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, zoom)
        response = officer.get(f"/tiles/hazardous_area/{tile.z}/{tile.x}/{tile.y}.pbf")
        assert response.status_code == 200
        decoded = mapbox_vector_tile.decode(response.content)["hazardous_area"]["features"]
        features.update({f["properties"]["record_id"]: f["properties"] for f in decoded})
    scored = features[served.ids["cha"]]
    expected = officer.get(f"/api/records/{served.ids['cha']}/risk").json()["mean_risk"]
    assert scored["risk_mean"] == pytest.approx(expected)
    with served.app.state.register.store.read() as conn:  # type: ignore[attr-defined]
        unscored = set(features) - set(conn.scalars(select(risk_score.c.record_id)))
    assert all("risk_mean" not in features[record_id] for record_id in unscored)


def test_no_layer_without_a_map(login) -> None:
    officer = login("officer")
    assert "risk" not in {
        layer["id"] for layer in officer.get("/tiles/layers.json").json()["layers"]
    }
    assert officer.get("/tiles/risk/10/650/385.png").status_code == 404
    assert "risk-legend" not in officer.get("/").text


def test_a_clerk_reads_the_risk_of_its_own_organisation_s_tasks_only(scenario, login) -> None:
    rows = [
        {
            "record_id": task,
            "record_type": "task",
            "mean_risk": 0.4,
            "max_risk": 0.9,
            "cells": 3,
            "model_version": "maxent-test",
            "map_sha256": "0" * 64,
            "map_date": date(2026, 1, 1),
            "attached_by": "planner",
            "attached_at": now(),
        }
        for task in scenario.tasks.values()
    ]
    with scenario.register.store.begin() as conn:
        conn.execute(risk_score.insert(), rows)
    clerk = login("clerk")  # of organisation alpha
    own = clerk.get(f"/api/records/{scenario.tasks['alpha']}/risk")
    assert own.status_code == 200 and own.json()["max_risk"] == 0.9
    assert clerk.get(f"/api/records/{scenario.tasks['beta']}/risk").status_code == 403
    assert login("reviewer").get(f"/api/records/{scenario.tasks['beta']}/risk").status_code == 200
