"""Vector tiles under /tiles, on both backends, and the same tiles from both."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import mapbox_vector_tile
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from sqlalchemy import create_engine

from safeground.service.register import Register
from safeground.service.tiles import CELLS, DETAIL_ZOOM, EXTENT, TileAddress, TileCache
from safeground.web.app import create_app
from safeground.web.settings import Settings
from tests.conftest import POSTGIS_URL
from tests.helpers import add
from tests.web.layer_data import MapData, bearer, build, hazard_box


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def start(location: str) -> tuple[TestClient, MapData]:
    register = Register.create(location, country="AZ")
    data = build(register)
    register.store.engine.dispose()
    return TestClient(create_app(Settings(store=location))), data


@pytest.fixture
def served(store_location: str) -> Iterator[tuple[TestClient, MapData]]:
    client, data = start(store_location)
    with client:
        yield client, data
    client.app.state.register.store.engine.dispose()


def fetch(client, layer, z, x, y, token=None, **params):
    headers = bearer(token) if token else {}
    return client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", params=params, headers=headers)


def decode(response, layer) -> list[dict]:
    """Features of a tile with their geometry back in lon/lat."""
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return mapbox_vector_tile.decode(response.content)[layer]["features"]


def record_ids(features) -> list[str]:
    return sorted(f["properties"]["record_id"] for f in features)


def to_lonlat(geometry: dict, address: TileAddress):
    """A decoded tile geometry (tile units, y up) in lon/lat."""
    minx, miny, _, _ = address.bounds()
    scale = address.size / EXTENT

    def unproject(xy):
        mx, my = minx + xy[:, 0] * scale, miny + xy[:, 1] * scale
        lon = mx / 20037508.342789244 * 180
        lat = [math.degrees(2 * math.atan(math.exp(v / 20037508.342789244 * math.pi)) - math.pi / 2)
               for v in my]  # fmt: skip
        return list(zip(lon, lat, strict=True))

    return shapely.transform(shape(geometry), lambda xy: shapely.get_coordinates(
        shapely.points(unproject(xy))))  # fmt: skip


def test_layers_json_follows_the_role(served):
    client, data = served
    public = client.get("/tiles/layers.json").json()
    assert [layer["id"] for layer in public["layers"]] == ["admin_area"]
    trusted = client.get("/tiles/layers.json", headers=bearer(data.im_token)).json()
    hazards = next(layer for layer in trusted["layers"] if layer["id"] == "hazardous_area")
    assert {"record_id", "classification", "status", "feature_count"} <= set(hazards["properties"])
    assert hazards["tiles"][0].endswith("/tiles/hazardous_area/{z}/{x}/{y}.pbf")
    assert hazards["maxzoom"] == DETAIL_ZOOM
    assert {"admin_area", "operator", "status", "since", "until"} == set(hazards["filters"])
    land = next(layer for layer in trusted["layers"] if layer["id"] == "processed_land")
    assert "land_type" in land["properties"]


def test_detail_tiles_hold_every_feature_as_drawn(served):
    client, data = served
    z, x, y = tile_of(47.0, 39.5, 14)
    address = TileAddress(z, x, y)
    features = decode(fetch(client, "hazardous_area", z, x, y, data.im_token), "hazardous_area")
    tile_box = shapely.box(*address.lonlat_bounds(0))
    expected = sorted(
        h for i, h in enumerate(data.hazards[:12]) if hazard_box(i).intersects(tile_box)
    )
    assert expected and record_ids(features) == expected
    first = next(f for f in features if f["properties"]["record_id"] == data.hazards[0])
    assert first["properties"]["classification"] == "cha"
    assert first["properties"]["status"] == "worked_on"
    assert first["properties"]["feature_count"] == 1
    drawn = to_lonlat(first["geometry"], address)
    # Quantised to 1/4096 of the tile (about 2.4 m at zoom 14) and clipped to the tile.
    expected_shape = hazard_box(0).intersection(tile_box)
    assert drawn.symmetric_difference(expected_shape).area < 0.05 * expected_shape.area
    land = decode(fetch(client, "processed_land", z, x, y, data.im_token), "processed_land")
    assert [f["properties"]["land_type"] for f in land] == ["cleared"]
    items = decode(fetch(client, "eo_item", z, x, y, data.im_token), "eo_item")
    assert [f["properties"]["record_id"] for f in items] == [data.eo_item]
    assert items[0]["geometry"]["type"] == "Point"


def test_national_zooms_keep_one_small_feature_a_cell(served):
    client, data = served
    z, x, y = tile_of(47.1, 39.5, 8)
    features = decode(fetch(client, "hazardous_area", z, x, y, data.im_token), "hazardous_area")
    # At zoom 8 a cell is ~2.4 km: the 13 areas (0.01° = 860 m apart) share a few cells.
    assert 1 < len(features) < 13
    assert sum(f["properties"]["feature_count"] for f in features) == 13
    cells = {tuple(shapely.get_coordinates(shape(f["geometry"])).min(axis=0)) for f in features}
    assert len(cells) == len(features)  # one feature per cell
    for f in features:
        width = shapely.bounds(shape(f["geometry"]))
        assert width[2] - width[0] == pytest.approx(EXTENT / CELLS, abs=1)
    # The cell holding a CHA shows it rather than an SHA.
    assert data.hazards[0] in record_ids(features)


def test_filters_and_periods(served):
    client, data = served
    z, x, y = tile_of(47.0, 39.5, 12)
    token = data.im_token
    open_ones = decode(
        fetch(client, "hazardous_area", z, x, y, token, status="open"), "hazardous_area"
    )
    assert data.hazards[0] not in record_ids(open_ones) and open_ones
    worked = decode(
        fetch(client, "hazardous_area", z, x, y, token, status="worked_on"), "hazardous_area"
    )
    assert record_ids(worked) == [data.hazards[0]]
    mine = decode(
        fetch(client, "hazardous_area", z, x, y, token, operator=data.org_a), "hazardous_area"
    )
    assert {f["properties"]["organisation_id"] for f in mine} == {data.org_a}
    period = decode(
        fetch(client, "hazardous_area", z, x, y, token, since="2021-03-02", until="2021-03-03"),
        "hazardous_area",
    )
    assert record_ids(period) == sorted(data.hazards[1:3])
    assert fetch(client, "hazardous_area", z, x, y, token, until="2020-01-01").status_code == 204


def test_empty_and_bad_requests(served):
    client, data = served
    assert fetch(client, "hazardous_area", 14, 0, 0, data.im_token).status_code == 204
    for z, x, y, params, word in [
        (23, 0, 0, {}, "zoom"),
        (3, 8, 0, {}, "outside"),
        (12, 2583, 1552, {"since": "soon"}, "since"),
        (12, 2583, 1552, {"since": "2021-03-05", "until": "2021-03-01"}, "before"),
    ]:
        response = fetch(client, "hazardous_area", z, x, y, data.im_token, **params)
        assert response.status_code == 400, (z, x, y, params)
        assert word in response.json()["detail"]
    refused = fetch(client, "accident", 12, 2583, 1552, data.im_token, status="open")
    assert refused.status_code == 400
    assert fetch(client, "nothing", 1, 0, 0, data.im_token).status_code == 404


def test_roles(served):
    client, data = served
    z, x, y = tile_of(47.0, 39.5, 10)
    assert fetch(client, "hazardous_area", z, x, y).status_code == 401
    districts = decode(fetch(client, "admin_area", z, x, y), "admin_area")
    assert record_ids(districts) == [data.district]
    z, x, y = tile_of(47.02, 39.5, 11)
    clerk_tasks = decode(fetch(client, "task", z, x, y, data.clerk_token), "task")
    assert record_ids(clerk_tasks) == [data.tasks[data.org_a]]
    all_tasks = decode(fetch(client, "task", z, x, y, data.im_token), "task")
    assert record_ids(all_tasks) == sorted(data.tasks.values())


@pytest.mark.postgis
def test_both_backends_draw_the_same_tiles(tmp_path):
    if not POSTGIS_URL:
        pytest.skip("no PostGIS: set SAFEGROUND_TEST_POSTGIS_URL (make test starts one)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGIS_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGIS_URL else "?"
    try:
        gpkg, data = start(str(tmp_path / "register.gpkg"))
        postgis, data_pg = start(f"{POSTGIS_URL}{separator}options=-csearch_path%3D{schema},public")
        compared = 0
        with gpkg, postgis:
            for z in (6, 8, 10, 12, 14, 16):
                z, x, y = tile_of(47.05, 39.5, z)
                for layer in ("hazardous_area", "processed_land", "eo_item", "accident", "task",
                              "admin_area"):  # fmt: skip
                    a = decode(fetch(gpkg, layer, z, x, y, data.im_token), layer)
                    b = decode(fetch(postgis, layer, z, x, y, data_pg.im_token), layer)
                    key = lambda f: sorted(f["properties"].items())  # noqa: E731
                    a, b = sorted(a, key=key), sorted(b, key=key)
                    assert [f["properties"] for f in a] == [f["properties"] for f in b], (z, layer)
                    for fa, fb in zip(a, b, strict=True):
                        ga, gb = shape(fa["geometry"]), shape(fb["geometry"])
                        assert ga.geom_type.removeprefix("Multi") == gb.geom_type.removeprefix(
                            "Multi"
                        )
                        # Both quantise to the same grid; simplification may differ by a unit.
                        assert ga.hausdorff_distance(gb) <= 2, (z, layer, fa["properties"])
                    compared += len(a)
        assert compared > 30
    finally:
        for client in (gpkg, postgis):
            client.app.state.register.store.engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def test_cell_square_is_where_the_feature_is(served):
    """A generalised area is drawn in the cell that holds its centre."""
    client, data = served
    z, x, y = tile_of(47.0, 39.5, 9)
    address = TileAddress(z, x, y)
    features = decode(fetch(client, "hazardous_area", z, x, y, data.im_token), "hazardous_area")
    index = {h: i for i, h in enumerate(data.hazards[:12])}
    for f in features:
        rid = f["properties"]["record_id"]
        if rid in index:
            cell = to_lonlat(f["geometry"], address)
            assert cell.buffer(1e-9).contains(box(*hazard_box(index[rid]).bounds).centroid)


def test_an_approval_redraws_cached_tiles(served, store_location):
    client, data = served
    z, x, y = tile_of(47.0, 39.5, 12)
    before = record_ids(
        decode(fetch(client, "hazardous_area", z, x, y, data.im_token), "hazardous_area")
    )
    register = Register.open(store_location)
    new = add(
        register,
        "hazardous_area",
        date(2022, 1, 1),
        geometry=box(47.001, 39.505, 47.003, 39.507).wkt,
    )
    register.store.engine.dispose()
    after = record_ids(
        decode(fetch(client, "hazardous_area", z, x, y, data.im_token), "hazardous_area")
    )
    assert after == sorted([*before, new])


def test_tile_cache_keeps_to_its_byte_budget():
    cache = TileCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # now the most recently used
    cache.put("c", b"1")
    assert cache.get("b") is not None and cache.get("b") != b"12345"
    assert cache.get("a") == b"12345" and cache.get("c") == b"1"
    cache.put("empty", None)
    assert cache.get("empty") is None


def test_a_tile_asked_for_by_many_at_once_is_drawn_once():
    cache = TileCache()
    drawn: list[str] = []
    started = threading.Barrier(8)

    def draw() -> bytes:
        drawn.append(threading.current_thread().name)
        time.sleep(0.2)
        return b"tile"

    def ask() -> bytes | None:
        started.wait()
        return cache.get_or_draw(("hazardous_area", 6), draw)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ask(), range(8)))
    assert answers == [b"tile"] * 8 and len(drawn) == 1
    assert cache.get_or_draw(("hazardous_area", 6), draw) == b"tile" and len(drawn) == 1


def test_when_a_drawing_fails_a_waiting_request_draws_the_tile():
    cache = TileCache()
    first_began, calls = threading.Event(), []

    def draw() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            first_began.set()
            time.sleep(0.2)
            raise RuntimeError("connection lost")
        return b"tile"

    with ThreadPoolExecutor(2) as pool:
        failing = pool.submit(cache.get_or_draw, "key", draw)
        first_began.wait()
        waiting = pool.submit(cache.get_or_draw, "key", draw)
        with pytest.raises(RuntimeError, match="connection lost"):
            failing.result()
        assert waiting.result() == b"tile"
    assert len(calls) == 2
