"""``GET /api/dashboard/{chart}``: JSON and CSV, aggregates for the public, records for accounts."""

from datetime import date

import pytest
from fastapi.testclient import TestClient

from safeground.service import accounts
from safeground.web.app import create_app
from safeground.web.settings import Settings
from tests.helpers import add

PASSWORD = "a long enough password"


@pytest.fixture
def client(register, store_location):
    add(register, "eo_item", date(2021, 7, 1), category="ap_mine", quantity=3)
    add(register, "eo_item", date(2021, 7, 2), category="uxo", quantity=2)
    accident = add(
        register, "accident", date(2021, 3, 2), accident_type="mine", accident_date="2021-03-01"
    )
    add(
        register,
        "victim",
        date(2021, 3, 2),
        accident_id=accident,
        outcome="injured",
        victim_status="civilian",
        name="Kamran Aliyev",
    )
    app = create_app(Settings(store=store_location, secret_key="test"))
    with register.store.begin() as conn:
        accounts.add_account(conn, "officer", "im_officer", PASSWORD)
    with TestClient(app) as client:
        yield client
    app.state.register.store.engine.dispose()


def test_public_sees_aggregates_as_json_and_csv(client):
    found = client.get("/api/dashboard/items_by_category").json()
    assert found["columns"] == ["category", "label", "items", "records"]
    assert found["rows"] == [["ap_mine", "AP mine", 3, 1], ["uxo", "UXO", 2, 1]]
    csv = client.get("/api/dashboard/items_by_category?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert 'filename="items_by_category.csv"' in csv.headers["content-disposition"]
    assert csv.text.splitlines() == [
        "category,label,items,records",
        "ap_mine,AP mine,3,1",
        "uxo,UXO,2,1",
    ]
    casualties = client.get("/api/dashboard/casualties_by_month?format=csv").text
    assert "2021-03" in casualties and "Kamran" not in casualties


def test_records_chart_needs_an_account(client):
    assert "expiring_accreditations" not in client.get("/api/dashboard").json()["charts"]
    assert client.get("/api/dashboard/expiring_accreditations").status_code == 401
    client.post("/api/login", json={"username": "officer", "password": PASSWORD})
    assert "expiring_accreditations" in client.get("/api/dashboard").json()["charts"]
    found = client.get("/api/dashboard/expiring_accreditations")
    assert found.status_code == 200 and found.json()["rows"] == []


def test_unknown_chart_and_period_are_4xx(client):
    assert client.get("/api/dashboard/pie").status_code == 404
    assert client.get("/api/dashboard/land_released?period=week").status_code == 422
    assert client.get("/api/dashboard/land_released?period=year").json()["rows"] == []
