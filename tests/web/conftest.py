"""A small register served by the web application, with one account per role.

Every fixture builds on ``store_location``, so the API tests run on GeoPackage and PostGIS.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from argon2 import PasswordHasher, profiles
from fastapi.testclient import TestClient

from safeground.service import accounts
from safeground.service.register import Register
from safeground.web.app import create_app
from safeground.web.settings import Settings
from tests.helpers import add

PASSWORD = "correct horse battery"
HAZARD = "POLYGON((46.90 39.90, 46.91 39.90, 46.91 39.91, 46.90 39.91, 46.90 39.90))"
# Accounts: username → (role, organisation key).
ACCOUNTS = {
    "clerk": ("data_entry", "alpha"),
    "clerk2": ("data_entry", "beta"),
    "reviewer": ("reviewer", "alpha"),
    "officer": ("im_officer", None),
    "admin": ("admin", None),
    "visitor": ("public", None),
}


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Argon2's cheapest parameters: the production ones cost ~0.3 s a hash by design."""
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))


@dataclass
class Scenario:
    register: Register
    settings: Settings
    orgs: dict[str, str]
    hazard: str
    accident: str
    victim: str
    tasks: dict[str, str]


@pytest.fixture
def scenario(store_location: str) -> Iterator[Scenario]:
    register = Register.create(store_location, country="AZ")
    register.store.migrate()
    on = date(2021, 3, 1)
    orgs = {
        key: add(register, "organisation", on, name=f"Operator {key}") for key in ("alpha", "beta")
    }
    hazard = add(register, "hazardous_area", on, name="Field 12", geometry=HAZARD)
    accident = add(register, "accident", on, accident_type="mine", geometry="POINT(46.905 39.905)")
    victim = add(
        register,
        "victim",
        on,
        accident_id=accident,
        outcome="injured",
        name="Leyla Mammadova",
        phone="+994 50 000 00 00",
    )
    tasks = {
        key: add(
            register, "task", on, hazard_id=hazard, activity_type="ts", organisation_id=orgs[key]
        )
        for key in ("alpha", "beta")
    }
    with register.store.begin() as conn:
        for username, (role, org) in ACCOUNTS.items():
            accounts.add_account(conn, username, role, PASSWORD, orgs.get(org) if org else None)
    settings = Settings(store=store_location, secret_key="test-secret", max_upload_bytes=50_000)
    yield Scenario(register, settings, orgs, hazard, accident, victim, tasks)
    register.store.engine.dispose()


@pytest.fixture
def app(scenario: Scenario):
    application = create_app(scenario.settings)
    yield application
    application.state.register.store.engine.dispose()


@pytest.fixture
def client(app) -> TestClient:
    """An anonymous client."""
    return TestClient(app)


def logged_in(app, username: str) -> TestClient:
    """A client of ``app`` logged in (cookie session) as ``username``, sending its CSRF token."""
    session = TestClient(app)
    response = session.post("/api/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    session.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return session


def headers_by_scheme(
    client: TestClient, username: str, password: str, token: str
) -> dict[str, dict[str, str]]:
    """Headers that authenticate ``username`` by each scheme the OpenAPI documents declare: an
    API token as bearer and as Basic password, and a session cookie. The client's own cookies
    are cleared, so that each request sends only the headers it is given, or none."""
    response = client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    cookie = response.cookies["safeground_session"]
    client.cookies.clear()
    pair = base64.b64encode(f"{username}:{token}".encode()).decode()
    return {
        "apiToken": {"Authorization": f"Bearer {token}"},
        "apiTokenBasic": {"Authorization": f"Basic {pair}"},
        "session": {"Cookie": f"safeground_session={cookie}"},
    }


@pytest.fixture
def login(app) -> Callable[[str], TestClient]:
    """A client logged in as one of ACCOUNTS."""
    return lambda username: logged_in(app, username)


@pytest.fixture
def draft_hazard(login) -> Callable[..., dict]:
    """Draft (and optionally submit) a new hazardous area as ``username``."""

    def make(username: str = "clerk", submit: bool = False, **changes) -> dict:
        session = login(username)
        body = {
            "record_type": "hazardous_area",
            "date_of_information": "2022-05-01",
            "changes": {
                "name": "Orchard",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[47.0, 40.0], [47.01, 40.0], [47.01, 40.01], [47.0, 40.01], [47.0, 40.0]]
                    ],
                },
                **changes,
            },
        }
        response = session.post("/api/reports", json=body)
        assert response.status_code == 201, response.text
        report = response.json()
        if submit:
            response = session.post(f"/api/reports/{report['report_id']}/submit")
            assert response.status_code == 200, response.text
            report = response.json()
        return report

    return make
