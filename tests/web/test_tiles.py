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

from safeground.service import tiles as tiles_service
from safeground.service.register import Register
from safeground.service.tiles import CELLS, DETAIL_ZOOM, EXTENT, TileAddress, TileCache
from safeground.storage.generations import ChangeLog
from safeground.web.app import create_app
from safeground.web.settings import Settings
from tests.conftest import POSTGIS_URL
from tests.helpers import add, keep_one_score, update
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


# -- what a write redraws -------------------------------------------------------------------


@pytest.fixture
def draws(monkeypatch) -> list[tuple[str, int, int, int]]:
    """Every tile drawn (layer, z, x, y), on either backend."""
    drawn: list[tuple[str, int, int, int]] = []
    for name in ("_gpkg_tile", "_postgis_tile"):
        original = getattr(tiles_service, name)

        def counted(conn, store, layer, address, where, original=original):
            drawn.append((layer.id, address.z, address.x, address.y))
            return original(conn, store, layer, address, where)

        monkeypatch.setattr(tiles_service, name, counted)
    return drawn


def properties(client, data, layer, z, x, y, **params) -> dict[str, dict]:
    features = decode(fetch(client, layer, z, x, y, data.im_token, **params), layer)
    key = "activity_id" if layer == "processed_land" else "record_id"
    return {f["properties"][key]: f["properties"] for f in features}


NATIONAL = tile_of(47.1, 39.5, 6)
WEST = tile_of(47.0, 39.5, 12)  # hazards 0-2, the land cleared and the item found on hazard 0
EAST = tile_of(47.2, 39.5, 12)  # the triangle (the last hazard) alone


def test_a_write_to_one_layer_keeps_the_tiles_of_the_others(served, store_location, draws):
    """An item found outside any area redraws the items' tiles there, and nothing else."""
    client, data = served
    asked = [
        ("hazardous_area", NATIONAL, {}),
        ("hazardous_area", WEST, {}),
        ("processed_land", WEST, {}),
        ("processed_land", WEST, {"admin_area": data.district}),
        ("task", WEST, {"admin_area": data.district}),
        ("accident", WEST, {}),
        ("admin_area", WEST, {}),
        ("eo_item", EAST, {}),
    ]
    before = [properties(client, data, layer, *zxy, **p) for layer, zxy, p in asked]
    assert len(draws) == len(asked)
    draws.clear()
    register = Register.open(store_location)
    between = "POINT(47.015 39.5015)"  # in the west tile, between hazards 1 and 2
    item = add(register, "eo_item", date(2022, 1, 1), category="uxo", geometry=between)
    register.store.engine.dispose()
    after = [properties(client, data, layer, *zxy, **p) for layer, zxy, p in asked]
    assert draws == [] and after == before  # every tile served as kept
    assert item in properties(client, data, "eo_item", *WEST)
    assert draws == [("eo_item", *WEST)]


def test_a_write_redraws_only_the_tiles_where_it_changed_its_layer(served, store_location, draws):
    client, data = served
    triangle = data.hazards[-1]
    for zxy in (NATIONAL, WEST, EAST):
        properties(client, data, "hazardous_area", *zxy)
    draws.clear()
    register = Register.open(store_location)
    update(register, triangle, "hazardous_area", date(2022, 2, 1), name="Renamed")
    register.store.engine.dispose()
    west = properties(client, data, "hazardous_area", *WEST)
    assert draws == []  # far from the change: kept
    assert properties(client, data, "hazardous_area", *EAST)[triangle]["name"] == "Renamed"
    properties(client, data, "hazardous_area", *NATIONAL)
    assert draws == [("hazardous_area", *EAST), ("hazardous_area", *NATIONAL)]
    # Known current at the new generations now: asked again, nothing is drawn.
    draws.clear()
    assert properties(client, data, "hazardous_area", *WEST) == west
    properties(client, data, "hazardous_area", *EAST)
    assert draws == []


def test_new_features_are_drawn_in_each_tile_they_meet(served, store_location, draws):
    """A tile is drawn again when a feature is added, moved away or retired in it."""
    client, data = served
    properties(client, data, "hazardous_area", *WEST)
    properties(client, data, "hazardous_area", *EAST)
    register = Register.open(store_location)
    moved = data.hazards[1]  # from the west tile to the east one
    update(register, moved, "hazardous_area", date(2022, 2, 1), geometry=hazard_box(20).wkt)
    register.store.engine.dispose()
    assert moved not in properties(client, data, "hazardous_area", *WEST)
    assert moved in properties(client, data, "hazardous_area", *EAST)


def test_a_district_filter_follows_the_areas_it_goes_through(served, store_location, draws):
    """Land belongs to a district through its hazardous area: a change to any area redraws
    the land's tiles filtered by district, wherever it is."""
    client, data = served
    district = {"admin_area": data.district}
    assert list(properties(client, data, "processed_land", *WEST, **district)) == [data.activity]
    assert list(properties(client, data, "processed_land", *WEST, **district)) == [data.activity]
    assert draws == [("processed_land", *WEST)]
    register = Register.open(store_location)
    update(register, data.hazards[0], "hazardous_area", date(2022, 2, 1), admin_area_id=None)
    register.store.engine.dispose()
    assert properties(client, data, "processed_land", *WEST, **district) == {}
    assert list(properties(client, data, "processed_land", *WEST)) == [data.activity]


def test_risk_scores_redraw_the_hazard_tiles(served, store_location, draws, tmp_path):
    client, data = served
    assert "risk_mean" not in properties(client, data, "hazardous_area", *WEST)[data.hazards[0]]
    properties(client, data, "eo_item", *WEST)
    register = Register.open(store_location)
    keep_one_score(register, tmp_path, data.hazards[0])
    register.store.engine.dispose()
    draws.clear()
    hazards = properties(client, data, "hazardous_area", *WEST)
    assert hazards[data.hazards[0]]["risk_mean"] == pytest.approx(0.5)
    properties(client, data, "eo_item", *WEST)
    assert draws == [("hazardous_area", *WEST)]


def test_a_process_too_far_behind_draws_the_layer_again(served, store_location, draws):
    """When the store no longer holds where the writes since a tile was drawn were, the tile
    is drawn again, even far from them."""
    client, data = served
    client.app.state.tile_cache = TileCache(log=ChangeLog(kept=1))
    properties(client, data, "hazardous_area", *WEST)
    register = Register.open(store_location)
    for name in ("Once", "Twice"):
        update(register, data.hazards[-1], "hazardous_area", date(2022, 2, 1), name=name)
    register.store.engine.dispose()
    draws.clear()
    properties(client, data, "hazardous_area", *WEST)
    assert draws == [("hazardous_area", *WEST)]


def test_a_tile_is_kept_across_generations_it_is_known_current_at():
    cache = TileCache()
    drawn: list[tuple[int, ...]] = []
    asked: list[tuple[int, ...]] = []

    def draw_at(at):
        def draw() -> bytes:
            drawn.append(at)
            return f"tile {at}".encode()

        return draw

    def unchanged(since):
        asked.append(since)
        return True

    def get(at, still=unchanged):
        return cache.get_or_draw("key", draw_at(at), at, still)

    assert get((5, 1)) == b"tile (5, 1)"
    assert get((7, 1)) == b"tile (5, 1)" and asked == [(5, 1)]  # nothing changed since
    assert get((6, 1)) == b"tile (5, 1)" and asked == [(5, 1)]  # known current 5 to 7
    assert get((4, 1)) == b"tile (4, 1)"  # an older snapshot: drawn for it, not kept
    assert get((7, 1)) == b"tile (5, 1)" and drawn == [(5, 1), (4, 1)]
    assert get((7, 2), lambda since: False) == b"tile (7, 2)"  # changed: drawn again
    assert get((7, 2)) == b"tile (7, 2)" and get((6, 2)) == b"tile (6, 2)"
    assert drawn == [(5, 1), (4, 1), (7, 2), (6, 2)]
    assert cache.get("key", (7, 2)) == b"tile (7, 2)"
