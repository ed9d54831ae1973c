"""The HTML pages as served: who is sent to log in, what a page carries, forms from the models,
and the local base map (MBTiles tile by tile, a PMTiles archive in byte ranges). (What the
pages do in a browser: test_browser.py.)"""

import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import Reader

from safeground.io.fieldforms import FORMS
from safeground.service import accounts
from safeground.web.app import create_app
from tests.web.basemaps import ATTRIBUTION, raster_tile, world, write_mbtiles, write_pmtiles
from tests.web.conftest import logged_in


def test_pages_that_need_an_account_send_to_login(client):
    for path in ("/reports", "/reports/new?form=ts", "/records/AZ-HA-2021-00001"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2F")
    assert client.get("/login?next=//elsewhere.example/").text.count('data-next="/"') == 1


def test_map_page_offers_operators_only_to_accounts(client, login, scenario):
    public = client.get("/").text
    assert 'id="map"' in public and 'name="operator"' not in public
    assert "Log in to see hazardous areas" in public
    page = login("clerk").get("/").text
    assert 'name="operator"' in page
    assert all(org in page for org in scenario.orgs.values())
    assert "data-base-map='null'" in page


def test_the_queue_lists_disabled_accounts_for_administrators_only(login, scenario):
    with scenario.register.store.begin() as conn:
        accounts.disable_account(conn, "clerk2", by="admin")
    assert 'data-disabled-accounts="clerk2"' in login("admin").get("/reports").text
    assert "data-disabled-accounts" not in login("officer").get("/reports").text


@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_asks_its_model_fields(login, name):
    page = login("clerk").get(f"/reports/new?form={name}&hazard_id=AZ-HA-2021-00001")
    assert page.status_code == 200
    form = FORMS[name]
    for question in form.all_questions():
        assert f'data-question="{question.name}"' in page.text, question.name
    for repeat in form.repeats:
        assert f'data-repeat="{repeat.name}" data-mode="{repeat.mode}"' in page.text
    assert '"hazard_id": "AZ-HA-2021-00001"' in page.text.replace("&#34;", '"')


def test_a_form_page_names_the_draft_it_reopens_apart_from_its_prefill(login):
    page = login("clerk").get("/reports/new?form=nts&report=7&name=Orchard").text
    assert 'data-report="7"' in page and "report 7</h1>" in page
    prefill = re.search(r"data-prefill='([^']*)'", page).group(1).replace("&#34;", '"')
    assert json.loads(prefill) == {"name": "Orchard"}
    assert login("clerk").get("/reports/new?form=nts&report=0").status_code == 422


def test_unknown_form_is_404_naming_the_forms(login):
    page = login("clerk").get("/reports/new?form=census")
    assert page.status_code == 404 and "clearance_completion" in page.text


def test_public_cannot_open_a_form(client):
    assert client.get("/reports/new?form=nts", follow_redirects=False).status_code == 303


@pytest.fixture
def with_base_map(scenario) -> Iterator[Callable[[Path], TestClient]]:
    """A client of the application serving ``path`` as its base map."""
    apps = []

    def client(path: Path) -> TestClient:
        apps.append(create_app(scenario.settings.model_copy(update={"base_map": path})))
        return TestClient(apps[-1])

    yield client
    for app in apps:
        app.state.register.store.engine.dispose()


def _base_map_config(page: str) -> dict:
    return json.loads(html.unescape(re.search(r"data-base-map='([^']*)'", page).group(1)))


def test_local_mbtiles_base_map(with_base_map, tmp_path):
    path = tmp_path / "base.mbtiles"
    tile = b"\x89PNG\r\n\x1a\n fake tile"
    # MBTiles rows count from the south: XYZ row 0 at zoom 1 is stored as TMS row 1.
    write_mbtiles(path, {(1, 0, 0): tile})
    client = with_base_map(path)
    config = _base_map_config(client.get("/").text)
    assert config["kind"] == "mbtiles" and config["attribution"] == ATTRIBUTION
    assert (config["minzoom"], config["maxzoom"]) == (1, 1)
    found = client.get("/basemap/1/0/0")
    assert found.status_code == 200 and found.content == tile
    assert found.headers["content-type"] == "image/png"
    assert client.get("/basemap/1/1/1").status_code == 204
    assert client.get("/basemap.pmtiles").status_code == 404


def test_form_and_record_maps_get_the_base_map_of_the_map_page(
    with_base_map, login, scenario, tmp_path
):
    pages = ("/reports/new?form=nts", f"/records/{scenario.hazard}")
    for page in pages:
        assert "data-base-map='null'" in login("clerk").get(page).text
    path = tmp_path / "base.mbtiles"
    write_mbtiles(path, {(0, 0, 0): raster_tile((1, 2, 3))})
    clerk = logged_in(with_base_map(path).app, "clerk")
    config = _base_map_config(clerk.get("/").text)
    assert config["kind"] == "mbtiles" and config["attribution"] == ATTRIBUTION
    for page in pages:
        assert _base_map_config(clerk.get(page).text) == config, page


def test_a_broken_base_map_is_said_on_each_map_page_which_still_opens(
    with_base_map, scenario, tmp_path
):
    """Missing, of an unknown kind or unreadable: the page says why, draws no base map, and a
    clerk can still file a report."""
    pages = ("/", "/reports/new?form=nts", f"/records/{scenario.hazard}")
    broken = tmp_path / "broken.mbtiles"
    broken.write_bytes(b"not an SQLite file at all, " * 100)
    (tmp_path / "base.tif").write_bytes(b"II*\x00")
    for path, reason in [
        (tmp_path / "gone.pmtiles", "does not exist"),
        (tmp_path / "base.tif", "give a .mbtiles or .pmtiles file"),
        (broken, "is not a readable MBTiles file"),
    ]:
        clerk = logged_in(with_base_map(path).app, "clerk")
        for page in pages:
            response = clerk.get(page)
            assert response.status_code == 200, (path, page)
            assert "data-base-map='null'" in response.text
            said = re.search(
                r'<p class="error" role="alert">The base map is not shown: ([^<]*)<', response.text
            )
            assert said and reason in html.unescape(said[1]) and path.name in said[1], (path, page)


# The PMTiles archive the server tests read: each tile of zooms 0-2 a colour of its own.
TILES = {(z, x, y): raster_tile((40 + 60 * z, 50 * x, 50 * y)) for z, x, y in world()}


def test_local_pmtiles_base_map_is_read_in_byte_ranges(with_base_map, tmp_path):
    path = tmp_path / "base.pmtiles"
    write_pmtiles(path, TILES)
    archive = path.read_bytes()
    size = len(archive)
    client = with_base_map(path)
    config = _base_map_config(client.get("/").text)
    assert (config["kind"], config["url"]) == ("pmtiles", "/basemap.pmtiles")

    whole = client.get("/basemap.pmtiles")
    assert whole.status_code == 200 and whole.content == archive
    assert whole.headers["accept-ranges"] == "bytes"
    head = client.head("/basemap.pmtiles")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)

    def ranged(spec: str) -> httpx.Response:
        response = client.get("/basemap.pmtiles", headers={"Range": f"bytes={spec}"})
        assert response.status_code == 206, response.text
        assert response.headers["accept-ranges"] == "bytes"
        return response

    header = ranged("0-126")
    assert header.content == archive[:127] and header.content.startswith(b"PMTiles\x03")
    assert header.headers["content-range"] == f"bytes 0-126/{size}"
    # The pmtiles library's first request: 16 KiB for the header and root directory.
    assert ranged("0-16383").content == archive[:16384]
    # A range running past the end gets what there is (a small archive's first request).
    end = ranged(f"{size - 10}-{size + 16_000}")
    assert end.content == archive[-10:]
    assert end.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert ranged("-10").content == archive[-10:]
    # A PMTiles reader fetching byte ranges over HTTP, as the page does, finds every tile.
    reader = Reader(lambda offset, length: ranged(f"{offset}-{offset + length - 1}").content)
    assert (reader.header()["min_zoom"], reader.header()["max_zoom"]) == (0, 2)
    assert all(reader.get(*position) == tile for position, tile in TILES.items())

    beyond = client.get("/basemap.pmtiles", headers={"Range": f"bytes={size}-{size + 10}"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    assert client.get("/basemap/0/0/0").status_code == 404  # the MBTiles route


def test_local_pmtiles_base_map_serves_that_file_alone(with_base_map, tmp_path):
    path = tmp_path / "base.pmtiles"
    write_pmtiles(path, TILES)
    (tmp_path / "neighbour.txt").write_text("not for the web")
    client = with_base_map(path)
    for url in (
        "/basemap.pmtiles/..%2Fneighbour.txt",
        "/basemap.pmtiles%2F..%2Fneighbour.txt",
        "/basemap/..%2Fneighbour.txt/0/0",
        "/basemap/0/0/..%2F..%2Fneighbour.txt",
        "/neighbour.txt",
        "/static/..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2F" + str(tmp_path / "neighbour.txt")[1:],
    ):
        response = client.get(url)
        assert response.status_code in (404, 422), url
        assert b"not for the web" not in response.content
    # Gone since start-up: a 404 that says so, not a server error.
    path.unlink()
    gone = client.get("/basemap.pmtiles")
    assert gone.status_code == 404 and "does not exist" in gone.text
