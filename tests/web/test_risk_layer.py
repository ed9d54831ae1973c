"""The risk layer: PNG tiles of the attached risk maps, their listing, the map page, record
scores.

The map is built by the risk code itself from the tiny register of ``tests/risk/registers.py``,
on both backends; a second map, attached after it, is that map with its risk turned around.
"""

from __future__ import annotations

import hashlib
import io
import os
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
from rasterio.transform import Affine
from rio_tiler.colormap import cmap
from rio_tiler.io import Reader
from sqlalchemy import select

from safeground.risk.attach import attach_map
from safeground.risk.evidence import resolve_region
from safeground.risk.riskmap import build_map
from safeground.service import accounts
from safeground.service.register import Register, now
from safeground.storage.generations import ViewChanges
from safeground.storage.schema import risk_score
from safeground.web.app import create_app
from safeground.web.risk import Verified
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


def _pixel_at(
    client: TestClient, lon: float, lat: float, tiles: str = "/tiles/risk"
) -> tuple[int, ...]:
    """The RGBA of the pixel at lon/lat of the risk tile under ``tiles``."""
    tile = WEB_MERCATOR.tile(lon, lat, ZOOM)
    response = client.get(f"{tiles}/{tile.z}/{tile.x}/{tile.y}.png")
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


def _cha_cell(path: Path) -> tuple[tuple[float, float], tuple[int, ...]]:
    """Lon/lat of the mapped cell nearest the CHA (whose risk is high), and its ramp colour."""
    risk, centres = _cell_centres(path)
    flat = risk.ravel()
    cha = registers.CHA.centroid
    valued = min(
        (i for i in np.flatnonzero(np.isfinite(flat))),
        key=lambda i: (centres[i][0] - cha.x) ** 2 + (centres[i][1] - cha.y) ** 2,
    )
    colour = VIRIDIS[int(np.floor(255 * float(flat[valued])))]
    return centres[valued], tuple(int(v) for v in colour)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attach_a_newer_map(served: Served) -> Path:
    """The fixture's map turned around, attached after it: as if mapped again after new
    survey evidence."""
    newer = registers.turned_around(
        served.map_path, served.map_path.with_name("risk-newer.tif"), "maxent-newer"
    )
    attach_map(served.app.state.register, newer, "planner")  # type: ignore[attr-defined]
    return newer


def test_tiles_draw_the_map_with_the_ramp(served: Served, as_user) -> None:
    officer = as_user("officer")
    centre, expected = _cha_cell(served.map_path)
    assert _pixel_at(officer, *centre) == expected
    assert expected[3] == 255

    risk, centres = _cell_centres(served.map_path)
    nodata = np.flatnonzero(np.isnan(risk.ravel()))
    assert nodata.size, "the district's corners leave cells without a value"
    assert _pixel_at(officer, *centres[nodata[0]])[3] == 0  # transparent

    # Far from the map (Lisbon), and beyond the zoom range.
    tile = WEB_MERCATOR.tile(-9.14, 38.72, ZOOM)
    assert officer.get(f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png").status_code == 204
    assert officer.get("/tiles/risk/3/8/0.png").status_code == 400


def test_only_roles_that_see_records_get_the_layer(served: Served, as_user) -> None:
    tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, ZOOM)
    sha256 = _sha256(served.map_path)
    urls = [
        f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png",
        f"/tiles/risk/{sha256}/{tile.z}/{tile.x}/{tile.y}.png",
    ]
    visitor = as_user("visitor")
    for url in urls:
        assert TestClient(served.app).get(url).status_code == 401
        assert visitor.get(url).status_code == 403
        assert as_user("officer").get(url).status_code == 200
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
    [only] = risk["maps"]
    assert only["map_sha256"] == risk["map_sha256"] == sha256
    assert only["tiles"][0].endswith(f"/tiles/risk/{sha256}/{{z}}/{{x}}/{{y}}.png")
    assert [stop["risk"] for stop in risk["legend"]][::4] == [0.0, 1.0]
    assert risk["legend"][0]["colour"] == "#{:02x}{:02x}{:02x}".format(*VIRIDIS[0][:3])
    west, south, east, north = risk["bounds"]
    assert west < registers.CHA.centroid.x < east and south < registers.CHA.centroid.y < north
    page = officer.get("/").text
    assert 'value="risk"' in page and risk["title"] in page and "linear-gradient" in page
    assert 'name="risk-map"' not in page  # nothing to choose from


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


def test_every_attached_map_is_listed_newest_first_and_drawn_from_its_own_tiles(
    served: Served, as_user
) -> None:
    newer = _attach_a_newer_map(served)
    officer = as_user("officer")
    risk = {x["id"]: x for x in officer.get("/tiles/layers.json").json()["layers"]}["risk"]
    shas = [_sha256(newer), _sha256(served.map_path)]
    assert [m["map_sha256"] for m in risk["maps"]] == shas
    assert [m["model_version"] for m in risk["maps"]] == ["maxent-newer", served.model_version]
    assert risk["maps"][0]["attached_at"] > risk["maps"][1]["attached_at"]
    assert risk["map_sha256"] == shas[0] and risk["title"] == risk["maps"][0]["title"]
    for listed, sha256 in zip(risk["maps"], shas, strict=True):
        assert listed["available"] is True and listed["legend"] == risk["legend"]
        assert listed["tiles"][0].endswith(f"/tiles/risk/{sha256}/{{z}}/{{x}}/{{y}}.png")

    # Each map's tiles are its own: at the CHA the earlier map is high, the newer low.
    centre, earlier_colour = _cha_cell(served.map_path)
    _, newer_colour = _cha_cell(newer)
    assert earlier_colour != newer_colour
    assert _pixel_at(officer, *centre, tiles=f"/tiles/risk/{shas[1]}") == earlier_colour
    assert _pixel_at(officer, *centre, tiles=f"/tiles/risk/{shas[0]}") == newer_colour
    assert _pixel_at(officer, *centre) == newer_colour  # the current map: the newest
    missing = officer.get(f"/tiles/risk/{'0' * 64}/{ZOOM}/0/0.png")
    assert missing.status_code == 404 and "no risk map with SHA-256" in missing.json()["detail"]

    page = officer.get("/").text
    assert 'name="risk-map"' in page
    assert page.index(f'value="{shas[0]}" selected') < page.index(f'value="{shas[1]}"')


def test_a_changed_file_is_refused_for_its_own_map_only(served: Served, as_user) -> None:
    newer = _attach_a_newer_map(served)
    officer = as_user("officer")
    tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, ZOOM)
    newer_url, earlier_url = (
        f"/tiles/risk/{_sha256(path)}/{tile.z}/{tile.x}/{tile.y}.png"
        for path in (newer, served.map_path)
    )

    def listed() -> list[dict]:
        layers = officer.get("/tiles/layers.json").json()["layers"]
        return next(x for x in layers if x["id"] == "risk")["maps"]

    with newer.open("ab") as f:
        f.write(b"\0")
    newest, earlier = listed()
    assert newest["available"] is False and "tiles" not in newest
    assert "changed since it was attached" in newest["problem"]
    assert earlier["available"] is True
    assert officer.get(newer_url).status_code == 409
    assert officer.get(f"/tiles/risk/{tile.z}/{tile.x}/{tile.y}.png").status_code == 409
    assert officer.get(earlier_url).status_code == 200
    page = officer.get("/").text  # the earlier map may still be chosen; the newest says why not
    assert 'value="risk"' in page and "(cannot be shown)" in page
    assert f"{newest['title']} is not shown: the risk map file" in page

    served.map_path.unlink()
    newest, earlier = listed()
    assert earlier["available"] is False and "cannot be read" in earlier["problem"]
    assert officer.get(earlier_url).status_code == 409
    page = officer.get("/").text  # nothing left to draw: each map says why
    assert 'value="risk"' not in page and page.count("is not shown") == 2


def test_each_map_is_opened_once_across_listings(served: Served, as_user, monkeypatch) -> None:
    """The bounds are read with the hash and kept: the listing, which every map page load
    asks for, opens no map file again while the file is unchanged."""
    newer = _attach_a_newer_map(served)
    opened: list[str] = []

    def counting_reader(path: str, *args, **kwargs) -> Reader:
        opened.append(path)
        return Reader(path, *args, **kwargs)

    monkeypatch.setattr("safeground.web.risk.Reader", counting_reader)
    officer = as_user("officer")
    listings = [officer.get("/tiles/layers.json").json()["layers"] for _ in range(2)]
    assert listings[0] == listings[1]
    assert "risk-legend" in officer.get("/").text
    assert sorted(opened) == sorted([str(newer), str(served.map_path)])


def test_a_replaced_file_is_refused_then_listed_with_its_own_bounds(
    served: Served, as_user
) -> None:
    """Once bounds are kept, a file replaced by another map is still refused, and once
    attached again it is listed with the new map's bounds, not the ones kept."""
    officer = as_user("officer")

    def risk_layer() -> dict:
        layers = officer.get("/tiles/layers.json").json()["layers"]
        return next(x for x in layers if x["id"] == "risk")

    before = risk_layer()["bounds"]
    moved = served.map_path.with_name("moved.tif")
    with rasterio.open(served.map_path) as src:
        profile, tags, values = src.profile, src.tags(), src.read(1)
    profile["transform"] @= Affine.translation(5, 0)  # five cells east
    with rasterio.open(moved, "w", **profile) as dst:
        dst.write(values, 1)
        dst.update_tags(**tags)
    moved.replace(served.map_path)
    refused = risk_layer()
    assert refused["available"] is False and "changed since it was attached" in refused["problem"]

    attach_map(served.app.state.register, served.map_path, "planner")  # type: ignore[attr-defined]
    listed = risk_layer()
    assert listed["available"] is True and listed["map_sha256"] == _sha256(served.map_path)
    assert listed["bounds"][0] > before[0] and listed["bounds"][2] > before[2]


def test_the_hash_cache_holds_several_files_and_sees_a_change(tmp_path: Path) -> None:
    verified = Verified(capacity=2)
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for path in (first, second, third):
        path.write_bytes(path.name.encode())

    def rewrite_keeping_size_and_time(path: Path) -> None:
        """Bytes that only a new hash would notice: the cache must answer from memory."""
        stat = path.stat()
        path.write_bytes(path.read_bytes().upper())
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    digests = {path: verified.sha256(path) for path in (first, second)}
    for path in (first, second):
        rewrite_keeping_size_and_time(path)
        assert verified.sha256(path) == digests[path]  # both remembered, neither rehashed
    os.utime(first, ns=(0, 0))
    assert verified.sha256(first) == _sha256(first)  # a new time: hashed again
    verified.sha256(third)  # over capacity: the file used longest ago (second) is forgotten
    assert verified.sha256(second) == _sha256(second)


def test_record_risk_from_risk_score(served: Served, as_user) -> None:
    officer = as_user("officer")
    found = officer.get(f"/api/records/{served.ids['cha']}/risk").json()
    risk, _ = _cell_centres(served.map_path)
    assert 0 <= found["mean_risk"] <= found["max_risk"] <= float(np.nanmax(risk))
    assert found["model_version"] == served.model_version and found["cells"] > 0
    [only] = found["maps"]
    assert only == {k: v for k, v in found.items() if k not in ("record_id", "record_type", "maps")}
    task = officer.get(f"/api/records/{served.ids['task']}/risk").json()
    assert task["record_type"] == "task"
    missing = officer.get(f"/api/records/{served.ids['district']}/risk")
    assert missing.status_code == 404 and "no risk score" in missing.json()["detail"]


def _means(served: Served) -> dict[str, dict[str, float]]:
    """Each attached map's mean risk of each record it scored, by SHA-256 then record."""
    means: dict[str, dict[str, float]] = {}
    with served.app.state.register.store.read() as conn:  # type: ignore[attr-defined]
        for row in conn.execute(select(risk_score)):
            means.setdefault(row.map_sha256, {})[row.record_id] = row.mean_risk
    return means


def _forget_score(served: Served, record_id: str, map_sha256: str) -> None:
    """As if that map had not covered the record (a write: the tiles are drawn again)."""
    store = served.app.state.register.store  # type: ignore[attr-defined]
    with store.begin() as conn:
        conn.execute(
            risk_score.delete().where(
                risk_score.c.record_id == record_id, risk_score.c.map_sha256 == map_sha256
            )
        )
        store.after_write(conn, ViewChanges.everywhere(["risk_score"]))


def test_record_risk_lists_every_map_over_it_newest_first(served: Served, as_user) -> None:
    newer = _attach_a_newer_map(served)
    earlier_sha, newer_sha = _sha256(served.map_path), _sha256(newer)
    means = _means(served)
    officer = as_user("officer")
    cha = served.ids["cha"]
    found = officer.get(f"/api/records/{cha}/risk").json()
    assert found["map_sha256"] == newer_sha and found["model_version"] == "maxent-newer"
    assert found["mean_risk"] == pytest.approx(means[newer_sha][cha])
    assert [m["map_sha256"] for m in found["maps"]] == [newer_sha, earlier_sha]
    assert [m["mean_risk"] for m in found["maps"]] == pytest.approx(
        [means[newer_sha][cha], means[earlier_sha][cha]]
    )
    assert found["maps"][1]["model_version"] == served.model_version
    # A record the newest map does not cover shows the earlier map's score, as before.
    sha_area = served.ids["sha"]
    _forget_score(served, sha_area, newer_sha)
    found = officer.get(f"/api/records/{sha_area}/risk").json()
    assert found["map_sha256"] == earlier_sha
    assert found["mean_risk"] == pytest.approx(means[earlier_sha][sha_area])
    assert [m["map_sha256"] for m in found["maps"]] == [earlier_sha]


def _hazard_tile(client: TestClient, zoom: int, risk_map: str | None = None) -> dict[str, dict]:
    """The properties of the hazardous areas in the tile holding the CHA, by record."""
    tile = WEB_MERCATOR.tile(registers.CHA.centroid.x, registers.CHA.centroid.y, zoom)
    url = f"/tiles/hazardous_area/{tile.z}/{tile.x}/{tile.y}.pbf"
    response = client.get(url, params={"risk_map": risk_map} if risk_map else None)
    assert response.status_code == 200, response.text
    decoded = mapbox_vector_tile.decode(response.content)["hazardous_area"]["features"]
    return {f["properties"]["record_id"]: f["properties"] for f in decoded}


def _risk_means(features: dict[str, dict]) -> dict[str, float]:
    return {i: p["risk_mean"] for i, p in features.items() if "risk_mean" in p}


def test_hazard_tiles_carry_the_mean_risk_of_the_map_named(served: Served, as_user) -> None:
    """Each map's tiles carry that map's means, at a detail and a generalised zoom; without a
    map named, those of the map attached last. Asked back and forth, each comes from its own
    entry of the tile cache."""
    newer = _attach_a_newer_map(served)
    earlier_sha, newer_sha = _sha256(served.map_path), _sha256(newer)
    means = _means(served)
    cha = served.ids["cha"]
    assert means[earlier_sha][cha] != pytest.approx(means[newer_sha][cha])
    officer = as_user("officer")
    for zoom in (14, 10):
        for sha in (earlier_sha, newer_sha, earlier_sha):
            carried = _risk_means(_hazard_tile(officer, zoom, sha))
            assert cha in carried and carried == pytest.approx({i: means[sha][i] for i in carried})
            assert set(carried) <= set(means[sha])
        assert _risk_means(_hazard_tile(officer, zoom)) == pytest.approx(
            _risk_means(_hazard_tile(officer, zoom, newer_sha))
        )

    # An area the newest map does not cover: unscored in its tiles, and so by default (the
    # map attached last, as the risk layer draws); the earlier map's tiles still score it.
    sha_area = served.ids["sha"]
    _forget_score(served, sha_area, newer_sha)
    tile = WEB_MERCATOR.tile(registers.SHA.centroid.x, registers.SHA.centroid.y, 14)
    url = f"/tiles/hazardous_area/{tile.z}/{tile.x}/{tile.y}.pbf"

    def carried_by(params: dict[str, str] | None) -> dict:
        response = officer.get(url, params=params)
        assert response.status_code == 200
        decoded = mapbox_vector_tile.decode(response.content)["hazardous_area"]["features"]
        return next(f["properties"] for f in decoded if f["properties"]["record_id"] == sha_area)

    assert "risk_mean" not in carried_by({"risk_map": newer_sha})
    assert "risk_mean" not in carried_by(None)
    assert carried_by({"risk_map": earlier_sha})["risk_mean"] == pytest.approx(
        means[earlier_sha][sha_area]
    )

    unknown = officer.get(url, params={"risk_map": "0" * 64})
    assert unknown.status_code == 404 and "no risk map with SHA-256" in unknown.json()["detail"]
    riskless = officer.get(f"/tiles/task/{tile.z}/{tile.x}/{tile.y}.pbf?risk_map={earlier_sha}")
    assert riskless.status_code == 400 and "carries no risk" in riskless.json()["detail"]


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
