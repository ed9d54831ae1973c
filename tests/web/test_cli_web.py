"""``safeground user`` and ``safeground token`` through the command line, and serving."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from safeground.cli.main import app as cli
from safeground.storage.schema import audit_log
from safeground.web.app import create_app
from safeground.web.settings import Settings

runner = CliRunner()


def run(store: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(cli, [*args, "--store", store], input=stdin)
    return result.exit_code, result.output


def test_user_add_role_list_and_token(scenario, store_location):
    org = scenario.orgs["alpha"]
    code, out = run(
        store_location, "user", "add", "field1", "--role", "data_entry", "--organisation", org
    )
    assert code == 0, out
    password = re.search(r"password: (\S+)", out).group(1)
    code, out = run(
        store_location,
        "user",
        "add",
        "field2",
        "--role",
        "reviewer",
        "--password-stdin",
        stdin="a long secret phrase\n",
    )
    assert code == 0 and "password:" not in out

    client = TestClient(create_app(Settings(store=store_location)))
    assert (
        client.post("/api/login", json={"username": "field1", "password": password}).json()["role"]
        == "data_entry"
    )
    assert (
        client.post(
            "/api/login", json={"username": "field2", "password": "a long secret phrase"}
        ).status_code
        == 200
    )

    code, out = run(store_location, "user", "role", "field1", "im_officer")
    assert code == 0 and "field1 is now im_officer" in out
    # the session opened above sees the new role at once
    client.post("/api/login", json={"username": "field1", "password": password})
    assert client.get("/api/me").json()["role"] == "im_officer"

    code, out = run(store_location, "user", "list")
    assert code == 0
    assert re.search(r"field1\s+im_officer\s+" + org, out)

    code, out = run(store_location, "token", "create", "field2", "--label", "nightly export")
    assert code == 0
    token = re.search(r": (sg_\S+)", out).group(1)
    me = TestClient(client.app, headers={"Authorization": f"Bearer {token}"}).get("/api/me").json()
    assert me["username"] == "field2"
    client.app.state.register.store.engine.dispose()


def test_user_errors_are_clear_and_exit_1(scenario, store_location):
    code, out = run(store_location, "user", "add", "x1", "--role", "data_entry")
    assert code == 1 and "organisation" in out
    code, out = run(store_location, "user", "add", "x2", "--role", "wizard")
    assert code == 1 and "unknown role 'wizard'" in out
    code, out = run(
        store_location, "user", "add", "x3", "--role", "admin", "--password-stdin", stdin="short\n"
    )
    assert code == 1 and "at least 10 characters" in out
    code, out = run(store_location, "user", "add", "clerk", "--role", "admin")
    assert code == 1 and "exists already" in out
    code, out = run(
        store_location,
        "user",
        "add",
        "x4",
        "--role",
        "data_entry",
        "--organisation",
        "AZ-ORG-1999-00001",
    )
    assert code == 1 and "no organisation AZ-ORG-1999-00001" in out
    code, out = run(store_location, "user", "role", "nobody", "admin")
    assert code == 1 and "no account 'nobody'" in out


def test_serve_on_a_missing_register_is_a_clear_error(tmp_path):
    code, out = run(str(tmp_path / "none.gpkg"), "serve")
    assert code == 1 and "no register" in out


def test_user_password_and_disable_end_sessions(scenario, store_location, login):
    clerk = login("clerk")
    token = clerk.post("/api/tokens").json()["token"]
    code, out = run(store_location, "user", "password", "clerk")
    assert code == 0
    new_password = re.search(r"new password for clerk: (\S+)", out).group(1)
    assert clerk.get("/api/me").json()["role"] == "public"  # the session ended
    fresh = TestClient(clerk.app)
    assert (
        fresh.post("/api/login", json={"username": "clerk", "password": new_password}).status_code
        == 200
    )

    code, out = run(store_location, "user", "disable", "clerk")
    assert code == 0 and "clerk is disabled" in out
    assert fresh.get("/api/me").json()["role"] == "public"
    assert (
        fresh.post("/api/login", json={"username": "clerk", "password": new_password}).status_code
        == 401
    )
    bearer = TestClient(clerk.app, headers={"Authorization": f"Bearer {token}"})
    assert bearer.get("/api/me").status_code == 401
    code, out = run(store_location, "user", "list")
    assert re.search(r"clerk\s+data_entry.*disabled", out)


def test_account_commands_are_audited_and_failed_ones_are_not(
    scenario, store_location, monkeypatch
):
    monkeypatch.setenv("SAFEGROUND_USER", "root.admin")
    with scenario.register.store.read() as conn:
        before = conn.execute(select(func.max(audit_log.c.audit_id))).scalar_one()
    org = scenario.orgs["alpha"]
    attempts = [
        ("user", "add", "field1", "--role", "data_entry", "--organisation", org),
        ("user", "add", "field2", "--role", "wizard"),
        ("user", "role", "field1", "reviewer"),
        ("user", "role", "nobody", "admin"),
        ("user", "password", "field1"),
        ("user", "password", "nobody"),
        ("token", "create", "field1", "--label", "nightly export"),
        ("token", "create", "nobody"),
        ("user", "disable", "field1"),
        ("user", "disable", "nobody"),
    ]
    codes = [run(store_location, *args)[0] for args in attempts]
    assert codes == [0, 1] * 5
    with scenario.register.store.read() as conn:
        rows = conn.execute(
            select(audit_log).where(audit_log.c.audit_id > before).order_by(audit_log.c.audit_id)
        ).all()
    assert [(r.action, r.username) for r in rows] == [
        ("account.add", "root.admin"),
        ("account.role", "root.admin"),
        ("account.password", "root.admin"),
        ("token.create", "root.admin"),
        ("account.disable", "root.admin"),
    ]
    assert {r.target for r in rows if r.action != "token.create"} == {"field1"}
    assert rows[3].detail == {"label": "nightly export", "account": "field1"}
