"""HTTP Basic with an API token as the password, for GIS clients that cannot send a bearer
header (QGIS 3.22, ArcGIS Pro); on GeoPackage and PostGIS."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safeground.service import accounts
from safeground.storage.schema import api_token, audit_log
from safeground.web.deps import BASIC_CHALLENGE
from tests.web.conftest import PASSWORD

CHALLENGE = 'Basic realm="safeground", charset="UTF-8"'
HAZARDS = "/ogc/collections/hazardous_area/items"


def basic(username: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.fixture
def token(scenario) -> str:
    """An API token of the reviewer."""
    with scenario.register.store.begin() as conn:
        return accounts.create_token(conn, "reviewer", label="QGIS")[1]


def _audited(scenario, action: str) -> int:
    with scenario.register.store.read() as conn:
        return conn.execute(
            select(func.count()).select_from(audit_log).where(audit_log.c.action == action)
        ).scalar_one()


def test_the_challenge_is_the_one_documented():
    assert BASIC_CHALLENGE == CHALLENGE


def test_basic_with_the_accounts_name_and_its_token_reads_like_the_bearer(client, token, scenario):
    me = client.get("/api/me", headers=basic("reviewer", token))
    assert me.status_code == 200
    assert (me.json()["username"], me.json()["role"]) == ("reviewer", "reviewer")
    hazards = client.get(HAZARDS, headers=basic("reviewer", token))
    assert hazards.status_code == 200, hazards.text
    assert [f["id"] for f in hazards.json()["features"]] == [scenario.hazard]
    collections = client.get("/ogc/collections", headers=basic("reviewer", token)).json()
    assert "hazardous_area" in {c["id"] for c in collections["collections"]}
    assert client.get(
        "/api/records/" + scenario.hazard, headers=basic("reviewer", token)
    ).is_success


def test_anonymous_ogc_401_challenges_for_basic_and_the_public_layer_stays_open(client):
    refused = client.get(HAZARDS)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == CHALLENGE
    assert client.get("/ogc/collections/hazardous_area").headers["WWW-Authenticate"] == CHALLENGE
    assert client.get("/ogc/collections/admin_area/items").status_code == 200
    public = client.get("/ogc/collections").json()["collections"]
    assert [c["id"] for c in public] == ["admin_area"]


def test_api_401s_do_not_challenge_so_browsers_show_no_login_dialog(client):
    """The pages call /api with fetch: a Basic challenge would pop up the browser's own dialog."""
    refused = client.get("/api/records", params={"type": "hazardous_area"})
    assert refused.status_code == 401
    assert "WWW-Authenticate" not in refused.headers
    bearer = client.get("/api/me", headers={"Authorization": "Bearer sg_nothing"})
    assert bearer.status_code == 401 and "WWW-Authenticate" not in bearer.headers


@pytest.mark.parametrize(
    "username, secret",
    [
        ("officer", "TOKEN"),  # another account's name with the reviewer's token
        ("reviewer", "sg_" + "x" * 43),  # no such token
        ("reviewer", PASSWORD),  # the account's own password: never over Basic
        ("nobody", "TOKEN"),
    ],
)
def test_wrong_user_unknown_token_or_account_password_is_401_challenged(
    client, token, username, secret
):
    credentials = basic(username, token if secret == "TOKEN" else secret)
    for path in (HAZARDS, "/api/me", "/ogc/collections/admin_area/items"):
        refused = client.get(path, headers=credentials)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.headers["WWW-Authenticate"] == CHALLENGE
        assert "API token" in refused.json()["detail"]


def test_a_revoked_token_or_disabled_account_is_401(client, token, scenario):
    assert client.get(HAZARDS, headers=basic("reviewer", token)).status_code == 200
    with scenario.register.store.begin() as conn:
        token_id = conn.execute(select(func.max(api_token.c.token_id))).scalar_one()
        reviewer = accounts.get_account(conn, "reviewer").principal
        accounts.revoke_token(conn, reviewer, token_id)
    assert client.get(HAZARDS, headers=basic("reviewer", token)).status_code == 401
    with scenario.register.store.begin() as conn:
        fresh = accounts.create_token(conn, "reviewer")[1]
    assert client.get(HAZARDS, headers=basic("reviewer", fresh)).status_code == 200
    with scenario.register.store.begin() as conn:
        accounts.disable_account(conn, "reviewer", by="admin")
    assert client.get(HAZARDS, headers=basic("reviewer", fresh)).status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no colon").decode(),
        "Basic " + base64.b64encode(b"reviewer:").decode(),
        "Basic " + base64.b64encode(b":sg_token").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
def test_malformed_basic_credentials_are_401(client, header):
    refused = client.get(HAZARDS, headers={"Authorization": header})
    assert refused.status_code == 401
    assert "malformed" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == CHALLENGE


def test_basic_credentials_only_read(app, token):
    """Browsers resend Basic credentials by themselves, as they do cookies: with no CSRF token
    to check, they may not change anything. The bearer header may."""
    body = {"record_type": "organisation", "date_of_information": "2022-01-01",
            "changes": {"name": "X"}}  # fmt: skip
    refused = TestClient(app).post("/api/reports", json=body, headers=basic("reviewer", token))
    assert refused.status_code == 403
    assert "Bearer" in refused.json()["detail"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert TestClient(app).post("/api/reports", json=body, headers=bearer).status_code == 201
    assert TestClient(app).post("/api/tokens", headers=basic("reviewer", token)).status_code == 403


def test_basic_failures_neither_count_as_failed_logins_nor_lock_anyone_out(client, scenario, token):
    attempts = scenario.settings.login_attempts
    for _ in range(attempts + 2):
        assert client.get(HAZARDS, headers=basic("reviewer", PASSWORD + "x")).status_code == 401
        assert client.get(HAZARDS, headers=basic("reviewer", PASSWORD)).status_code == 401
    assert _audited(scenario, accounts.LOGIN_FAILED) == 0
    login = client.post("/api/login", json={"username": "reviewer", "password": PASSWORD})
    assert login.status_code == 200


def test_a_login_lockout_leaves_the_accounts_tokens_working(client, scenario, token):
    """The login rate limit guards passwords; a token cannot be guessed, and keeps working."""
    for _ in range(scenario.settings.login_attempts):
        failed = client.post("/api/login", json={"username": "reviewer", "password": "wrong"})
        assert failed.status_code == 401
    locked = client.post("/api/login", json={"username": "reviewer", "password": PASSWORD})
    assert locked.status_code == 429
    anonymous = TestClient(client.app)
    assert anonymous.get(HAZARDS, headers=basic("reviewer", token)).status_code == 200
    assert _audited(scenario, accounts.LOGIN_FAILED) == scenario.settings.login_attempts
