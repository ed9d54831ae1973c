"""The HTML pages as served: who is sent to log in, what a page carries, forms from the models,
and the local base map. (What the pages do in a browser: test_browser.py.)"""

import json
import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from safeground.io.fieldforms import FORMS
from safeground.web.app import create_app


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


def _mbtiles(path, tile: bytes) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        conn.execute(
            "CREATE TABLE tiles (zoom_level INT, tile_column INT, tile_row INT, tile_data BLOB)"
        )
        conn.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            [("format", "png"), ("minzoom", "0"), ("maxzoom", "1"), ("attribution", "Survey dept")],
        )
        # MBTiles rows count from the south: XYZ row 0 at zoom 1 is TMS row 1.
        conn.execute("INSERT INTO tiles VALUES (1, 0, 1, ?)", (tile,))


def test_local_mbtiles_base_map(scenario, tmp_path):
    path = tmp_path / "base.mbtiles"
    tile = b"\x89PNG\r\n\x1a\n fake tile"
    _mbtiles(path, tile)
    app = create_app(scenario.settings.model_copy(update={"base_map": path}))
    client = TestClient(app)
    page = client.get("/").text
    config = re.search(r"data-base-map='([^']*)'", page).group(1).replace("&#34;", '"')
    assert '"kind": "mbtiles"' in config and '"attribution": "Survey dept"' in config
    found = client.get("/basemap/1/0/0")
    assert found.status_code == 200 and found.content == tile
    assert found.headers["content-type"] == "image/png"
    assert client.get("/basemap/1/1/1").status_code == 204
    assert client.get("/basemap.pmtiles").status_code == 404
    app.state.register.store.engine.dispose()
