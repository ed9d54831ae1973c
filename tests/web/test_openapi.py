"""/api/openapi.json declares the credentials the application takes, on both backends."""

from __future__ import annotations

import base64

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.definitions import OPENAPI_31  # OAS 3.1's JSON Schema

from safeground.service import accounts
from tests.web.conftest import PASSWORD, headers_by_scheme

SCHEMES = {
    "apiToken": ("http", "bearer"),
    "apiTokenBasic": ("http", "basic"),
    "session": ("apiKey", "cookie"),
    "csrfToken": ("apiKey", "header"),
}


@pytest.fixture
def document(client) -> dict:
    return client.get("/api/openapi.json").json()


@pytest.fixture
def token(scenario) -> str:
    """An API token of the IM officer, who may read everything."""
    with scenario.register.store.begin() as conn:
        return accounts.create_token(conn, "officer", "openapi test")[1]


def test_the_document_is_valid_openapi_31_and_declares_the_schemes(document):
    validator = jsonschema_rs.Draft202012Validator(OPENAPI_31)
    assert [error.message for error in validator.iter_errors(document)] == []
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s.get("scheme") or s["in"]) for name, s in schemes.items()} == SCHEMES
    assert schemes["session"]["name"] == "safeground_session"
    assert schemes["csrfToken"]["name"] == "X-CSRF-Token"
    # Sanity: the validator does look at security schemes.
    broken = {**document, "components": {"securitySchemes": {"x": {"type": "password"}}}}
    assert list(validator.iter_errors(broken))


def test_public_operations_declare_no_credentials_or_allow_none(document, client):
    paths = document["paths"]
    assert "security" not in paths["/api/login"]["post"]
    assert "security" not in paths["/forms"]["get"]
    assert paths["/ogc"]["get"]["security"] == []
    for path in ("/api/ledger", "/api/me", "/api/dashboard", "/tiles/layers.json"):
        assert {} in paths[path]["get"]["security"], path
        assert client.get(path).status_code == 200, path


def test_each_declared_scheme_works_and_anonymous_calls_are_refused(document, client, token):
    """Every GET operation without path parameters answers as its security says: anonymously
    only where ``{}`` is allowed, and with each scheme it lists (as the IM officer)."""
    sent = headers_by_scheme(client, "officer", PASSWORD, token)
    # Answered anonymously for some parameters only: the public record type.
    params = {"/api/records": {"type": "admin_area"}}
    refused = set()
    for path, operations in document["paths"].items():
        operation = operations.get("get")
        if operation is None or "{" in path or "security" not in operation:
            continue
        security = operation["security"]
        answer = client.get(path, params=params.get(path))
        if not security or {} in security:
            assert answer.status_code == 200, (path, answer.text)
        else:
            refused.add(path)
            assert answer.status_code == 401, (path, answer.text)
        for requirement in security:
            headers = {k: v for name in requirement for k, v in sent[name].items()}
            answer = client.get(path, params=params.get(path), headers=headers)
            assert answer.status_code == 200, (path, requirement, answer.text)
    assert {"/api/reports", "/api/audit"} <= refused


def test_writes_take_a_bearer_token_or_a_session_with_its_csrf_token(document, app, token):
    security = document["paths"]["/api/tokens"]["post"]["security"]
    assert security == [{"apiToken": []}, {"session": [], "csrfToken": []}]
    client = TestClient(app)
    assert client.post("/api/tokens").status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/tokens", headers=bearer).status_code == 201
    # HTTP Basic is for reading only, so it is not declared here: refused.
    pair = base64.b64encode(f"officer:{token}".encode()).decode()
    assert client.post("/api/tokens", headers={"Authorization": f"Basic {pair}"}).status_code == 403
    login = client.post("/api/login", json={"username": "officer", "password": PASSWORD})
    assert client.post("/api/tokens").status_code == 403  # the session without its CSRF token
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    assert client.post("/api/tokens", headers=csrf).status_code == 201


def test_the_ogc_paths_are_those_of_the_ogc_api_document(document, client):
    ogc = client.get("/ogc/api").json()
    listed = {path: ops for path, ops in document["paths"].items() if path.startswith("/ogc")}
    assert set(listed) == set(ogc["paths"])
    for path, operations in ogc["paths"].items():
        for method, operation in operations.items():
            mine = listed[path][method]
            assert mine["security"] == operation["security"], (path, method)
            assert set(mine["responses"]) == set(operation["responses"]), (path, method)
    schemes = document["components"]["securitySchemes"]
    assert ogc["components"]["securitySchemes"].items() <= schemes.items()


def test_attachment_downloads_need_credentials_whatever_the_attachment(
    document, client, login, token, scenario
):
    """Attachments are never public: the download declares no `{}`, and a caller without
    credentials (401) or with the public role (403) is refused before anything is looked up,
    so the answer says nothing of whether the attachment exists."""
    security = document["paths"]["/api/attachments/{record_id}/content"]["get"]["security"]
    assert {} not in security
    officer, visitor = login("officer"), login("visitor")
    photo = officer.post(
        f"/api/records/{scenario.hazard}/attachments",
        files={"file": ("site.png", b"\x89PNG photo", "image/png")},
    ).json()
    for record_id in (photo["record_id"], "AZ-ATT-2099-00001", scenario.hazard):
        url = f"/api/attachments/{record_id}/content"
        assert client.get(url).status_code == 401, record_id
        assert visitor.get(url).status_code == 403, record_id
    assert officer.get("/api/attachments/AZ-ATT-2099-00001/content").status_code == 404
    assert officer.get(f"/api/attachments/{scenario.hazard}/content").status_code == 404
    sent = headers_by_scheme(client, "officer", PASSWORD, token)
    for requirement in security:
        headers = {k: v for name in requirement for k, v in sent[name].items()}
        answer = client.get(f"/api/attachments/{photo['record_id']}/content", headers=headers)
        assert (answer.status_code, answer.content) == (200, b"\x89PNG photo"), requirement


def test_operations_declaring_credentials_refuse_anonymous_callers_before_any_lookup(
    document, client
):
    """Every API read with path parameters that declares credentials answers an anonymous
    caller 401 for made-up parameters too, not 404: what exists is not told to the anonymous."""
    checked = []
    for path, operations in document["paths"].items():
        operation = operations.get("get")
        if not path.startswith("/api/") or "{" not in path or operation is None:
            continue
        if {} in operation.get("security", [{}]):
            continue
        values = {
            p["name"]: 99999 if p["schema"].get("type") == "integer" else "AZ-ATT-2099-00001"
            for p in operation["parameters"]
            if p["in"] == "path"
        }
        answer = client.get(path.format(**values))
        assert answer.status_code == 401, (path, answer.text)
        checked.append(path)
    assert "/api/attachments/{record_id}/content" in checked
