"""OGC API - Features under /ogc, on both backends; and read by real clients (OWSLib, GDAL)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace

import numpy as np
import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import mapping, shape
from sqlalchemy import event

from safeground.domain.access import Principal, Role
from safeground.service import layers
from safeground.service.register import Register
from safeground.web.app import create_app
from safeground.web.ogc import CONFORMANCE
from safeground.web.settings import Settings
from tests.helpers import add, update
from tests.web.conftest import headers_by_scheme
from tests.web.layer_data import (
    DISTRICT,
    TRIANGLE,
    VICTIM_NAME,
    MapData,
    bearer,
    build,
    hazard_box,
    serve,
)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
ALL_LAYERS = {"hazardous_area", "processed_land", "eo_item", "accident", "task", "admin_area"}


@pytest.fixture
def served(store_location: str) -> Iterator[tuple[TestClient, MapData]]:
    register = Register.create(store_location, country="AZ")
    data = build(register)
    register.store.engine.dispose()
    app = create_app(Settings(store=store_location))
    with TestClient(app) as client:
        yield client, data
    app.state.register.store.engine.dispose()


def items(client, data, collection, token=None, **params):
    token = token or data.im_token
    return client.get(f"/ogc/collections/{collection}/items", params=params, headers=bearer(token))


def ids(response):
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_landing_and_conformance(served):
    client, _ = served
    landing = client.get("/ogc").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["data"].endswith("/ogc/collections")
    assert client.get("/ogc/conformance").json()["conformsTo"] == CONFORMANCE
    api = client.get("/ogc/api")
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    document = api.json()
    assert document["openapi"] == "3.0.3"
    assert "/ogc/collections/{collection_id}/items" in document["paths"]
    assert '"null"' not in json.dumps(document)  # no OpenAPI 3.1 null types left


def test_the_api_definition_declares_the_credentials_each_operation_takes(served):
    """/ogc/api is a valid OpenAPI 3.0 document whose security schemes are the credentials the
    server takes (a bearer API token, HTTP Basic with a token as password, the session cookie),
    and each operation answers as its security says: without credentials only where ``{}`` is
    allowed (or none is asked), and with each scheme it lists."""
    import jsonschema_rs
    from schemathesis.specs.openapi.definitions import OPENAPI_30  # OAS 3.0's JSON Schema

    client, data = served
    document = client.get("/ogc/api").json()
    validator = jsonschema_rs.Draft4Validator(OPENAPI_30)
    assert [error.message for error in validator.iter_errors(document)] == []
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s.get("scheme") or s["in"]) for name, s in schemes.items()} == {
        "apiToken": ("http", "bearer"),
        "apiTokenBasic": ("http", "basic"),
        "session": ("apiKey", "cookie"),
    }
    assert schemes["session"]["name"] == "safeground_session"

    sent = headers_by_scheme(client, "clerk", "long-enough-password", data.clerk_token)
    anonymous = set()
    for path, operations in document["paths"].items():
        feature = data.district if "/admin_area/" in path else data.hazards[0]
        url = path.replace("{collection_id}", "hazardous_area").replace("{feature_id}", feature)
        for method, operation in operations.items():
            security = operation.get("security", document["security"])
            named = {name for requirement in security for name in requirement}
            assert named <= set(schemes), (path, named)
            answer = client.request(method, url)
            if not security or {} in security:
                anonymous.add(path)
                assert answer.status_code == 200, (path, answer.text)
            else:
                assert answer.status_code == 401, (path, answer.text)
                assert answer.headers["WWW-Authenticate"].startswith("Basic ")
                assert "401" in operation["responses"]
            for name in named:
                assert client.request(method, url, headers=sent[name]).status_code == 200, path
    assert anonymous == {
        "/ogc",
        "/ogc/conformance",
        "/ogc/api",
        "/ogc/collections",
        "/ogc/collections/admin_area",
        "/ogc/collections/admin_area/items",
        "/ogc/collections/admin_area/items/{feature_id}",
    }
    # The public collection's own paths take only the filters it has.
    public_items = document["paths"]["/ogc/collections/admin_area/items"]["get"]
    assert {p["name"] for p in public_items["parameters"]} & set(layers.FILTERS) == {"admin_area"}


def test_collections_follow_the_role(served):
    client, data = served
    public = client.get("/ogc/collections").json()
    assert [c["id"] for c in public["collections"]] == ["admin_area"]
    trusted = client.get("/ogc/collections", headers=bearer(data.im_token)).json()
    assert {c["id"] for c in trusted["collections"]} == ALL_LAYERS
    clerk = client.get("/ogc/collections", headers=bearer(data.clerk_token)).json()
    assert {c["id"] for c in clerk["collections"]} == ALL_LAYERS
    assert client.get("/ogc/collections/hazardous_area/items").status_code == 401
    assert client.get("/ogc/collections/hazardous_area").status_code == 401
    assert client.get("/ogc/collections/nothing", headers=bearer(data.im_token)).status_code == 404
    assert ids(client.get("/ogc/collections/admin_area/items")) == [data.district]


def test_collection_metadata(served):
    client, data = served
    meta = client.get("/ogc/collections/hazardous_area", headers=bearer(data.im_token)).json()
    minx, miny, maxx, maxy = meta["extent"]["spatial"]["bbox"][0]
    assert minx == pytest.approx(47.0) and maxx == pytest.approx(47.21, abs=1e-5)
    assert miny == pytest.approx(39.5) and maxy == pytest.approx(39.51, abs=1e-5)
    assert meta["extent"]["temporal"]["interval"][0] == [
        "2021-03-02T00:00:00Z",
        "2021-06-01T00:00:00Z",
    ]
    assert meta["storageCrs"] == CRS84
    # The district lies in UTM zone 38N (42°-48° E).
    assert meta["crs"] == [CRS84, f"{EPSG}4326", f"{EPSG}3857", f"{EPSG}32638"]
    assert any(link["rel"] == "items" for link in meta["links"])


def test_paging_with_links(served):
    client, data = served
    first = items(client, data, "hazardous_area", limit=5).json()
    assert first["numberMatched"] == 13 and first["numberReturned"] == 5
    assert [f["id"] for f in first["features"]] == data.hazards[:5]
    links = {link["rel"]: link["href"] for link in first["links"]}
    assert "prev" not in links
    second = client.get(links["next"], headers=bearer(data.im_token)).json()
    assert [f["id"] for f in second["features"]] == data.hazards[5:10]
    links = {link["rel"]: link["href"] for link in second["links"]}
    assert "offset=0" in links["prev"]
    last = client.get(links["next"], headers=bearer(data.im_token)).json()
    assert [f["id"] for f in last["features"]] == data.hazards[10:]
    assert "next" not in {link["rel"] for link in last["links"]}


def test_features_carry_their_attributes_and_geometry(served):
    client, data = served
    feature = client.get(
        f"/ogc/collections/hazardous_area/items/{data.hazards[0]}", headers=bearer(data.im_token)
    )
    assert feature.status_code == 200
    assert feature.headers["content-type"].startswith("application/geo+json")
    assert feature.headers["content-crs"] == f"<{CRS84}>"
    body = feature.json()
    assert shape(body["geometry"]).equals(hazard_box(0))
    props = body["properties"]
    assert props["classification"] == "cha" and props["status"] == "worked_on"
    assert props["cleared_m2"] > 0 and props["remaining_m2"] < props["estimated_area_m2"]
    land = items(client, data, "processed_land").json()["features"]
    assert [f["id"] for f in land] == [f"{data.activity}.0"]
    one = client.get(
        f"/ogc/collections/processed_land/items/{data.activity}.0", headers=bearer(data.im_token)
    )
    assert one.json()["properties"]["land_type"] == "cleared"
    missing = f"/ogc/collections/processed_land/items/{data.activity}.9"
    assert client.get(missing, headers=bearer(data.im_token)).status_code == 404


@pytest.mark.parametrize("crs", [None, f"{EPSG}3857"])
def test_pages_are_the_features_as_shapely_and_json_write_them(served, crs):
    """The page's GeoJSON (written by GEOS, encoded by orjson) is exactly the stored features:
    coordinates as shapely's own mapping gives them, properties as Python's json writes them."""
    client, data = served
    store = client.app.state.register.store  # type: ignore[attr-defined]
    principal = Principal("reader", Role.IM_OFFICER)
    transformer = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:3857")
    for layer in layers.visible_layers(principal):
        stored = layers.items(store, layer, principal, layers.Query(limit=1000)).features
        response = items(client, data, layer.id, limit=1000, **({"crs": crs} if crs else {}))
        assert response.status_code == 200, response.text
        features = response.json()["features"]
        assert [f["id"] for f in features] == [f.id for f in stored] and stored
        for got, feature in zip(features, stored, strict=True):
            geometry = feature.geometry
            if crs is not None:
                geometry = shapely.transform(
                    geometry, lambda xy: np.column_stack(transformer.transform(*xy.T))
                )
            assert got["geometry"] == json.loads(json.dumps(mapping(geometry)))
            assert got["properties"] == json.loads(json.dumps(feature.properties))


def test_bbox_is_an_exact_intersection(served):
    client, data = served
    assert (
        ids(items(client, data, "hazardous_area", bbox="47.0,39.49,47.05,39.51"))
        == (data.hazards[:6])
    )
    # Inside the triangle's envelope but beyond its hypotenuse: the triangle does not match.
    assert ids(items(client, data, "hazardous_area", bbox="47.207,39.507,47.3,39.6")) == []
    assert ids(items(client, data, "hazardous_area", bbox="47.203,39.503,47.3,39.6")) == [
        data.hazards[-1]
    ]


def test_boxes_paged_in_memory_match_the_database(served):
    """The envelope index (unfiltered boxes) gives the pages and counts the database gives."""
    client, _ = served
    store = client.app.state.register.store
    layer = layers.LAYERS["hazardous_area"]
    principal = Principal("im", Role.IM_OFFICER, None)
    envelopes = layers.EnvelopeCache()
    rng = np.random.default_rng(5)
    for _ in range(150):
        x0, x1 = np.sort(rng.uniform(46.99, 47.22, 2))
        y0, y1 = np.sort(rng.uniform(39.495, 39.515, 2))
        query = layers.Query(
            bbox=(x0, y0, x1, y1), limit=int(rng.integers(1, 6)), offset=int(rng.integers(0, 4))
        )
        in_memory = layers.items(store, layer, principal, query, envelopes)
        database = layers.items(store, layer, principal, query)
        assert in_memory.number_matched == database.number_matched
        assert [f.id for f in in_memory.features] == [f.id for f in database.features]
        assert [f.properties for f in in_memory.features] == [
            f.properties for f in database.features
        ]


def test_boxes_paged_in_memory_follow_each_approval(served):
    client, data = served
    wide = {"bbox": "46.9,39.4,47.9,39.7", "limit": 100}
    before = ids(items(client, data, "hazardous_area", **wide))
    register = Register.open(client.app.state.register.store.location)
    added = add(register, "hazardous_area", date(2022, 1, 1), geometry=hazard_box(40).wkt)
    register.store.engine.dispose()
    assert ids(items(client, data, "hazardous_area", **wide)) == [*before, added]


def test_features_read_once_are_kept_until_the_register_changes(served):
    """A page's features are read from the database once per data generation (then the page
    reads only the generation); an approval changing one of them is seen at the next request."""
    client, _ = served
    store = client.app.state.register.store
    layer = layers.LAYERS["hazardous_area"]
    principal = Principal("im", Role.IM_OFFICER, None)
    envelopes = layers.EnvelopeCache()
    query = layers.Query(bbox=(46.9, 39.4, 47.9, 39.7), limit=3)
    statements: list[str] = []

    def reads(_conn, _cursor, statement, *_):
        statements.append(statement)

    def feature_reads() -> int:
        return sum("kept_fid" in s for s in statements)

    event.listen(store.engine, "before_cursor_execute", reads)
    try:
        first = layers.items(store, layer, principal, query, envelopes)
        assert feature_reads() >= 1
        statements.clear()
        again = layers.items(store, layer, principal, query, envelopes)
        assert len(statements) == 1 and "view_generation" in statements[0]  # nothing else
        assert again == first
        hazard = first.features[0].id
        register = Register.open(store.location)
        update(register, hazard, "hazardous_area", date(2022, 2, 1), name="Renamed")
        register.store.engine.dispose()
        after = layers.items(store, layer, principal, query, envelopes)
        assert feature_reads() >= 1
        assert after.features[0].properties["name"] == "Renamed"
    finally:
        event.remove(store.engine, "before_cursor_execute", reads)


def test_a_write_elsewhere_leaves_the_features_kept(served):
    """A write to another layer leaves a layer's envelopes and features as they are (a page
    still reads only the generations); a write to the layer reloads its envelopes but keeps
    the features away from what it changed; a changed feature is read again."""
    client, data = served
    store = client.app.state.register.store
    layer = layers.LAYERS["hazardous_area"]
    principal = Principal("im", Role.IM_OFFICER, None)
    envelopes = layers.EnvelopeCache()
    west = layers.Query(bbox=(46.99, 39.49, 47.035, 39.51), limit=10)  # hazards 0-3
    statements: list[str] = []

    def reads(_conn, _cursor, statement, *_):
        statements.append(statement)

    def feature_reads() -> int:
        return sum("kept_fid" in s for s in statements)

    def page(query=west):
        statements.clear()
        return layers.items(store, layer, principal, query, envelopes)

    def write(record_type, record_id=None, **fields):
        register = Register.open(store.location)
        if record_id is None:
            add(register, record_type, date(2022, 1, 1), **fields)
        else:
            update(register, record_id, record_type, date(2022, 2, 1), **fields)
        register.store.engine.dispose()

    event.listen(store.engine, "before_cursor_execute", reads)
    try:
        first = page()
        assert [f.id for f in first.features] == data.hazards[:4] and feature_reads()
        loaded = envelopes._layers[layer.id][1]
        write("eo_item", category="uxo", geometry="POINT(47.015 39.5015)")
        assert page() == first and len(statements) == 1  # the generations, nothing else
        assert envelopes._layers[layer.id][1] is loaded
        write("hazardous_area", data.hazards[11], name="Far away")
        assert page() == first and feature_reads() == 0
        assert envelopes._layers[layer.id][1] is not loaded  # loaded again, features kept
        east = layers.Query(bbox=(47.105, 39.49, 47.12, 39.51))
        assert [f.properties["name"] for f in page(east).features] == ["Far away"]
        write("hazardous_area", data.hazards[2], name="Near")
        again = page()
        assert feature_reads() == 1 and again.features[2].properties["name"] == "Near"
        assert again.features[:2] == first.features[:2]
    finally:
        event.remove(store.engine, "before_cursor_execute", reads)


def test_features_kept_expire_as_tiles_do(served, monkeypatch):
    """A change made outside Safeground advances no generation: envelopes and features are read
    afresh once the oldest of them is ``max_age_s`` old, even when carried over a write."""
    client, data = served
    store = client.app.state.register.store
    layer = layers.LAYERS["hazardous_area"]
    principal = Principal("im", Role.IM_OFFICER, None)
    clock = [0.0]
    monkeypatch.setattr(layers, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    envelopes = layers.EnvelopeCache(max_age_s=300)
    query = layers.Query(bbox=(46.99, 39.49, 47.035, 39.51), limit=10)
    layers.items(store, layer, principal, query, envelopes)
    first = envelopes._layers[layer.id][1]
    clock[0] = 200.0
    register = Register.open(store.location)
    update(register, data.hazards[11], "hazardous_area", date(2022, 2, 1), name="Far away")
    register.store.engine.dispose()
    layers.items(store, layer, principal, query, envelopes)
    carried = envelopes._layers[layer.id]
    assert carried[1] is not first and carried[1]._features and carried[2] == 0.0
    clock[0] = 301.0
    layers.items(store, layer, principal, query, envelopes)
    fresh = envelopes._layers[layer.id]
    assert fresh[1] is not carried[1] and fresh[2] == 301.0


def test_features_kept_are_bounded_oldest_first(served):
    client, _ = served
    store = client.app.state.register.store
    layer = layers.LAYERS["hazardous_area"]
    with store.read() as conn:
        envelopes = layers.Envelopes.load(conn, store, layer, features_kept=4)
        fids = sorted(envelopes.fids.tolist())
        first = envelopes.features(conn, store, layer, fids[:3])
        envelopes.features(conn, store, layer, fids[3:6])
        assert list(envelopes._features) == fids[2:6]
        assert envelopes.features(conn, store, layer, fids[:1]) == {fids[0]: first[fids[0]]}
        assert list(envelopes._features) == [*fids[3:6], fids[0]]
        none_kept = layers.Envelopes.load(conn, store, layer, features_kept=0)
        assert len(none_kept.features(conn, store, layer, fids)) == len(fids)
        assert none_kept._features == {}


def test_datetime_instants_and_intervals(served):
    client, data = served
    # Areas are dated 2021-03-01 + i (status date); the first one's status changed on 06-01.
    assert ids(items(client, data, "hazardous_area", datetime="2021-03-02")) == [data.hazards[1]]
    assert ids(
        items(client, data, "hazardous_area", datetime="2021-03-02T10:00:00Z", limit=100)
    ) == [data.hazards[1]]
    assert (
        ids(items(client, data, "hazardous_area", datetime="2021-03-02/2021-03-04"))
        == (data.hazards[1:4])
    )
    assert (
        ids(items(client, data, "hazardous_area", datetime="../2021-03-03", limit=100))
        == (data.hazards[1:3])
    )
    after = ids(items(client, data, "hazardous_area", datetime="2021-03-11/..", limit=100))
    assert after == [data.hazards[0], *data.hazards[10:]]
    assert ids(items(client, data, "task", datetime="2021-10-01")) == list(data.tasks.values())
    assert ids(items(client, data, "task", datetime="2021-11-01/..")) == []
    for bad in ("yesterday", "2021-03-05/2021-03-01", "../..", "2021-02-30"):
        response = items(client, data, "hazardous_area", datetime=bad)
        assert response.status_code == 400, bad
        assert "datetime" in response.json()["detail"]


def test_attribute_filters(served):
    client, data = served
    assert ids(items(client, data, "hazardous_area", status="worked_on")) == [data.hazards[0]]
    by_operator = ids(items(client, data, "hazardous_area", operator=data.org_b, limit=100))
    assert by_operator == data.hazards[1:12:2]
    in_district = ids(items(client, data, "hazardous_area", admin_area=data.district, limit=100))
    assert in_district == data.hazards[:8]
    assert ids(items(client, data, "processed_land", admin_area=data.district)) == [
        f"{data.activity}.0"
    ]
    assert ids(items(client, data, "task", admin_area=data.district, limit=100)) == list(
        data.tasks.values()
    )
    refused = items(client, data, "accident", status="open")
    assert refused.status_code == 400
    assert "accident layer cannot be filtered by status" in refused.json()["detail"]


def test_bad_parameters_are_400_with_a_reason(served):
    client, data = served
    for params, word in [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),  # beyond SQLite's and PostgreSQL's integers
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "47,39,46,40"}, "antimeridian"),
        ({"crs": "EPSG:2154"}, "crs"),
        ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
        ({"colour": "red"}, "colour"),
        ({"f": "html"}, "f"),
    ]:
        response = items(client, data, "hazardous_area", **params)
        assert response.status_code == 400, (params, response.text)
        assert word in response.json()["detail"], (params, response.json())


def test_data_entry_sees_its_organisations_tasks_only(served):
    client, data = served
    own = data.tasks[data.org_a]
    assert ids(items(client, data, "task", token=data.clerk_token)) == [own]
    other = f"/ogc/collections/task/items/{data.tasks[data.org_b]}"
    assert client.get(other, headers=bearer(data.clerk_token)).status_code == 404
    assert client.get(other, headers=bearer(data.im_token)).status_code == 200


def test_victims_personal_data_never_appear(served):
    client, data = served
    for collection in ALL_LAYERS:
        body = items(client, data, collection, limit=1000).text
        assert VICTIM_NAME not in body
    accident = items(client, data, "accident").json()["features"][0]
    assert accident["id"] == data.accident
    assert not {"name", "phone", "address"} & set(accident["properties"])


def test_crs_epsg_4326_swaps_the_axes(served):
    client, data = served
    url = f"/ogc/collections/hazardous_area/items/{data.hazards[0]}"
    response = client.get(url, params={"crs": f"{EPSG}4326"}, headers=bearer(data.im_token))
    assert response.headers["content-crs"] == f"<{EPSG}4326>"
    latlon = shape(response.json()["geometry"])
    assert latlon.equals(shapely.transform(hazard_box(0), lambda xy: xy[:, ::-1]))
    # bbox-crs EPSG:4326: latitude first.
    swapped = items(
        client, data, "hazardous_area", bbox="39.49,47.0,39.51,47.05", **{"bbox-crs": "EPSG:4326"}
    )
    assert ids(swapped) == data.hazards[:6]


@pytest.mark.parametrize("code", [3857, 32638])
def test_crs_projected_coordinates_match_pyproj(served, code):
    client, data = served
    response = items(client, data, "hazardous_area", crs=f"{EPSG}{code}", limit=3)
    assert response.headers["content-crs"] == f"<{EPSG}{code}>"
    transformer = pyproj.Transformer.from_crs("OGC:CRS84", f"EPSG:{code}")
    for i, feature in enumerate(response.json()["features"]):
        got = shapely.get_coordinates(shape(feature["geometry"]))
        lon, lat = shapely.get_coordinates(hazard_box(i)).T
        expected = np.column_stack(transformer.transform(lon, lat))
        np.testing.assert_allclose(got, expected, atol=1e-3)
    # A bbox in metres selects the areas meeting its extent in longitude/latitude.
    x0, y0 = transformer.transform(47.0, 39.49)
    x1, y1 = transformer.transform(47.05, 39.51)
    back = pyproj.Transformer.from_crs(f"EPSG:{code}", "OGC:CRS84")
    lonlat = shapely.box(*back.transform_bounds(x0, y0, x1, y1))
    expected = [h for i, h in enumerate(data.hazards[:12]) if hazard_box(i).intersects(lonlat)]
    projected = items(
        client, data, "hazardous_area", bbox=f"{x0},{y0},{x1},{y1}", **{"bbox-crs": f"{EPSG}{code}"}
    )
    assert ids(projected) == expected and len(expected) >= 5


# -- a real server, read by real clients ---------------------------------------------------------


@pytest.fixture
def live(store_location: str) -> Iterator[tuple[str, MapData]]:
    """The application under uvicorn in its own process (``layer_data.serve``)."""
    with serve(store_location) as served_on_socket:
        yield served_on_socket


@pytest.mark.slow
def test_owslib_reads_the_collections(live, monkeypatch):
    # OWSLib adds a client's headers to its module-wide default headers: start from a copy.
    import owslib.ogcapi
    from owslib.ogcapi.features import Features

    monkeypatch.setattr(owslib.ogcapi, "REQUEST_HEADERS", dict(owslib.ogcapi.REQUEST_HEADERS))
    url, data = live
    public = Features(url)
    assert [c["id"] for c in public.collections()["collections"]] == ["admin_area"]
    assert public.conformance()["conformsTo"] == CONFORMANCE
    districts = public.collection_items("admin_area")["features"]
    assert shape(districts[0]["geometry"]).equals(DISTRICT)
    api = Features(url, headers=bearer(data.im_token))
    assert {c["id"] for c in api.collections()["collections"]} == ALL_LAYERS
    page = api.collection_items("hazardous_area", limit=100)
    assert page["numberMatched"] == 13 and len(page["features"]) == 13
    assert shape(page["features"][0]["geometry"]).equals(hazard_box(0))
    assert (
        api.collection_items("hazardous_area", bbox=[47.0, 39.49, 47.05, 39.51])["numberMatched"]
        == 6
    )


@pytest.mark.slow
def test_gdal_oapif_driver_reads_the_layers(live):
    import pyogrio

    url, data = live
    source = f"OAPIF:{url}"
    assert [name for name, _ in pyogrio.list_layers(source)] == ["admin_area"]
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": data.im_token})
    try:
        assert {name for name, _ in pyogrio.list_layers(source)} == ALL_LAYERS
        # A page size smaller than the layer makes GDAL follow the next links.
        frame = pyogrio.read_dataframe(source, layer="hazardous_area", PAGE_SIZE=5)
        assert len(frame) == 13
        by_id = dict(zip(frame["record_id"], frame.geometry, strict=True))
        assert by_id[data.hazards[0]].equals(hazard_box(0))
        assert by_id[data.hazards[-1]].equals(TRIANGLE)
        assert set(frame["classification"]) == {"cha", "sha"}
        points = pyogrio.read_dataframe(source, layer="eo_item")
        assert list(points["record_id"]) == [data.eo_item]
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


@pytest.mark.slow
def test_fuzzing_the_ogc_api_never_makes_a_server_error(served):
    """Every /ogc operation of /ogc/api, 40 generated requests each (schemathesis)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error

    client, data = served
    schema = schemathesis.openapi.from_asgi("/ogc/api", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert "GET /ogc/collections/{collection_id}/items" in {op.label for op in operations}
    failures = {}
    answered: Counter[tuple[str, int]] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy(), layer=st.sampled_from(sorted(ALL_LAYERS)))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case, layer):
            if case.path_parameters and "collection_id" in case.path_parameters:
                case.path_parameters["collection_id"] = layer  # random names are only 404s
            response = case.call_and_validate(
                headers=bearer(data.im_token), checks=[not_a_server_error]
            )
            answered[case.operation.label, response.status_code // 100] += 1

        try:
            fuzz()
        except Exception as error:  # collected so that one run reports every operation
            failures[operation.label] = f"{type(error).__name__}: {str(error)[:2000]}"
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    print(sorted(answered.items()))
    items_label = "GET /ogc/collections/{collection_id}/items"
    assert answered[items_label, 2] >= 5 and answered[items_label, 4] >= 5
