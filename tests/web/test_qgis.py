"""QGIS itself adds the register's OGC API - Features collections as live layers (issue 4).

Debian's QGIS 3.22 (python3-qgis, installed by scripts/qgis.sh, which ``make test`` runs) reads a
real server on a socket, through its OAPIF provider, headless, in a subprocess run by Debian's
Python (``tests/web/qgis_oapif.py``; the project's virtual environment cannot import the
Debian-built ``qgis`` module). What QGIS sees is compared with what the API answers.

QGIS 3.22 cannot send an ``Authorization: Bearer`` header (no custom headers in the data source
URI, no API-header authentication method before 3.24, and Debian builds no OAuth2 method); it
sends HTTP Basic, from ``username``/``password`` in the URI or from a *Basic* authentication
configuration, so the non-public layers are read with the account's name and an API token.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import shape

from safeground.service import accounts
from safeground.service.register import Register
from tests.web.layer_data import MapData, bearer, serve

SCRIPT = Path(__file__).with_name("qgis_oapif.py")
BOX = [47.0, 39.49, 47.05, 39.51]  # the first six hazardous areas


@pytest.fixture(scope="session")
def qgis_python() -> str:
    """Debian's Python with python3-qgis (or ``SAFEGROUND_QGIS_PYTHON``, as scripts/qgis.sh
    prints it); skips when QGIS is not installed, and fails on CI, which installs it. Session
    scoped, so it is checked once, and before any server starts."""
    python = os.environ.get("SAFEGROUND_QGIS_PYTHON", "/usr/bin/python3")
    found = os.access(python, os.X_OK) and (
        subprocess.run(
            [python, "-c", "import qgis.core"], capture_output=True, timeout=120
        ).returncode
        == 0
    )
    if not found:
        reason = (
            f"python3-qgis is not installed ({python} cannot import qgis.core): run scripts/qgis.sh"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (make test runs it)")
        pytest.skip(reason)
    return python


@pytest.fixture
def live_logged(store_location: str, tmp_path: Path) -> Iterator[tuple[str, MapData, Path]]:
    log = tmp_path / "access.log"
    with serve(store_location, access_log=log) as (url, data):
        yield url, data, log


def run_qgis(python: str, job: dict[str, Any], tmp_path: Path, name: str) -> dict[str, Any]:
    job_path, result_path = tmp_path / f"{name}-job.json", tmp_path / f"{name}-result.json"
    job_path.write_text(json.dumps(job))
    # Everything QGIS and Qt write (profile, caches, semaphores, runtime dir) stays in tmp_path.
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": "",
           "TMPDIR": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
    done = subprocess.run(
        [python, str(SCRIPT), str(job_path), str(result_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def requests_since(log: Path, offset: int) -> list[str]:
    """The access log's request lines after ``offset`` characters: 'GET /ogc/... 200'."""
    lines = log.read_text()[offset:].splitlines()
    return [line.split('"', 1)[1].replace('"', "") for line in lines if '"GET ' in line]


def api_view(url: str, collection: str, token: str | None) -> dict[str, Any]:
    """What the API answers for a collection: its features' IDs and bounds, properties, extent,
    and the features in BOX."""
    headers = bearer(token) if token else {}
    with httpx.Client(headers=headers, timeout=30) as api:
        meta = api.get(f"{url}/collections/{collection}").json()
        page = api.get(f"{url}/collections/{collection}/items", params={"limit": 1000}).json()
        boxed = api.get(
            f"{url}/collections/{collection}/items",
            params={"limit": 1000, "bbox": ",".join(map(str, BOX))},
        ).json()
    return {
        "number_matched": page["numberMatched"],
        "ids": [f["id"] for f in page["features"]],
        "bounds": {f["id"]: list(shape(f["geometry"]).bounds) for f in page["features"]},
        "properties": list(page["features"][0]["properties"]),
        "extent": meta["extent"]["spatial"]["bbox"][0],
        "box_ids": [f["id"] for f in boxed["features"]],
    }


def assert_layer_matches(seen: dict[str, Any], api: dict[str, Any]) -> None:
    assert seen["valid"], seen["messages"]
    assert seen["feature_count"] == api["number_matched"]
    # QGIS adds the GeoJSON feature id as a field "id" before the properties.
    assert seen["fields"] == ["id", *api["properties"]]
    assert [f["id"] for f in seen["features"]] == api["ids"]
    assert [f["record_id"] for f in seen["features"]] == api["ids"]
    for feature in seen["features"]:
        assert feature["bounds"] == pytest.approx(api["bounds"][feature["id"]], abs=1e-9)
    assert seen["extent"] == pytest.approx(api["extent"], abs=1e-9)


@pytest.mark.slow
def test_qgis_adds_the_public_and_the_token_protected_layers(
    qgis_python, live_logged, tmp_path, store_location
):
    python = qgis_python
    url, data, log = live_logged
    public = api_view(url, "admin_area", None)
    hazards = api_view(url, "hazardous_area", data.im_token)
    assert hazards["number_matched"] == 13 and len(hazards["box_ids"]) == 6

    # Refused: no credentials, another account's name, the account's password, a revoked token.
    register = Register.open(store_location)
    with register.store.begin() as conn:
        token_id, revoked = accounts.create_token(conn, "im", label="revoked")
        accounts.revoke_token(conn, accounts.get_account(conn, "im").principal, token_id)
    register.store.engine.dispose()
    refused = [
        {"typename": "hazardous_area"},
        {"typename": "hazardous_area", "username": "clerk", "password": data.im_token},
        {"typename": "hazardous_area", "username": "im", "password": "long-enough-password"},
        {"typename": "hazardous_area", "username": "im", "password": revoked},
    ]
    seen = run_qgis(python, {"url": url, "layers": refused}, tmp_path, "refused")
    assert seen["qgis_version"].startswith("3.")
    assert [layer["valid"] for layer in seen["layers"]] == [False] * len(refused), seen
    for layer in seen["layers"]:  # what QGIS tells its user, in its Log Messages panel
        assert any("requires authentication" in message for message in layer["messages"]), layer
    assert any(" 401" in line for line in requests_since(log, 0))

    # The public layer without credentials; the areas with the account's name and a token in
    # the data source URI, asking the server for a box first ("Only request features
    # overlapping the view extent").
    offset = len(log.read_text())
    layers = [
        {"typename": "admin_area"},
        {
            "typename": "hazardous_area",
            "username": "im",
            "password": data.im_token,
            "bbox": BOX,
            "restrict_to_request_bbox": True,
        },
    ]
    seen = run_qgis(python, {"url": url, "layers": layers}, tmp_path, "uri")
    admin_area, hazardous_area = seen["layers"]
    assert_layer_matches(admin_area, public)
    assert [f["id"] for f in admin_area["features"]] == [data.district]
    assert_layer_matches(hazardous_area, hazards)
    assert [f["id"] for f in hazardous_area["bbox_features"]] == hazards["box_ids"]
    asked = requests_since(log, offset)
    assert asked and all(line.endswith(" 200 OK") for line in asked), asked  # sent every time
    assert any("/hazardous_area/items?" in line and "bbox=47," in line for line in asked), asked

    # The same through a configuration of QGIS's Basic authentication method (authcfg); and a
    # request without credentials, answered when QGIS's network access manager is challenged.
    offset = len(log.read_text())
    job = {
        "url": url,
        "layers": [
            {
                "typename": "hazardous_area",
                "username": "im",
                "password": data.im_token,
                "basic_authcfg": True,
            }
        ],
        "challenge": {
            "url": f"{url}/collections/hazardous_area/items?limit=2",
            "username": "im",
            "password": data.im_token,
        },
    }
    seen = run_qgis(python, job, tmp_path, "authcfg")
    assert_layer_matches(seen["layers"][0], hazards)
    challenge = seen["challenge"]
    assert challenge["realms"] == ["safeground"], challenge
    assert challenge["status"] == 200, challenge
    assert [f["id"] for f in json.loads(challenge["body"])["features"]] == hazards["ids"][:2]
    asked = requests_since(log, offset)
    assert [line for line in asked if "limit=2" in line] == [
        "GET /ogc/collections/hazardous_area/items?limit=2 HTTP/1.1 401 Unauthorized",
        "GET /ogc/collections/hazardous_area/items?limit=2 HTTP/1.1 200 OK",
    ]
