"""A small register for the OGC API and tile tests, the same on both backends.

Twelve hazardous areas in a row (south of 39.5° N, east of 47° E, 0.01° apart), a triangle whose
envelope reaches further than its shape, land cleared on the first area, an item found, an
accident with a named victim (whose name must never appear), two organisations' tasks and a
district around all of them. Accounts: an IM officer and a data entry clerk of organisation A,
each with an API token.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from shapely.geometry import Polygon, box

from safeground.service import accounts
from safeground.service.register import Register
from tests.helpers import add

VICTIM_NAME = "Zeynab Qasimova-Secret"
DISTRICT = box(46.9, 39.4, 47.3, 39.7)
TRIANGLE = Polygon([(47.2, 39.5), (47.21, 39.5), (47.2, 39.51)])


def hazard_box(i: int) -> Polygon:
    return box(47.0 + 0.01 * i, 39.5, 47.004 + 0.01 * i, 39.503)


@dataclass
class MapData:
    district: str
    org_a: str
    org_b: str
    hazards: list[str]  # hazard i is hazard_box(i); the last one is TRIANGLE
    activity: str
    eo_item: str
    accident: str
    tasks: dict[str, str]  # organisation → task
    im_token: str
    clerk_token: str


def build(register: Register) -> MapData:
    d0 = date(2020, 1, 1)
    district = add(register, "admin_area", d0, name="Fuzuli", level=2, geometry=DISTRICT.wkt)
    org_a = add(register, "organisation", d0, name="Operator A")
    org_b = add(register, "organisation", d0, name="Operator B")
    hazards = [
        add(
            register,
            "hazardous_area",
            date(2021, 3, 1 + i),
            geometry=hazard_box(i).wkt,
            classification="cha" if i % 3 == 0 else "sha",
            admin_area_id=district if i < 8 else None,
            organisation_id=org_a if i % 2 == 0 else org_b,
        )
        for i in range(12)
    ]
    hazards.append(
        add(register, "hazardous_area", date(2021, 3, 20), geometry=TRIANGLE.wkt, name="Triangle")
    )
    strip = box(47.0, 39.5, 47.002, 39.503)
    activity = add(
        register,
        "activity",
        date(2021, 6, 1),
        hazard_id=hazards[0],
        activity_type="clearance",
        organisation_id=org_a,
        processed=[{"land_type": "cleared", "geometry": strip.wkt}],
    )
    eo_item = add(
        register,
        "eo_item",
        date(2021, 6, 2),
        category="ap_mine",
        found_date="2021-06-02",
        hazard_id=hazards[0],
        organisation_id=org_a,
        admin_area_id=district,
        geometry="POINT(47.001 39.501)",
    )
    accident = add(
        register,
        "accident",
        date(2021, 7, 1),
        accident_type="mine",
        accident_date="2021-07-01",
        admin_area_id=district,
        geometry="POINT(47.05 39.52)",
    )
    add(register, "victim", date(2021, 7, 1), accident_id=accident, outcome="injured",
        name=VICTIM_NAME)  # fmt: skip
    tasks = {
        org: add(
            register,
            "task",
            date(2021, 8, 1),
            hazard_id=hazards[k + 2],
            activity_type="clearance",
            organisation_id=org,
            planned_start="2021-09-01",
            planned_end="2021-10-31",
            geometry=hazard_box(k + 2).wkt,
        )
        for k, org in enumerate((org_a, org_b))
    }
    with register.store.begin() as conn:
        accounts.add_account(conn, "im", "im_officer", "long-enough-password")
        accounts.add_account(conn, "clerk", "data_entry", "long-enough-password", org_a)
        im_token = accounts.create_token(conn, "im")[1]
        clerk_token = accounts.create_token(conn, "clerk")[1]
    return MapData(
        district,
        org_a,
        org_b,
        hazards,
        activity,
        eo_item,
        accident,
        tasks,
        im_token,
        clerk_token,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(store_location: str, access_log: Path | None = None) -> Iterator[tuple[str, MapData]]:
    """This register, served under uvicorn in its own process on a free port; yields the OGC
    API's URL and the data. A separate process because GDAL holds the GIL while it fetches
    (pyogrio), so a server thread in the test process would never answer it. With
    ``access_log``, uvicorn's access log (one line per request, with its status) goes there."""
    register = Register.create(store_location, country="AZ")
    data = build(register)
    register.store.engine.dispose()
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "safeground.web.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "SAFEGROUND_STORE": store_location, "PYTHONUNBUFFERED": "1"}
    with open(access_log or os.devnull, "w", encoding="utf-8") as log:
        level = ["--log-level", "info" if access_log else "warning"]
        server = subprocess.Popen([*command, *level], env=env, stdout=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert server.poll() is None, "the server stopped"
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/ogc", data
        finally:
            server.terminate()
            server.wait(timeout=10)
