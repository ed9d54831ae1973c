"""The pages in a real browser: Playwright driving Debian's Chromium against a served application.

The scenario of the issue: a data entry clerk logs in, sees the hazardous areas on the map,
reports clearance with a polygon drawn on the map and submits it; the IM officer approves it;
the hazard's remaining area on its record page falls by the area of that polygon. And a local
base map (PMTiles and MBTiles, raster and vector) is drawn under the register, offline.
Screenshots of each step go to ``test-artifacts/``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

import pytest
from PIL import Image
from shapely.geometry import Point, box, shape

from safeground.domain.geometry import geodesic_area
from safeground.risk.attach import attach_map
from safeground.risk.evidence import resolve_region
from safeground.risk.riskmap import build_map
from safeground.service import accounts
from safeground.service.register import Register, Submission
from safeground.web.risk import LEGEND_STOPS, RAMP
from safeground.web.settings import Settings
from tests import geometries as g
from tests.helpers import add
from tests.risk.registers import turned_around
from tests.web.basemaps import (
    ATTRIBUTION,
    raster_tile,
    vector_tile,
    world,
    write_mbtiles,
    write_pmtiles,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebGL (MapLibre) on the CPU: headless Chromium without a GPU needs SwiftShader allowed.
    "--enable-unsafe-swiftshader",
]
PASSWORD = "correct horse battery"
# Where the clerk draws, inside the hazard: the western half, kept 10 % clear of its edges.
DRAWN = box(g.X0 + 0.1 * g.D, g.Y0 + 0.1 * g.D, g.X0 + 0.5 * g.D, g.Y0 + 0.9 * g.D)


def chromium_path() -> str:
    found = os.environ.get("SAFEGROUND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("no Chromium: scripts/chromium.sh installs it (make test runs it)")
        pytest.skip("no Chromium: run scripts/chromium.sh")
    return found


@dataclass
class Site:
    url: str
    hazard_id: str
    other_hazard_id: str
    earlier_risk_map: str  # SHA-256 of a risk map attached before the current one
    risk_map: str  # SHA-256 of the current risk map (attached last)
    risk_means: dict[str, dict[str, float]]  # mean risk by map's SHA-256, then record
    store: str  # the register's GeoPackage


@dataclass
class BaseMapSite:
    url: str
    kind: str  # "pmtiles" or "mbtiles"
    vector: bool
    hazard_id: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A small demo-like register served by uvicorn on a free loopback port."""
    path = tmp_path_factory.mktemp("site") / "register.gpkg"
    register = Register.create(str(path), country="AZ")
    on = date(2021, 1, 1)
    district = add(
        register,
        "admin_area",
        on,
        name="Aghdam",
        level=2,
        geometry=box(g.X0 - 0.02, g.Y0 - 0.02, g.X0 + 0.08, g.Y0 + 0.03).wkt,
    )
    operator = add(register, "organisation", on, name="Demo Demining", acronym="DD")
    hazard = add(
        register,
        "hazardous_area",
        date(2021, 2, 1),
        name="Field 1",
        classification="cha",
        geometry=g.HAZARD.wkt,
        evidence=["mine_sign_or_fence"],
        admin_area_id=district,
        organisation_id=operator,
    )
    other = add(
        register,
        "hazardous_area",
        date(2021, 2, 1),
        name="Orchard",
        geometry=box(g.X0 + 0.03, g.Y0, g.X0 + 0.03 + g.D, g.Y0 + g.D).wkt,
        evidence=["front_line"],
        admin_area_id=district,
    )
    # Five places where evidence was met with the accident below: the risk map's presences.
    items = [("ap_mine", 4, 0.015), ("at_mine", 1, 0.02), ("uxo", 2, 0.025), ("ap_mine", 1, 0.03)]
    for category, quantity, x in items:
        add(
            register,
            "eo_item",
            date(2021, 5, 1),
            category=category,
            quantity=quantity,
            geometry=Point(g.X0 + x, g.Y0 + 0.002).wkt,
        )
    accident = add(
        register,
        "accident",
        date(2021, 4, 3),
        accident_type="mine",
        accident_date="2021-04-02",
        geometry=Point(g.X0 + 0.02, g.Y0 + 0.008).wkt,
    )
    for outcome, status in [
        ("killed", "civilian"),
        ("injured", "civilian"),
        ("injured", "military"),
    ]:
        add(
            register,
            "victim",
            date(2021, 4, 3),
            accident_id=accident,
            outcome=outcome,
            victim_status=status,
        )
    register.store.migrate()  # the web's tables (accounts) come with the latest migrations
    # A risk map of the district, attached after an earlier one (the same turned around): the
    # map offers the newest as a layer, and the earlier one to choose.
    label, region = resolve_region(register, district)
    risk_map = path.parent / "risk.tif"
    build_map(register, label, region, 100.0, risk_map, background=2000, grid_layer=False)
    earlier = turned_around(risk_map, path.parent / "risk-earlier.tif", "maxent-earlier")
    risk_means = {
        hashlib.sha256(path.read_bytes()).hexdigest(): {
            score.record_id: score.mean_risk for score in attach_map(register, path, "analyst")
        }
        for path in (earlier, risk_map)  # the earlier first
    }
    with register.store.begin() as conn:
        accounts.add_account(conn, "clerk", "data_entry", PASSWORD, organisation_id=operator)
        accounts.add_account(conn, "officer", "im_officer", PASSWORD)
        accounts.add_account(conn, "admin", "admin", PASSWORD)
    register.store.engine.dispose()
    earlier_sha256, current_sha256 = risk_means
    with serve(Settings(store=str(path), secret_key="browser-test")) as url:
        yield Site(url, hazard, other, earlier_sha256, current_sha256, risk_means, str(path))


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The application served by uvicorn on a free loopback port; yields its address."""
    import uvicorn

    from safeground.web.app import create_app

    port = _free_port()
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the application did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Printed on failure: what the browser said.
    page.on("console", lambda message: print("console:", message.type, message.text))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, site: Site | BaseMapSite, username: str) -> None:
    page.goto(f"{site.url}/login?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    page.wait_for_selector("[data-testid=user]")


def log_out(page) -> None:
    page.click("#logout")
    page.wait_for_selector("a[href='/login']")


def remaining_on_record_page(page, site: Site, hazard_id: str) -> float:
    page.goto(f"{site.url}/records/{hazard_id}")
    cell = page.wait_for_selector("dd[data-field=remaining_m2][data-value]")
    return float(cell.get_attribute("data-value"))


def draw_polygon(page, map_name: str, polygon) -> None:
    """Click the polygon's corners on the map, then the first corner again to close it."""
    canvas = page.locator(f"#{'form-map' if map_name == 'safegroundFormMap' else 'map'} canvas")
    frame = canvas.bounding_box()
    corners = list(polygon.exterior.coords)[:-1]
    points = page.evaluate(
        f"(corners) => corners.map((c) => window.{map_name}.project(c)).map((p) => [p.x, p.y])",
        corners,
    )
    for x, y in [*points, points[0]]:
        page.mouse.click(frame["x"] + x, frame["y"] + y)
        page.wait_for_timeout(250)


def test_clearance_report_from_map_to_approval(page, site: Site) -> None:
    # 1. The clerk logs in and sees the hazardous areas drawn on the map.
    log_in(page, site, "clerk")
    page.wait_for_function(
        "Number(document.getElementById('map').dataset.renderedHazards) >= 2", timeout=30_000
    )
    drawn = page.evaluate(
        "window.safegroundMap.queryRenderedFeatures({layers: ['hazard-fill']})"
        ".map((f) => [f.properties.record_id, f.properties.classification, f.properties.status])"
    )
    assert {(i, c, s) for i, c, s in drawn} >= {
        (site.hazard_id, "cha", "open"),
        (site.other_hazard_id, "sha", "open"),
    }
    shot(page, "1-map-data-entry")
    # Filters reach the tiles: no hazard is closed yet, then both come back.
    rendered = "Number(document.getElementById('map').dataset.renderedHazards)"
    page.select_option("#filters select[name=status]", "closed")
    page.wait_for_function(f"{rendered} === 0", timeout=30_000)
    page.select_option("#filters select[name=status]", "open")
    page.wait_for_function(f"{rendered} === 2", timeout=30_000)

    before = remaining_on_record_page(page, site, site.hazard_id)
    assert before == pytest.approx(geodesic_area(g.HAZARD), abs=1)
    shot(page, "2-hazard-before")

    # 2. A clearance progress report: a rule error first, shown next to its field.
    page.goto(f"{site.url}/reports/new?form=clearance_progress&hazard_id={site.hazard_id}")
    page.wait_for_function("window.safegroundFormMap && window.safegroundFormMap.loaded()")
    page.click("#submit-report")
    problem = page.locator(".question[data-field=activity_type] .problem")
    problem.wait_for(state="visible")
    assert "required" in problem.inner_text().lower()
    shot(page, "3-form-error-next-to-field")

    page.select_option(".question[data-field=activity_type] select", "clearance")
    entry = page.locator("fieldset.repeat[data-repeat=processed] .entry").first
    entry.locator(".question[data-field=land_type] select").select_option("cleared")
    entry.locator(".question[data-field=method] select").select_option("manual")
    entry.locator("button.draw").click()
    page.wait_for_timeout(300)
    draw_polygon(page, "safegroundFormMap", DRAWN)
    page.wait_for_selector(".entry .question[data-field=geometry][data-has-shape=true]")
    geometry = shape(json.loads(entry.locator("textarea.geometry").input_value()))
    assert geometry.is_valid and geometry.geom_type == "Polygon"
    # Clicks land on whole pixels: the polygon is the one intended, to a pixel's width.
    assert geometry.symmetric_difference(DRAWN).area < 0.05 * DRAWN.area
    shot(page, "4-form-polygon-drawn")
    page.click("#submit-report")
    page.wait_for_selector("#report-form[data-submitted=true]", timeout=30_000)
    shot(page, "5-form-submitted")
    log_out(page)

    # 3. The IM officer approves it from the queue.
    log_in(page, site, "officer")
    page.goto(f"{site.url}/reports")
    card = page.locator("li.card", has_text="clearance").first
    card.wait_for()
    shot(page, "6-review-queue")
    card.locator("button.approve").click()
    page.wait_for_selector("li.card .done")
    shot(page, "7-approved")

    # 4. The hazard's remaining area fell by the area of the drawn polygon.
    after = remaining_on_record_page(page, site, site.hazard_id)
    assert before - after == pytest.approx(geodesic_area(geometry), abs=1)
    page.wait_for_selector("#history li.report")
    page.wait_for_selector("#links a")
    shot(page, "8-hazard-after")
    page.goto(f"{site.url}/")
    page.wait_for_function(
        "Number(document.getElementById('map').dataset.renderedHazards) >= 2", timeout=30_000
    )
    processed = page.evaluate(
        "window.safegroundMap.queryRenderedFeatures({layers: ['processed-fill']})"
        ".map((f) => f.properties.land_type)"
    )
    assert "cleared" in processed
    shot(page, "9-map-after-approval")


def test_dashboard_charts_and_downloads(page, site: Site) -> None:
    log_in(page, site, "officer")
    page.goto(f"{site.url}/dashboard")
    page.wait_for_selector("body[data-charts-ready=true]", timeout=30_000)
    remaining = page.locator("figure[data-chart=remaining_by_district]")
    assert remaining.get_attribute("data-rows") == "1"
    with page.expect_download() as download:
        remaining.locator("a.csv").click()
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0] == "admin_area_id,district,hazardous_areas,remaining_m2"
    assert "Aghdam" in text
    for chart, rows in [("land_released", 1), ("items_by_category", 3), ("casualties_by_month", 1)]:
        assert page.locator(f"figure[data-chart={chart}]").get_attribute("data-rows") == str(rows)
    with page.expect_download() as picture:
        remaining.locator("a.png").click()
    assert Path(picture.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shot(page, "10-dashboard")


def test_uploaded_polygon_breaking_a_rule_is_shown_in_its_entry(page, site: Site) -> None:
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=clearance_completion&hazard_id={site.other_hazard_id}")
    page.wait_for_function("window.safegroundFormMap && window.safegroundFormMap.loaded()")
    page.select_option(".question[data-field=activity_type] select", "clearance")
    entry = page.locator("fieldset.repeat[data-repeat=processed] .entry").first
    entry.locator(".question[data-field=land_type] select").select_option("cleared")
    # The other hazard, shifted 0.002° (about 170 m) east: it leaves the hazard.
    spills = box(g.X0 + 0.032, g.Y0, g.X0 + 0.032 + g.D, g.Y0 + g.D)
    feature = {"type": "Feature", "properties": {}, "geometry": spills.__geo_interface__}
    entry.locator("input.geojson-file").set_input_files(
        files=[
            {
                "name": "cleared.geojson",
                "mimeType": "application/geo+json",
                "buffer": json.dumps({"type": "FeatureCollection", "features": [feature]}).encode(),
            }
        ]
    )
    page.wait_for_selector(".entry .question[data-field=geometry][data-has-shape=true]")
    page.click("#submit-report")
    problem = entry.locator(".question[data-field=geometry] .problem", has_text="leaves hazardous")
    problem.wait_for(state="visible", timeout=30_000)
    assert site.other_hazard_id in problem.inner_text()
    shot(page, "11-rule-error-in-entry")


def test_risk_layer_toggle_and_record_risk(page, site: Site) -> None:
    with page.expect_response(lambda r: "/tiles/risk/" in r.url and r.status == 200):
        log_in(page, site, "officer")
    toggle = page.locator("#risk-legend input[name=layer][value=risk]")
    assert toggle.is_checked() and "Risk (model" in page.locator("#risk-legend").inner_text()
    page.wait_for_function("window.safegroundMap.isSourceLoaded('risk')", timeout=30_000)
    order = page.evaluate("window.safegroundMap.getStyle().layers.map((layer) => layer.id)")
    assert order.index("risk-raster") < order.index("hazard-fill")  # drawn under the hazards
    shot(page, "11-risk-layer")
    toggle.uncheck()
    hidden = "window.safegroundMap.getLayoutProperty('risk-raster', 'visibility')"
    assert page.evaluate(hidden) == "none"

    # The earlier map, chosen: drawn from its own tiles, hidden still until ticked; the legend
    # names it.
    page.select_option("#risk-legend select[name=risk-map]", site.earlier_risk_map)
    assert page.evaluate(hidden) == "none"
    assert "maxent-earlier" in page.locator("#risk-legend .risk-title").inner_text()
    with page.expect_response(
        lambda r: f"/tiles/risk/{site.earlier_risk_map}/" in r.url and r.status == 200
    ):
        toggle.check()
    page.wait_for_function("window.safegroundMap.isSourceLoaded('risk')", timeout=30_000)
    order = page.evaluate("window.safegroundMap.getStyle().layers.map((layer) => layer.id)")
    assert order.index("risk-raster") < order.index("hazard-fill")
    shot(page, "11-earlier-risk-map")
    toggle.uncheck()

    # Hazards coloured by their mean risk on the map chosen: the drawn features carry that
    # map's means (their tiles name it), and the fill follows them.
    choice = page.locator("#risk-legend select[name=risk-map]")
    by_risk = page.locator("#risk-legend input[name=hazard-colour]")
    choice.select_option(site.risk_map)
    fill = "JSON.stringify(window.safegroundMap.getPaintProperty('hazard-fill', 'fill-color'))"
    assert "risk_mean" not in page.evaluate(fill)
    by_risk.check()
    assert "risk_mean" in page.evaluate(fill)
    assert f"risk_map={site.risk_map}" in page.evaluate(HAZARD_TILES)
    current = _hazard_fills(page, site.risk_means[site.risk_map])
    shot(page, "11-hazards-by-risk")

    # The earlier map chosen: the hazards' fill changes to its scores.
    choice.select_option(site.earlier_risk_map)
    assert f"risk_map={site.earlier_risk_map}" in page.evaluate(HAZARD_TILES)
    earlier = _hazard_fills(page, site.risk_means[site.earlier_risk_map])
    assert site.hazard_id in current and site.hazard_id in earlier
    assert all(earlier[i] != current[i] for i in earlier.keys() & current.keys())
    for fills, sha256 in ((current, site.risk_map), (earlier, site.earlier_risk_map)):
        for record_id, colour in fills.items():
            rgb = [json.loads(colour)[channel] for channel in "rgb"]
            assert rgb == pytest.approx(_on_the_ramp(site.risk_means[sha256][record_id]), abs=1e-3)
    shot(page, "11-hazards-by-earlier-risk")
    by_risk.uncheck()
    assert "risk_mean" not in page.evaluate(fill)
    assert "risk_map" not in page.evaluate(HAZARD_TILES)

    page.goto(f"{site.url}/records/{site.hazard_id}")
    mean = page.wait_for_selector("#risk dd[data-field=mean_risk]")
    assert 0 <= float(mean.inner_text()) <= 1
    assert "Model " in page.locator("#risk p").inner_text()
    assert float(mean.inner_text()) == pytest.approx(
        site.risk_means[site.risk_map][site.hazard_id], abs=5e-4
    )  # the map attached last; then every map over it, newest first
    listed = page.locator("#risk table.risk-maps tbody tr")
    assert listed.count() == 2
    assert [listed.nth(i).get_attribute("data-map") for i in range(2)] == [
        site.risk_map,
        site.earlier_risk_map,
    ]
    earlier_mean = listed.nth(1).locator("td[data-field=mean_risk]").inner_text()
    assert float(earlier_mean) == pytest.approx(
        site.risk_means[site.earlier_risk_map][site.hazard_id], abs=5e-4
    )


# The URL of the hazardous areas' tiles the map page asks for (vector tiles are fetched by
# MapLibre's worker, whose requests the page's events do not show).
HAZARD_TILES = "window.safegroundMap.getSource('hazardous_area').tiles[0]"


def _on_the_ramp(risk: float) -> list[float]:
    """The colour of ``risk`` on the legend's ramp, as MapLibre interpolates it between the
    stops (channels 0..1)."""
    stops = [(value, RAMP[int(255 * value)][:3]) for value in LEGEND_STOPS]
    for (low, below), (high, above) in itertools.pairwise(stops):
        if low <= risk <= high:
            share = (risk - low) / (high - low)
            return [(a + (b - a) * share) / 255 for a, b in zip(below, above, strict=True)]
    raise ValueError(f"risk {risk} is outside the ramp")


def _hazard_fills(page, means: dict[str, float]) -> dict[str, str]:
    """Once every hazardous area drawn that the map scored carries the mean risk ``means``
    gives it, and is filled with that mean's colour on the ramp, the fill colour MapLibre
    evaluated for each, by record. Both are awaited: while the hazard tiles of another map are
    swapped in, a feature can carry its new mean a moment before its fill is evaluated anew."""
    ramp = {record_id: _on_the_ramp(mean) for record_id, mean in means.items()}
    drawn = page.wait_for_function(
        """([means, ramp]) => {
            const features = window.safegroundMap.queryRenderedFeatures({ layers: ["hazard-fill"] })
                .filter((f) => f.properties.record_id in means);
            const id = (f) => f.properties.record_id;
            const near = (a, b) => Math.abs(a - b) <= 1e-3;
            const right = (f) => Math.abs(f.properties.risk_mean - means[id(f)]) <= 1e-6
                && ["r", "g", "b"].every((c, i) => near(f.layer.paint["fill-color"][c], ramp[id(f)][i]));
            if (!features.length || !features.every(right)) return null;
            return Object.fromEntries(features.map((f) =>
                [id(f), JSON.stringify(f.layer.paint["fill-color"])]));
        }""",
        arg=[means, ramp],
        timeout=30_000,
    )
    return drawn.json_value()


# A new hazardous area between the two of the site, drawn on the NTS form, then made narrower.
HILLSIDE = box(g.X0 + 0.013, g.Y0 + 0.002, g.X0 + 0.027, g.Y0 + 0.008)
HILLSIDE_NARROWER = box(g.X0 + 0.016, g.Y0 + 0.003, g.X0 + 0.024, g.Y0 + 0.007)
FORM_READY = "#report-form[data-ready=true]"
# A 1×1 PNG: a photo the browser can show.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


def drawn_shape(page, question: str):
    return shape(json.loads(page.input_value(f"{question} textarea.geometry")))


def test_a_saved_draft_is_reopened_from_the_drafts_tab_edited_and_submitted(
    page, browser, site: Site
) -> None:
    geometry = ".question[data-field=geometry]"
    name = ".question[data-field=name] input"
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=nts")
    page.wait_for_selector(FORM_READY)
    page.fill(name, "Hillside")
    page.select_option(".question[data-field=classification] select", "sha")
    page.fill(".question[data-field=reference_point] .lon", "46.92")
    page.fill(".question[data-field=reference_point] .lat", "39.905")
    page.fill(".question[data-field=date_of_information] input", "2022-06-01")
    page.fill("[data-question=reason] textarea", "Shepherd's report")
    page.click(f"{geometry} button.draw")
    draw_polygon(page, "safegroundFormMap", HILLSIDE)
    page.wait_for_selector(f"{geometry}[data-has-shape=true]")
    page.click("#save-draft")
    report_id = page.wait_for_selector("#report-form[data-saved]").get_attribute("data-saved")
    edit_link = f"/reports/new?form=nts&report={report_id}"
    # The new area's page lists the draft in its history, with a link to edit it.
    record_id = page.request.get(f"{site.url}/api/reports/{report_id}").json()["record_id"]
    page.goto(f"{site.url}/records/{record_id}")
    assert page.wait_for_selector("#history a.edit").get_attribute("href") == edit_link

    # The Drafts tab offers to edit it; the form opens with every answer as saved.
    page.goto(f"{site.url}/reports")
    page.click(".tabs button[data-status=draft]")
    page.locator(f"li.card[data-report-id='{report_id}'] a.edit").click()
    page.wait_for_url(f"{site.url}{edit_link}")
    page.wait_for_selector(FORM_READY)
    assert page.input_value(name) == "Hillside"
    assert page.input_value(".question[data-field=classification] select") == "sha"
    assert page.input_value(".question[data-field=reference_point] .lon") == "46.92"
    assert page.input_value(".question[data-field=date_of_information] input") == "2022-06-01"
    assert page.input_value("[data-question=reason] textarea") == "Shepherd's report"
    assert drawn_shape(page, geometry).symmetric_difference(HILLSIDE).area < 0.05 * HILLSIDE.area
    assert page.locator(f"{geometry} .shape-status").inner_text() == "Polygon with 4 corners."
    shot(page, "12-draft-reopened")

    # The register's rules still speak next to their fields, and a refused edit saves nothing.
    page.fill(".question[data-field=expected_returnees] input", "-5")
    page.click("#save-draft")
    problem = page.locator(".question[data-field=expected_returnees] .problem")
    problem.wait_for(state="visible")
    assert "greater than or equal to 0" in problem.inner_text()
    unchanged = page.request.get(f"{site.url}/api/reports/{report_id}").json()["changes"]
    assert unchanged["name"] == "Hillside" and unchanged.get("expected_returnees") is None
    page.fill(".question[data-field=expected_returnees] input", "")

    # A new name and a narrower polygon, saved onto the same report.
    page.fill(name, "Hillside north")
    page.click(f"{geometry} button.clear")
    page.wait_for_selector(f"{geometry}[data-has-shape=false]")
    page.click(f"{geometry} button.draw")
    draw_polygon(page, "safegroundFormMap", HILLSIDE_NARROWER)
    page.wait_for_selector(f"{geometry}[data-has-shape=true]")
    page.click("#save-draft")
    assert page.wait_for_selector("#report-form[data-saved]").get_attribute("data-saved") == (
        report_id
    )
    saved = page.request.get(f"{site.url}/api/reports/{report_id}").json()
    assert saved["status"] == "draft" and saved["changes"]["name"] == "Hillside north"
    narrower = shape(saved["changes"]["geometry"])
    assert narrower.symmetric_difference(HILLSIDE_NARROWER).area < 0.05 * HILLSIDE_NARROWER.area
    assert saved["changes"]["reference_point"]["coordinates"] == [46.92, 39.905]
    assert (saved["date_of_information"], saved["reason"]) == ("2022-06-01", "Shepherd's report")
    drafts = page.request.get(f"{site.url}/api/reports?status=draft&record_type=hazardous_area")
    assert [r["report_id"] for r in drafts.json()["items"]] == [int(report_id)]  # no new one

    # Only its author edits a draft: the IM officer is told so and offered no saving.
    officer = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(officer, site, "officer")
    officer.goto(f"{site.url}{edit_link}")
    officer.wait_for_selector(FORM_READY)
    refusal = officer.locator("#form-error")
    assert "clerk's draft: only its author can edit it" in refusal.inner_text()
    assert officer.input_value(name) == "Hillside north"
    assert officer.locator("#save-draft, #submit-report").count() == 0
    officer.context.close()

    # Submitted from the reopened form; reopened again, it is no longer a draft to edit.
    page.click("#submit-report")
    page.wait_for_selector("#report-form[data-submitted=true]", timeout=30_000)
    assert page.request.get(f"{site.url}/api/reports/{report_id}").json()["status"] == "submitted"
    page.goto(f"{site.url}{edit_link}")
    page.wait_for_selector(FORM_READY)
    refusal = page.locator("#form-error")
    assert "is submitted: only a draft can be edited" in refusal.inner_text()
    assert page.locator("#save-draft, #submit-report").count() == 0
    shot(page, "13-submitted-report-not-editable")


def test_an_accident_and_its_victims_are_submitted_together_and_approved_together(
    page, site: Site
) -> None:
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=accident")
    page.wait_for_selector(FORM_READY)
    page.fill(".question[data-field=date_of_information] input", "2021-04-21")
    page.select_option(".question[data-field=accident_type] select", "mine")
    # The same month as the site's accident: the dashboard's casualty chart keeps one row.
    page.fill(".question[data-field=accident_date] input", "2021-04-20")
    page.fill(".question[data-field=geometry] .lon", str(g.X0 + 0.022))
    page.fill(".question[data-field=geometry] .lat", str(g.Y0 + 0.006))
    page.fill(".question[data-field=hazard_id] input", "AZ-HA-2099-00009")
    victims = page.locator("fieldset.repeat[data-repeat=victims]")
    first = victims.locator(".entry").nth(0)
    first.locator(".question[data-field=outcome] select").select_option("injured")
    first.locator(".question[data-field=victim_status] select").select_option("civilian")
    first.locator(".question[data-field=name] input").fill("Aysel Aliyeva")
    victims.locator("button.add").click()
    second = victims.locator(".entry").nth(1)
    second.locator(".question[data-field=outcome] select").select_option("killed")
    page.set_input_files(
        "#photos", files=[{"name": "crater.png", "mimeType": "image/png", "buffer": PNG}]
    )

    # A rule broken by the accident: shown at its field, and none of the three is submitted.
    page.click("#submit-report")
    problem = page.locator("#report-form > .question[data-field=hazard_id] .problem")
    problem.wait_for(state="visible", timeout=30_000)
    assert "no hazardous area AZ-HA-2099-00009" in problem.inner_text()
    drafts = page.request.get(f"{site.url}/api/reports?status=draft").json()["items"]
    kinds = [r["record_type"] for r in drafts if r["record_type"] in ("accident", "victim")]
    assert sorted(kinds) == ["accident", "victim", "victim"]
    # The photo was saved with the drafts, as a draft naming the new accident.
    saved_photo = page.locator("fieldset.photos .saved-photos li")
    assert "crater.png" in saved_photo.inner_text() and "draft" in saved_photo.inner_text()
    shot(page, "14-accident-rule-error")

    page.fill(".question[data-field=hazard_id] input", "")
    page.click("#submit-report")
    page.wait_for_selector("#report-form[data-submitted=true]", timeout=30_000)
    status = page.locator("#form-status").inner_text()
    assert "Submitted for review" in status and "draft" not in status.lower()
    report_ids = [int(i) for i in page.get_attribute("#report-form", "data-saved").split(",")]
    reports = [page.request.get(f"{site.url}/api/reports/{i}").json() for i in report_ids]
    assert [(r["record_type"], r["status"]) for r in reports] == [
        ("accident", "submitted"),
        ("victim", "submitted"),
        ("victim", "submitted"),
        ("attachment", "submitted"),
    ]
    accident, *victim_reports, photo = reports
    assert {r["changes"]["accident_id"] for r in victim_reports} == {accident["record_id"]}
    assert photo["changes"]["target_id"] == accident["record_id"]
    shot(page, "15-accident-and-victims-submitted")
    log_out(page)

    # The IM officer sees the photo with the accident and approves them all in one go.
    log_in(page, site, "officer")
    page.goto(f"{site.url}/reports")
    card = page.locator(f"li.card[data-report-id='{accident['report_id']}']")
    victim_card = page.locator(f"li.card[data-report-id='{victim_reports[0]['report_id']}']")
    victim_card.locator(".goes-with").wait_for()
    assert f"new in report {accident['report_id']}: approve that first" in victim_card.inner_text()
    button = card.locator("button.approve-with-dependents")
    assert button.inner_text() == (
        f"Approve with the reports naming it (report {', '.join(map(str, report_ids[1:]))})"
    )
    preview = card.locator(f".dependents li[data-report-id='{photo['report_id']}'] img")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    shot(page, "16-accident-in-the-queue")
    button.click()
    for report_id in report_ids:
        page.locator(f"li.card[data-report-id='{report_id}'] .done").wait_for()
    shot(page, "17-accident-and-victims-approved")

    # The photo is on the approved accident's page.
    page.goto(f"{site.url}/records/{accident['record_id']}")
    attached = page.wait_for_selector("#attachments img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=attached)
    assert page.locator("#attachments a").inner_text() == "crater.png"

    victim_id = victim_reports[0]["record_id"]
    page.goto(f"{site.url}/records/{victim_id}")
    assert (
        page.wait_for_selector("td[data-field=accident_id]").inner_text() == (accident["record_id"])
    )
    assert page.locator("td[data-field=name]").inner_text() == "Aysel Aliyeva"
    shot(page, "18-victim-record")


def test_photo_captions_typed_in_the_form_go_with_their_files(page, site: Site) -> None:
    """Each chosen file gets a caption box; what is typed is the attachment's caption, one left
    empty has none, and the captions are shown again when the draft is reopened."""
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=eore")
    page.wait_for_selector(FORM_READY)
    page.fill(".question[data-field=session_date] input", "2021-06-01")
    page.fill(".question[data-field=place_name] input", "School 3")
    page.set_input_files(
        "#photos",
        files=[
            {"name": "lesson.png", "mimeType": "image/png", "buffer": PNG},
            {"name": "attendance.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4"},
        ],
    )
    captions = page.locator("fieldset.photos .chosen-photos input.caption")
    assert captions.count() == 2
    captions.nth(0).fill("Pupils at the risk education lesson")
    page.click("#save-draft")
    saved = page.wait_for_selector("#report-form[data-saved]").get_attribute("data-saved")
    session_report, *photo_reports = (int(i) for i in saved.split(","))
    photos = [page.request.get(f"{site.url}/api/reports/{i}").json() for i in photo_reports]
    assert [(p["changes"]["filename"], p["changes"].get("caption")) for p in photos] == [
        ("lesson.png", "Pupils at the risk education lesson"),
        ("attendance.pdf", None),
    ]
    assert captions.count() == 0  # attached: nothing chosen any more
    listed = page.locator("fieldset.photos .saved-photos li")
    assert "lesson.png — Pupils at the risk education lesson (report" in listed.nth(0).inner_text()

    # Reopened, the draft lists its files with their captions.
    page.goto(f"{site.url}/reports/new?form=eore&report={session_report}")
    page.wait_for_selector(FORM_READY)
    assert [listed.nth(i).inner_text() for i in range(listed.count())] == [
        f"lesson.png — Pupils at the risk education lesson (report {photo_reports[0]}, draft)",
        f"attendance.pdf (report {photo_reports[1]}, draft)",
    ]
    # So does the page of the session waiting for approval.
    session_id = photos[0]["changes"]["target_id"]
    page.goto(f"{site.url}/records/{session_id}")
    waiting = page.locator(f"#attachments li[data-report-id='{photo_reports[0]}']")
    assert "Pupils at the risk education lesson" in waiting.inner_text()
    shot(page, "18b-waiting-photo-with-caption")


def test_a_save_retried_after_a_failed_upload_attaches_each_file_once(page, site: Site) -> None:
    """Three files; the second upload fails. Saved again, the first is not sent again and the
    rest are attached. A second upload that reached the server but whose answer was lost is
    refused there (409 naming its attachment) when sent again, and shown as attached: one
    attachment per file, each with its caption."""
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=eore")
    page.wait_for_selector(FORM_READY)
    page.fill(".question[data-field=session_date] input", "2021-06-02")
    page.fill(".question[data-field=place_name] input", "School 4")
    names = ["board.png", "pupils.png", "leaflet.png"]
    page.set_input_files(
        "#photos",
        # Distinct bytes after the image's end: three different files (SHA-256), all pictures.
        files=[
            {"name": name, "mimeType": "image/png", "buffer": PNG + name.encode()} for name in names
        ],
    )
    captions = page.locator("fieldset.photos .chosen-photos input.caption")
    for i, name in enumerate(names):
        captions.nth(i).fill(f"caption of {name}")

    sent: list[str] = []
    failing = {"pupils.png": "network"}  # how the next upload of that file fails

    def upload(route) -> None:
        name = next(
            n for n in names if f'filename="{n}"'.encode() in route.request.post_data_buffer
        )
        sent.append(name)
        how = failing.pop(name, None)
        if how == "network":
            route.abort("connectionreset")  # never reaches the server
        elif how == "answer lost":
            route.fetch()  # the server attaches it...
            route.abort("connectionreset")  # ...and the browser never hears so
        else:
            route.continue_()

    page.route("**/api/records/*/attachments", upload)
    status = page.locator("#form-status")
    problem = page.locator("fieldset.photos > .problem")
    listed = page.locator("fieldset.photos .saved-photos li")

    def save() -> None:
        page.click("#save-draft")
        page.wait_for_function(
            "() => !document.getElementById('form-status').textContent.startsWith('Saving')"
        )

    save()
    assert sent == ["board.png", "pupils.png"]
    assert "pupils.png was not attached: no answer from the server" in problem.inner_text()
    assert "It and the 1 other file not attached yet stay chosen" in problem.inner_text()
    assert status.inner_text().startswith("Draft saved: report ")
    assert "not every file was attached" in status.inner_text()
    assert [listed.nth(i).inner_text().split(" (report")[0] for i in range(listed.count())] == [
        "board.png — caption of board.png"
    ]
    # The files not attached stay chosen, with the captions typed.
    assert [captions.nth(i).input_value() for i in range(captions.count())] == [
        "caption of pupils.png",
        "caption of leaflet.png",
    ]
    shot(page, "18c-upload-failed")

    failing["pupils.png"] = "answer lost"
    save()
    assert sent == ["board.png", "pupils.png", "pupils.png"]  # board.png is not sent again
    assert "pupils.png was not attached" in problem.inner_text()

    save()
    page.wait_for_selector("#report-form[data-saved]")
    assert sent == ["board.png", "pupils.png", "pupils.png", "pupils.png", "leaflet.png"]
    assert captions.count() == 0
    notice = page.locator("fieldset.photos .photo-notice")
    assert "pupils.png is attached to" in notice.inner_text()
    assert "so it is not attached twice" in notice.inner_text()
    assert problem.is_hidden()
    assert "Draft saved" in status.inner_text()
    shot(page, "18d-upload-retried")

    # One attachment per file, each with its caption, and the form lists exactly those.
    session_report, *photo_reports = (
        int(i) for i in page.get_attribute("#report-form", "data-saved").split(",")
    )
    dependents = page.request.get(f"{site.url}/api/reports/{session_report}/dependents").json()
    attachments = [r for r in dependents["items"] if r["record_type"] == "attachment"]
    assert sorted((a["changes"]["filename"], a["changes"]["caption"]) for a in attachments) == [
        (name, f"caption of {name}") for name in sorted(names)
    ]
    assert sorted(photo_reports) == sorted(a["report_id"] for a in attachments)
    assert sorted(listed.nth(i).inner_text().split(" —")[0] for i in range(3)) == sorted(names)
    assert listed.count() == 3


def _file_as(site: Site, user: str, target_id: str, name: str, content: bytes, caption: str):
    """An attachment filed (approved) at once, as a reviewer's upload to a registered record."""
    from safeground.service.attachments import attach

    register = Register.open(site.store)
    try:
        with register.store.begin() as conn:
            return attach(register, conn, user, target_id, name, content, caption, "image/png")
    finally:
        register.store.engine.dispose()


def test_a_file_on_a_registered_record_is_not_attached_to_it_again(page, site: Site) -> None:
    """A photo the officer filed on the hazard: the clerk's form sending the same file is told
    it is attached there already, with which caption, and lists it as attached; so is the
    record page's Attach. The hazard keeps one attachment of it."""
    content = PNG + b"the gate"
    photo = _file_as(site, "officer", site.other_hazard_id, "gate.png", content, "The gate")
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=items_found&hazard_id={site.other_hazard_id}")
    page.wait_for_selector(FORM_READY)
    page.fill(".question[data-field=date_of_information] input", "2021-06-03")
    entry = page.locator("fieldset.repeat[data-repeat=items] .entry").first
    entry.locator(".question[data-field=category] select").select_option("uxo")
    page.set_input_files(
        "#photos", files=[{"name": "IMG_0042.png", "mimeType": "image/png", "buffer": content}]
    )
    page.fill("fieldset.photos .chosen-photos input.caption", "Gate, north side")
    page.click("#save-draft")
    page.wait_for_selector("#report-form[data-saved]")
    notice = page.locator("fieldset.photos .photo-notice").inner_text()
    assert (
        f"IMG_0042.png is attached to {site.other_hazard_id} already: {photo.record_id} is the "
        f"same file (gate.png, attached by report {photo.report_id}" in notice
    )
    assert (
        f'Your caption "Gate, north side" was not used: {photo.record_id} keeps its caption '
        f'"The gate" (Edit caption on the page of {site.other_hazard_id} changes it).'
    ) in notice
    listed = page.locator(f"fieldset.photos .saved-photos li[data-report-id='{photo.report_id}']")
    assert listed.inner_text() == f"gate.png — The gate (report {photo.report_id}, approved)"
    shot(page, "18e-file-on-the-record-already")

    page.goto(f"{site.url}/records/{site.other_hazard_id}")
    page.wait_for_selector("#attachments img")
    page.set_input_files(
        "#attach-form input[type=file]",
        files=[{"name": "again.png", "mimeType": "image/png", "buffer": content}],
    )
    page.click("#attach-form button[type=submit]")
    error = page.wait_for_selector("#attach-form .error:not([hidden])")
    assert f"again.png is attached to {site.other_hazard_id} already" in error.inner_text()
    links = page.request.get(f"{site.url}/api/records/{site.other_hazard_id}/links").json()
    same = [a for a in links["attachments"] if a["sha256"] == photo.sha256]
    assert [a["record_id"] for a in same] == [photo.record_id]


def test_a_saved_files_caption_is_edited_from_its_records_page(page, browser, site: Site) -> None:
    """Edit caption on a file listed on a record's page files an update report on its
    attachment, submitted for review; the reviewer approves it in the queue like any other, and
    the page then shows the new caption."""
    photo = _file_as(site, "officer", site.hazard_id, "marker.png", PNG + b"marker", "Marker")
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/records/{site.hazard_id}")
    item = page.locator(f"#attachments li[data-record-id='{photo.record_id}']")
    editor = item.locator("form.caption-editor")
    assert editor.is_hidden()
    item.locator("button.edit-caption").click()
    field = editor.locator("input[name=caption]")
    assert field.input_value() == "Marker"
    editor.locator("button[type=submit]").click()
    assert editor.locator(".error").inner_text() == "The caption is unchanged."
    field.fill("Red marker stone, north-east corner")
    shot(page, "23-editing-a-caption")
    editor.locator("button[type=submit]").click()
    status = item.locator(".caption-status")
    status.wait_for()
    found = re.search(r"report (\d+)", status.inner_text())
    assert found and "submitted for review" in status.inner_text()
    report_id = int(found.group(1))
    report = page.request.get(f"{site.url}/api/reports/{report_id}").json()
    assert (report["record_id"], report["operation"], report["status"], report["author"]) == (
        photo.record_id,
        "update",
        "submitted",
        "clerk",
    )
    assert report["changes"] == {"caption": "Red marker stone, north-east corner"}
    assert "marker.png — Marker (" in item.inner_text()  # as approved, until the change is
    assert editor.is_hidden()
    shot(page, "24-caption-change-submitted")

    reviewer = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(reviewer, site, "officer")
    reviewer.goto(f"{site.url}/reports")
    card = reviewer.locator(f"li.card[data-report-id='{report_id}']")
    assert f"Update Attachment {photo.record_id}" in card.inner_text()
    assert "Caption: Red marker stone, north-east corner" in card.inner_text()
    card.locator("button.approve").click()
    card.locator(".done").wait_for()
    reviewer.context.close()

    page.reload()
    item.wait_for()
    assert "marker.png — Red marker stone, north-east corner (" in item.inner_text()
    assert item.locator("img").get_attribute("alt") == "Red marker stone, north-east corner"


# What a base map tile looks like on the page: the raster tiles' one colour, or the fill
# basemap.js gives a vector base map's polygons; neither is a colour the page draws itself.
RASTER_COLOUR = (200, 30, 160)
VECTOR_FILL = (0xEC, 0xE8, 0xDC)


@pytest.fixture(
    scope="module",
    params=[("pmtiles", False), ("pmtiles", True), ("mbtiles", False), ("mbtiles", True)],
    ids=["pmtiles-raster", "pmtiles-vector", "mbtiles-raster", "mbtiles-vector"],
)
def base_map_site(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseMapSite]:
    """A register with one hazardous area, served with a local base map."""
    kind, vector = request.param
    folder = tmp_path_factory.mktemp(f"base-{kind}")
    base = folder / f"base.{kind}"
    make = vector_tile if vector else partial(raster_tile, RASTER_COLOUR)
    tiles = {position: make(str(position)) for position in world()}
    (write_pmtiles if kind == "pmtiles" else write_mbtiles)(base, tiles, vector=vector)
    path = folder / "register.gpkg"
    register = Register.create(str(path), country="AZ")
    hazard = add(
        register, "hazardous_area", date(2021, 2, 1), name="Field 1", geometry=g.HAZARD.wkt
    )
    register.store.migrate()
    with register.store.begin() as conn:
        accounts.add_account(conn, "officer", "im_officer", PASSWORD)
    register.store.engine.dispose()
    with serve(Settings(store=str(path), secret_key="browser-test", base_map=base)) as url:
        yield BaseMapSite(url, kind, vector, hazard)


def base_map_responses(page, site: BaseMapSite) -> list:
    """The responses to the page's requests for the base map, from now on."""
    served: list = []
    from_base = f"{site.url}/basemap"
    page.on("response", lambda r: served.append(r) if r.url.startswith(from_base) else None)
    return served


def check_base_map_drawn(page, site: BaseMapSite, served: list, handle: str, name: str) -> None:
    """The map ``window[handle]`` fetched the base map's tiles (a PMTiles archive in byte
    ranges, MBTiles tile by tile) and draws them where the register has nothing, under the
    hazardous area, with their credit."""
    the_map = f"window.{handle}"
    page.wait_for_function(
        f"{the_map} && {the_map}.getSource('basemap') && {the_map}.isSourceLoaded('basemap')",
        timeout=30_000,
    )
    # Drawn and faded in: "idle" waits for tiles and fades alike.
    page.evaluate(
        f"new Promise((idle) => {{ {the_map}.once('idle', idle); {the_map}.triggerRepaint(); }})"
    )
    shot(page, f"{name}-{site.kind}-{'vector' if site.vector else 'raster'}")

    if site.kind == "pmtiles":
        # The header and root directory, then the tile: every one a byte range of the file.
        assert len(served) >= 2
        for response in served:
            assert response.url == f"{site.url}/basemap.pmtiles"
            assert response.request.headers["range"].startswith("bytes=")
            assert response.status == 206 and response.headers["content-range"].startswith("bytes ")
    else:
        assert served and all(r.status == 200 for r in served)
        assert {r.headers["content-type"] for r in served} == {
            "application/x-protobuf" if site.vector else "image/png"
        }

    layers = page.evaluate(f"{the_map}.getStyle().layers.map((layer) => layer.id)")
    base_layers = [i for i, layer in enumerate(layers) if layer.startswith("basemap")]
    assert base_layers and max(base_layers) < layers.index("hazard-fill")
    container = page.evaluate_handle(f"{the_map}.getContainer()").as_element()
    assert ATTRIBUTION in container.query_selector(".maplibregl-ctrl-attrib").inner_text()

    # A point at the map's left edge, where the register draws nothing: the base map's colour.
    canvas = container.query_selector("canvas")
    picture = Image.open(io.BytesIO(canvas.screenshot()))
    free = (20, picture.height // 2)
    drawn_there = page.evaluate(
        f"([x, y]) => {the_map}.queryRenderedFeatures([x, y])"
        ".filter((f) => !f.layer.id.startsWith('basemap')).length",
        list(free),
    )
    assert drawn_there == 0
    expected = VECTOR_FILL if site.vector else RASTER_COLOUR
    colour = picture.convert("RGB").getpixel(free)
    assert all(abs(a - b) <= 3 for a, b in zip(colour, expected, strict=True)), colour


def test_local_base_map_is_drawn_under_the_register(page, base_map_site: BaseMapSite) -> None:
    site = base_map_site
    served = base_map_responses(page, site)
    log_in(page, site, "officer")
    page.wait_for_function(
        "Number(document.getElementById('map').dataset.renderedHazards) >= 1", timeout=30_000
    )
    check_base_map_drawn(page, site, served, "safegroundMap", "19-base-map")


def test_form_and_record_maps_draw_the_base_map(page, base_map_site: BaseMapSite) -> None:
    """Polygons are drawn on the report form over the base map, and a record is shown on it."""
    site = base_map_site
    served = base_map_responses(page, site)
    log_in(page, site, "officer")
    served.clear()  # the map page's
    page.goto(f"{site.url}/reports/new?form=nts")
    page.wait_for_selector(FORM_READY)
    check_base_map_drawn(page, site, served, "safegroundFormMap", "20-form-base-map")
    served.clear()
    page.goto(f"{site.url}/records/{site.hazard_id}")
    check_base_map_drawn(page, site, served, "safegroundRecordMap", "21-record-base-map")


def _post_as(page, site: Site, path: str, body: dict | None = None) -> dict:
    """A write through the API with the page's session, as the pages make it."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "safeground_csrf")
    response = page.request.post(f"{site.url}{path}", headers={"X-CSRF-Token": token}, data=body)
    assert response.ok, response.text()
    return dict(response.json())


def test_a_victims_draft_is_edited_whatever_state_its_accident_is_in(
    page, browser, site: Site
) -> None:
    log_in(page, site, "clerk")
    page.goto(f"{site.url}/reports/new?form=accident")
    page.wait_for_selector(FORM_READY)
    page.fill(".question[data-field=date_of_information] input", "2021-04-22")
    page.select_option(".question[data-field=accident_type] select", "uxo")
    page.fill(".question[data-field=geometry] .lon", str(g.X0 + 0.021))
    page.fill(".question[data-field=geometry] .lat", str(g.Y0 + 0.007))
    entry = page.locator("fieldset.repeat[data-repeat=victims] .entry").first
    entry.locator(".question[data-field=outcome] select").select_option("injured")
    page.click("#save-draft")
    saved = page.wait_for_selector("#report-form[data-saved]").get_attribute("data-saved")
    accident_id, victim_id = (int(i) for i in saved.split(","))
    _post_as(page, site, f"/api/reports/{accident_id}/submit")  # the accident alone

    # The Drafts tab offers to edit the victim: its accident's form, the accident left as it is.
    page.goto(f"{site.url}/reports?status=draft")
    page.locator(f"li.card[data-report-id='{victim_id}'] a.edit").click()
    page.wait_for_url(f"{site.url}/reports/new?form=accident&report={victim_id}")
    page.wait_for_selector(FORM_READY)
    notice = page.locator("#form-notice")
    assert f"Report {accident_id} is submitted: it stays as it is" in notice.inner_text()
    assert page.locator(".question[data-field=accident_type] select").is_disabled()
    assert page.input_value(".question[data-field=accident_type] select") == "uxo"
    outcome = entry.locator(".question[data-field=outcome] select")
    assert outcome.is_enabled() and outcome.input_value() == "injured"
    outcome.select_option("killed")
    entry.locator(".question[data-field=age] input").fill("34")
    shot(page, "19-victim-edited-after-its-accident-was-submitted")
    page.click("#save-draft")
    assert page.wait_for_selector("#report-form[data-saved]").get_attribute("data-saved") == str(
        victim_id
    )
    victim = page.request.get(f"{site.url}/api/reports/{victim_id}").json()
    assert (victim["status"], victim["changes"]["outcome"], victim["changes"]["age"]) == (
        "draft",
        "killed",
        34,
    )
    accident = page.request.get(f"{site.url}/api/reports/{accident_id}").json()
    assert (accident["status"], accident["changes"]["accident_type"]) == ("submitted", "uxo")

    # Once the accident is approved, the victim is still edited there, then submitted.
    officer = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    log_in(officer, site, "officer")
    _post_as(officer, site, f"/api/reports/{accident_id}/approve")
    officer.context.close()
    page.goto(f"{site.url}/reports/new?form=accident&report={victim_id}")
    page.wait_for_selector(FORM_READY)
    assert f"Report {accident_id} is approved" in page.locator("#form-notice").inner_text()
    entry.locator(".question[data-field=age] input").fill("35")
    page.click("#submit-report")
    page.wait_for_selector("#report-form[data-submitted=true]", timeout=30_000)
    victim = page.request.get(f"{site.url}/api/reports/{victim_id}").json()
    assert (victim["status"], victim["changes"]["age"]) == ("submitted", 35)


def test_a_draft_is_withdrawn_from_the_drafts_tab_and_from_its_form(page, site: Site) -> None:
    log_in(page, site, "clerk")
    on = "2022-07-01"
    wrong = _post_as(
        page,
        site,
        "/api/reports",
        {"record_type": "organisation", "date_of_information": on, "changes": {"name": "Typo"}},
    )
    accident = _post_as(
        page,
        site,
        "/api/reports",
        {
            "record_type": "accident",
            "date_of_information": on,
            "changes": {
                "accident_type": "uxo",
                "geometry": {"type": "Point", "coordinates": [g.X0 + 0.023, g.Y0 + 0.007]},
            },
        },
    )
    victim = _post_as(
        page,
        site,
        "/api/reports",
        {
            "record_type": "victim",
            "date_of_information": on,
            "changes": {"accident_id": accident["record_id"], "outcome": "injured"},
        },
    )

    # From the Drafts tab: asked to confirm, then gone from the drafts, kept as withdrawn.
    page.goto(f"{site.url}/reports?status=draft")
    card = page.locator(f"li.card[data-report-id='{wrong['report_id']}']")
    card.locator("button.withdraw").click()
    confirm = card.locator(".confirm-withdraw")
    assert f"Withdraw report {wrong['report_id']}?" in confirm.inner_text()
    assert card.locator("button.withdraw").is_hidden()
    confirm.locator("button.cancel").click()
    assert confirm.is_hidden() and card.locator("button.withdraw").is_visible()
    card.locator("button.withdraw").click()
    confirm.locator("input[name=withdraw-reason]").fill("typed the wrong name")
    shot(page, "20-withdrawing-a-draft")
    confirm.locator("button.confirm").click()
    card.wait_for(state="detached")
    assert page.locator(f"li.card[data-report-id='{accident['report_id']}']").is_visible()
    shown = page.request.get(f"{site.url}/api/reports/{wrong['report_id']}").json()
    assert (shown["status"], shown["reviewed_by"], shown["review_reason"]) == (
        "withdrawn",
        "clerk",
        "typed the wrong name",
    )
    page.click(".tabs button[data-status=withdrawn]")
    withdrawn_card = page.locator(f"li.card[data-report-id='{wrong['report_id']}']")
    assert "Withdrawn by clerk: “typed the wrong name”" in withdrawn_card.inner_text()

    # From the reopened accident form: the victim's draft goes with the accident's.
    page.goto(f"{site.url}/reports/new?form=accident&report={accident['report_id']}")
    page.wait_for_selector(FORM_READY)
    page.click("#withdraw-draft")
    page.click(".confirm-withdraw button.confirm")
    ids = page.wait_for_selector("#report-form[data-withdrawn]").get_attribute("data-withdrawn")
    assert ids == f"{accident['report_id']},{victim['report_id']}"
    assert page.locator("#save-draft, #submit-report").count() == 0
    for report in (accident, victim):
        assert page.request.get(f"{site.url}/api/reports/{report['report_id']}").json()[
            "status"
        ] == ("withdrawn")
    shot(page, "21-draft-withdrawn-from-its-form")

    # The record's page keeps it in its history, withdrawn, with who.
    page.goto(f"{site.url}/records/{accident['record_id']}")
    entry = page.wait_for_selector(f"#history li[data-report-id='{accident['report_id']}']")
    assert "Withdrawn by clerk" in entry.inner_text()
    assert page.locator("#history a.edit").count() == 0


def test_an_administrator_withdraws_a_disabled_accounts_draft_from_the_drafts_tab(
    page, site: Site
) -> None:
    register = Register.open(site.store)
    try:
        with register.store.begin() as conn:
            accounts.add_account(conn, "leaver", "reviewer", PASSWORD)
        (left,) = register.draft(
            "leaver", [Submission("organisation", {"name": "Left behind"}, date(2022, 8, 1))]
        )
        (kept,) = register.draft(
            "officer", [Submission("organisation", {"name": "Still wanted"}, date(2022, 8, 1))]
        )
        with register.store.begin() as conn:
            accounts.disable_account(conn, "leaver", by="admin")
    finally:
        register.store.engine.dispose()

    log_in(page, site, "admin")
    page.goto(f"{site.url}/reports?status=draft")
    card = page.locator(f"li.card[data-report-id='{left.report_id}']")
    assert "leaver's account is disabled" in card.inner_text()
    # An active account's draft offers an administrator nothing.
    other = page.locator(f"li.card[data-report-id='{kept.report_id}']")
    assert other.locator("button.withdraw").count() == 0
    card.locator("button.withdraw").click()
    confirm = card.locator(".confirm-withdraw")
    assert f"Withdraw report {left.report_id} on behalf of leaver?" in confirm.inner_text()
    confirm.locator("button.confirm").click()  # no reason: asked for one, nothing sent
    assert "Say why you withdraw leaver's draft." in confirm.locator(".error").inner_text()
    confirm.locator("input[name=withdraw-reason]").fill("leaver left the programme")
    shot(page, "22-withdrawing-a-disabled-accounts-draft")
    confirm.locator("button.confirm").click()
    card.wait_for(state="detached")
    shown = page.request.get(f"{site.url}/api/reports/{left.report_id}").json()
    assert (shown["status"], shown["author"], shown["reviewed_by"], shown["review_reason"]) == (
        "withdrawn",
        "leaver",
        "admin",
        "leaver left the programme",
    )
