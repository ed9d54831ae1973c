"""Shared fixtures: every register test runs on the embedded GeoPackage and on PostGIS.

PostGIS tests use ``SAFEGROUND_TEST_POSTGIS_URL`` (``make test`` starts a local server and sets
it). Without it they skip locally; on CI (``CI=true``) a skipped PostGIS test is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from safeground.service.register import Register

POSTGIS_URL = os.environ.get("SAFEGROUND_TEST_POSTGIS_URL")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.postgis)])
def store_location(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "gpkg":
        yield str(tmp_path / "register.gpkg")
        return
    if not POSTGIS_URL:
        if os.environ.get("CI"):
            pytest.fail("PostGIS tests must run on CI: SAFEGROUND_TEST_POSTGIS_URL is not set")
        pytest.skip("no PostGIS: set SAFEGROUND_TEST_POSTGIS_URL (make test starts one)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGIS_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGIS_URL else "?"
    yield f"{POSTGIS_URL}{separator}options=-csearch_path%3D{schema},public"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture
def register(store_location: str) -> Iterator[Register]:
    reg = Register.create(store_location, country="AZ")
    yield reg
    reg.store.engine.dispose()
