"""The REST API, endpoint by endpoint and role by role, on GeoPackage and PostGIS."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from safeground.domain.access import Principal, Role
from safeground.service import accounts
from safeground.storage.schema import audit_log, blob, record_tables, report
from safeground.web.api.views import hidden_records
from tests.helpers import add, retire, update
from tests.web.conftest import PASSWORD


def _audit(scenario, action: str) -> list[dict]:
    with scenario.register.store.read() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == action))
        return [dict(r._mapping) for r in rows]


# -- who am I, login, logout --------------------------------------------------------------------


def test_me_for_each_role(client, login):
    assert client.get("/api/me").json()["role"] == "public"
    for username, role in [
        ("clerk", "data_entry"),
        ("reviewer", "reviewer"),
        ("officer", "im_officer"),
        ("admin", "admin"),
    ]:
        me = login(username).get("/api/me").json()
        assert (me["username"], me["role"]) == (username, role)
        assert me["csrf_token"]


def test_login_sets_secure_cookies_and_logout_ends_the_session(client, scenario):
    response = client.post("/api/login", data={"username": "officer", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("safeground_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert any(c.startswith("safeground_csrf=") for c in cookie)
    csrf = response.json()["csrf_token"]
    assert client.get("/api/me").json()["username"] == "officer"
    assert client.post("/api/logout").status_code == 403  # no CSRF token
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/me").json()["role"] == "public"
    assert _audit(scenario, "logout")[0]["username"] == "officer"


def test_a_stolen_session_id_is_useless_after_logout(app, login):
    from fastapi.testclient import TestClient

    officer = login("officer")
    session_id = officer.cookies.get("safeground_session")
    assert officer.post("/api/logout").status_code == 204
    thief = TestClient(app, cookies={"safeground_session": session_id})
    assert thief.get("/api/me").json()["role"] == "public"


def test_wrong_password_is_401_and_audited(client, scenario):
    response = client.post("/api/login", json={"username": "clerk", "password": "nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong username or password", "problems": []}
    assert [r["username"] for r in _audit(scenario, "login.failed")] == ["clerk"]


def test_login_is_rate_limited_per_username_and_client(client, scenario):
    for _ in range(scenario.settings.login_attempts):
        assert (
            client.post("/api/login", json={"username": "clerk", "password": "x"}).status_code
            == 401
        )
    blocked = client.post("/api/login", json={"username": "clerk", "password": PASSWORD})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= scenario.settings.login_window_s + 1
    # another username from the same client is not blocked
    assert (
        client.post("/api/login", json={"username": "officer", "password": PASSWORD}).status_code
        == 200
    )


def test_login_spraying_many_usernames_from_one_client_is_rate_limited(client, scenario):
    names = iter(f"nobody{i}" for i in range(1000))
    for _ in range(scenario.settings.login_client_attempts):
        failed = client.post("/api/login", json={"username": next(names), "password": "x"})
        assert failed.status_code == 401
    blocked = client.post("/api/login", json={"username": "officer", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1


def test_login_needs_username_and_password(client):
    response = client.post("/api/login", json={"username": "clerk"})
    assert response.status_code == 422
    assert response.json()["problems"]


def test_a_role_change_takes_effect_on_the_next_request(login, scenario):
    from safeground.service import accounts

    clerk = login("clerk")
    assert clerk.get("/api/me").json()["can_approve"] is False
    with scenario.register.store.begin() as conn:
        accounts.set_role(conn, "clerk", "reviewer", by="admin")
    assert clerk.get("/api/me").json()["can_approve"] is True


# -- CSRF and tokens ----------------------------------------------------------------------------


def test_csrf_is_required_for_cookie_sessions_but_not_for_bearer_tokens(app, login, draft_hazard):
    from fastapi.testclient import TestClient

    clerk = login("clerk")
    body = {
        "record_type": "organisation",
        "date_of_information": "2022-01-01",
        "changes": {"name": "X"},
    }
    no_token = TestClient(app, cookies=dict(clerk.cookies))
    refused = no_token.post("/api/reports", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = no_token.post("/api/reports", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert no_token.get("/api/reports").status_code == 200  # reading needs no token

    token = clerk.post("/api/tokens", json={"label": "script"})
    assert token.status_code == 201
    secret = token.json()["token"]
    script = TestClient(app, headers={"Authorization": f"Bearer {secret}"})
    assert script.get("/api/me").json()["username"] == "clerk"
    assert script.post("/api/reports", json=body).status_code == 201
    assert clerk.delete(f"/api/tokens/{token.json()['token_id']}").status_code == 204
    assert script.get("/api/me").status_code == 401


def test_tokens_are_stored_hashed_and_only_their_owner_revokes_them(login, scenario):
    from safeground.storage.schema import api_token

    created = login("clerk").post("/api/tokens").json()
    with scenario.register.store.read() as conn:
        stored = conn.execute(select(api_token.c.token_hash)).scalars().all()
    assert created["token"] not in stored and len(stored) == 1
    assert login("clerk2").delete(f"/api/tokens/{created['token_id']}").status_code == 403
    assert login("admin").delete(f"/api/tokens/{created['token_id']}").status_code == 204
    assert login("admin").delete("/api/tokens/999").status_code == 404


def test_anonymous_cannot_create_tokens(client):
    assert client.post("/api/tokens").status_code == 401


# -- records ------------------------------------------------------------------------------------


def test_public_sees_no_records_but_admin_areas_and_the_ledger(client, scenario):
    assert client.get("/api/records").status_code == 401
    assert client.get(f"/api/records/{scenario.hazard}").status_code == 401
    assert client.get(f"/api/records/{scenario.hazard}/history").status_code == 401
    assert client.get(f"/api/records/{scenario.victim}").status_code == 401
    assert client.get("/api/reports").status_code == 401
    assert client.get("/api/records?type=admin_area").status_code == 200
    ledger = client.get("/api/ledger?by=classification")
    assert ledger.status_code == 200
    assert ledger.json()["rows"][0]["hazards"] == 1


def test_records_list_and_filters(login, scenario):
    officer = login("officer")
    page = officer.get("/api/records?type=hazardous_area").json()
    assert page["total"] == 1
    hazard = page["items"][0]
    assert hazard["record_id"] == scenario.hazard
    assert hazard["geometry"]["type"] == "Polygon"
    assert hazard["remaining_m2"] > 0
    assert officer.get("/api/records?type=hazardous_area&status=closed").json()["total"] == 0
    assert (
        officer.get(f"/api/records?type=task&operator={scenario.orgs['alpha']}").json()["total"]
        == 1
    )
    bad = officer.get("/api/records?type=organisation&status=open")
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "status"
    unknown = officer.get("/api/records?type=bunker")
    assert unknown.status_code == 422 and unknown.json()["problems"][0]["field"] == "record_type"
    assert officer.get("/api/records?limit=0").status_code == 422


def test_data_entry_sees_only_its_organisations_tasks(login, scenario):
    clerk = login("clerk")
    tasks = clerk.get("/api/records?type=task").json()
    assert [t["record_id"] for t in tasks["items"]] == [scenario.tasks["alpha"]]
    assert clerk.get(f"/api/records/{scenario.tasks['alpha']}").status_code == 200
    assert clerk.get(f"/api/records/{scenario.tasks['beta']}").status_code == 403
    assert clerk.get(f"/api/records/{scenario.tasks['beta']}/history").status_code == 403
    assert login("reviewer").get(f"/api/records/{scenario.tasks['beta']}").status_code == 200


def test_data_entry_reads_nothing_of_another_organisations_tasks(login, scenario):
    """Nor their files, the links naming them or their reports, approved ones included: a
    task's history and files are as much the other organisation's as its current view."""
    officer = login("officer")
    files = {}
    for key in ("alpha", "beta"):
        answer = officer.post(
            f"/api/records/{scenario.tasks[key]}/attachments",
            files={"file": (f"{key}.jpg", key.encode() * 10, "image/jpeg")},
        )
        assert answer.status_code == 201, answer.text
        files[key] = answer.json()
    links = {
        key: add(
            scenario.register,
            "link",
            date(2021, 3, 2),
            from_id=scenario.hazard,
            to_id=scenario.tasks[key],
            relation="planned on",
        )
        for key in ("alpha", "beta")
    }
    beta_task_report = officer.get(f"/api/records/{scenario.tasks['beta']}/history").json()
    beta_report_id = beta_task_report["entries"][0]["report_id"]
    for username, own, other in (("clerk", "alpha", "beta"), ("clerk2", "beta", "alpha")):
        clerk = login(username)
        mine, theirs = files[own]["record_id"], files[other]["record_id"]
        assert clerk.get(f"/api/records/{mine}").status_code == 200
        assert clerk.get(f"/api/attachments/{mine}/content").status_code == 200
        for url in (
            f"/api/records/{theirs}",
            f"/api/records/{theirs}/history",
            f"/api/records/{theirs}/links",
            f"/api/attachments/{theirs}/content",
            f"/api/records/{links[other]}",
            f"/api/records/{links[other]}/history",
        ):
            assert clerk.get(url).status_code == 403, (username, url)
        for record_type, expected in (("attachment", mine), ("link", links[own])):
            listed = clerk.get(f"/api/records?type={record_type}").json()["items"]
            assert [r["record_id"] for r in listed] == [expected], (username, record_type)
        for record_type, expected in (("task", own), ("attachment", own)):
            reports = clerk.get(f"/api/reports?record_type={record_type}").json()["items"]
            named = {r["record_id"] for r in reports}
            wanted = scenario.tasks[expected] if record_type == "task" else mine
            assert named == {wanted}, (username, record_type)
        hazard = clerk.get(f"/api/records/{scenario.hazard}/links").json()["referenced_by"]
        tasks = [r["record_id"] for r in hazard if r["record_type"] == "task"]
        assert tasks == [scenario.tasks[own]], username
        linked = clerk.get(f"/api/records/{scenario.hazard}/links").json()["links"]
        assert [link["link_id"] for link in linked] == [links[own]], username
    clerk = login("clerk")
    assert clerk.get(f"/api/reports/{beta_report_id}").status_code == 403
    reviewer = login("reviewer")
    assert reviewer.get(f"/api/attachments/{files['beta']['record_id']}/content").status_code == 200
    assert len(reviewer.get("/api/reports?record_type=task").json()["items"]) == 2


def _file_and_link(officer, scenario, task: str) -> tuple[dict, str]:
    """A file attached to the task (by the IM officer: filed at once) and a link naming it."""
    answer = officer.post(
        f"/api/records/{task}/attachments",
        files={"file": (f"{task}.jpg", task.encode() * 10, "image/jpeg")},
    )
    assert answer.status_code == 201, answer.text
    link = add(
        scenario.register,
        "link",
        date(2021, 3, 2),
        from_id=scenario.hazard,
        to_id=task,
        relation="planned on",
    )
    return answer.json(), link


def _reads_the_task(clerk, scenario, task: str, files: list[dict], links: list[str]) -> bool:
    """Whether the clerk reads the task's reports (its history too), its files and its links,
    or none of them (a mixture fails the test), by ID and in lists, the task current or
    retired."""
    by_id = [f"/api/records/{task}/history"]
    for file in files:
        by_id += [
            f"/api/records/{file['record_id']}",
            f"/api/records/{file['record_id']}/history",
            f"/api/records/{file['record_id']}/links",
            f"/api/attachments/{file['record_id']}/content",
            f"/api/reports/{file['report_id']}",
            f"/api/reports/{file['report_id']}/content",
        ]
    for link in links:
        by_id += [f"/api/records/{link}", f"/api/records/{link}/history"]
    with scenario.register.store.read() as conn:
        reports = conn.scalars(select(report.c.report_id).where(report.c.record_id == task))
        by_id += [f"/api/reports/{i}" for i in reports]
    answers = {url: clerk.get(url).status_code for url in by_id}
    listed = {
        "records": {
            r["record_id"]
            for kind in ("attachment", "link")
            for r in clerk.get(f"/api/records?type={kind}").json()["items"]
        },
        "reports": {
            r["record_id"]
            for kind in ("task", "attachment", "link")
            for r in clerk.get(f"/api/reports?record_type={kind}").json()["items"]
        },
        "links": {
            x["link_id"] for x in clerk.get(f"/api/records/{scenario.hazard}/links").json()["links"]
        },
    }
    file_ids = {file["record_id"] for file in files}
    named = {
        "records": file_ids | set(links),
        "reports": {task} | file_ids | set(links),
        "links": set(links),
    }
    found = {key: ids & listed[key] for key, ids in named.items()}
    if set(answers.values()) == {200} and found == named:
        return True
    assert set(answers.values()) == {403} and not any(found.values()), (answers, found)
    return False


def test_a_retired_task_of_another_organisation_stays_hidden(login, scenario):
    """Retiring a task takes it out of the current views, not out of its organisation: its
    reports, the files attached to it and the links naming it stay hidden from another
    organisation's data entry, by ID and in lists, as while it was current."""
    officer = login("officer")
    named = {
        key: _file_and_link(officer, scenario, scenario.tasks[key]) for key in ("alpha", "beta")
    }
    clerks = {"alpha": login("clerk"), "beta": login("clerk2")}
    for retired in (False, True):
        if retired:
            for key in ("alpha", "beta"):
                retire(scenario.register, "task", scenario.tasks[key], date(2021, 4, 1))
        for key, clerk in clerks.items():
            for task_key, (file, link) in named.items():
                task = scenario.tasks[task_key]
                reads = _reads_the_task(clerk, scenario, task, [file], [link])
                assert reads == (task_key == key), (key, task_key, retired)
    reviewer = login("reviewer")
    assert len(reviewer.get("/api/reports?record_type=task").json()["items"]) == 4


def test_a_task_is_its_organisations_as_its_reports_leave_it(login, scenario):
    """A task handed over to another organisation goes with its reports, files and links: the
    organisation it belongs to now (or did when it was retired) reads them all, earlier owners
    nothing. Reports count in the order of their dates of information: a late one dated
    earlier falls into its place."""
    task = scenario.tasks["beta"]
    file, link = _file_and_link(login("officer"), scenario, task)
    update(
        scenario.register, task, "task", date(2021, 6, 1), organisation_id=scenario.orgs["alpha"]
    )
    # Approved later, dated earlier: the handover above stands.
    update(scenario.register, task, "task", date(2021, 4, 1), organisation_id=scenario.orgs["beta"])
    update(scenario.register, task, "task", date(2021, 7, 1), priority=2)  # names no organisation
    clerk, clerk2 = login("clerk"), login("clerk2")
    for retired in (False, True):
        if retired:
            retire(scenario.register, "task", task, date(2021, 8, 1))
        assert _reads_the_task(clerk, scenario, task, [file], [link]), retired
        assert not _reads_the_task(clerk2, scenario, task, [file], [link]), retired


def test_a_task_whose_organisation_was_cleared_is_no_data_entry_accounts(login, scenario):
    """As in its current view: an update clearing the organisation leaves the task no
    organisation's, retired or not."""
    task = scenario.tasks["alpha"]
    file, link = _file_and_link(login("officer"), scenario, task)
    update(scenario.register, task, "task", date(2021, 5, 1), organisation_id=None)
    clerk = login("clerk")
    for retired in (False, True):
        if retired:
            retire(scenario.register, "task", task, date(2021, 8, 1))
        assert not _reads_the_task(clerk, scenario, task, [file], [link]), retired


def test_data_entry_reads_the_history_of_its_own_retired_records(login, scenario):
    """A retired record's history is read as its reports are through /api/reports: data entry
    reads its own organisation's retired task and a retired link, not another organisation's
    retired task; reviewers and administrators read every report of a retired record."""
    link = add(
        scenario.register,
        "link",
        date(2021, 3, 2),
        from_id=scenario.hazard,
        to_id=scenario.accident,
        relation="near",
    )
    for key in ("alpha", "beta"):
        retire(scenario.register, "task", scenario.tasks[key], date(2021, 4, 1))
    retire(scenario.register, "link", link, date(2021, 4, 1))
    clerk = login("clerk")
    for record_id, record_type in ((scenario.tasks["alpha"], "task"), (link, "link")):
        history = clerk.get(f"/api/records/{record_id}/history")
        assert history.status_code == 200, history.text
        entries = history.json()["entries"]
        assert [e["operation"] for e in entries] == ["create", "retire"]
        reports = clerk.get(f"/api/reports?record_type={record_type}").json()["items"]
        listed = sorted(r["report_id"] for r in reports if r["record_id"] == record_id)
        assert [e["report_id"] for e in entries] == listed
    assert clerk.get(f"/api/records/{scenario.tasks['beta']}/history").status_code == 403
    assert clerk.get("/api/records/AZ-TSK-2099-00001/history").status_code == 404
    for username in ("reviewer", "admin"):
        session = login(username)
        for record_id in (*scenario.tasks.values(), link):
            history = session.get(f"/api/records/{record_id}/history")
            assert history.status_code == 200, (username, history.text)
            operations = [e["operation"] for e in history.json()["entries"]]
            assert operations == ["create", "retire"], (username, record_id)


def test_files_and_links_on_a_hidden_file_or_link_are_hidden_in_lists_too(login, scenario):
    """A file attached to a link naming another organisation's task, a link naming a file
    attached to that task, and a file on that link in turn, are hidden as the link and the
    file are: from the other organisation's data entry by ID and in lists alike, the task
    current or retired."""
    officer = login("officer")
    task = scenario.tasks["beta"]
    file, link = _file_and_link(officer, scenario, task)

    def attach(record_id: str, content: bytes) -> dict:
        answer = officer.post(
            f"/api/records/{record_id}/attachments",
            files={"file": ("plan.jpg", content, "image/jpeg")},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    naming_file = add(
        scenario.register,
        "link",
        date(2021, 3, 3),
        from_id=scenario.hazard,
        to_id=file["record_id"],
        relation="photo of",
    )
    files = [file, attach(link, b"plan" * 10), attach(naming_file, b"note" * 10)]
    links = [link, naming_file]
    clerk, clerk2 = login("clerk"), login("clerk2")
    for retired in (False, True):
        if retired:
            retire(scenario.register, "task", task, date(2021, 8, 1))
        assert not _reads_the_task(clerk, scenario, task, files, links), retired
        assert _reads_the_task(clerk2, scenario, task, files, links), retired


def test_a_record_lists_only_the_files_data_entry_may_read(login, scenario):
    """A record's attachments leave out a file hidden by ID: here a photo of the hazard that
    a draft (refused at submission) would move to another organisation's task, so that one of
    its reports names that task."""
    photo = login("officer").post(
        f"/api/records/{scenario.hazard}/attachments",
        files={"file": ("field.jpg", b"field" * 10, "image/jpeg")},
    )
    assert photo.status_code == 201, photo.text
    photo_id = photo.json()["record_id"]
    moving = {
        "record_type": "attachment",
        "record_id": photo_id,
        "operation": "update",
        "date_of_information": "2021-05-01",
        "changes": {"target_id": scenario.tasks["beta"]},
    }
    draft = login("clerk2").post("/api/reports", json=moving)
    assert draft.status_code == 201, draft.text
    for username, reads in (("clerk", False), ("clerk2", True)):
        session = login(username)
        by_id = session.get(f"/api/records/{photo_id}").status_code
        links = session.get(f"/api/records/{scenario.hazard}/links").json()
        listed = [a["record_id"] for a in links["attachments"]]
        assert (by_id, listed) == ((200, [photo_id]) if reads else (403, [])), username


def test_one_statement_holds_two_organisations_hidden_records(scenario):
    """``hidden_records`` names its query anew each time, so one statement can hold two: here
    what data entry of the first organisation may not read and that of the second may."""
    link = add(
        scenario.register,
        "link",
        date(2021, 3, 2),
        from_id=scenario.hazard,
        to_id=scenario.tasks["beta"],
        relation="planned on",
    )
    alpha, beta = (Principal(key, Role.DATA_ENTRY, scenario.orgs[key]) for key in ("alpha", "beta"))
    alpha_hidden, beta_hidden = hidden_records(alpha), hidden_records(beta)
    assert alpha_hidden is not None and beta_hidden is not None
    with scenario.register.store.read() as conn:
        found = set(conn.scalars(alpha_hidden.except_(beta_hidden)))
    assert found == {scenario.tasks["beta"], link}


def test_victims_names_only_for_im_officer_and_admin(login, scenario):
    for username in ("clerk", "reviewer"):
        session = login(username)
        victim = session.get(f"/api/records/{scenario.victim}").json()
        assert "name" not in victim and "phone" not in victim
        assert victim["outcome"] == "injured"
        history = session.get(f"/api/records/{scenario.victim}/history").text
        assert "Leyla" not in history and "Mammadova" not in history and "+994" not in history
        reports = session.get("/api/reports?record_type=victim").text
        assert "Leyla" not in reports
    for username in ("officer", "admin"):
        session = login(username)
        assert session.get(f"/api/records/{scenario.victim}").json()["name"] == "Leyla Mammadova"
        history = session.get(f"/api/records/{scenario.victim}/history").json()
        assert history["entries"][0]["changes"]["name"] == "Leyla Mammadova"


def test_record_history_and_links(login, scenario):
    officer = login("officer")
    history = officer.get(f"/api/records/{scenario.hazard}/history").json()
    assert history["record_type"] == "hazardous_area"
    (entry,) = history["entries"]
    assert entry["status"] == "approved" and entry["author"] == "im"
    assert entry["changes"]["geometry"]["type"] == "Polygon"
    links = officer.get(f"/api/records/{scenario.hazard}/links").json()
    linked = {(r["record_type"], r["record_id"]) for r in links["referenced_by"]}
    assert ("accident", scenario.accident) not in linked  # the accident names no hazard
    assert ("task", scenario.tasks["alpha"]) in linked and (
        "task",
        scenario.tasks["beta"],
    ) in linked
    victim_links = officer.get(f"/api/records/{scenario.victim}/links").json()
    assert victim_links["references"] == [
        {"field": "accident_id", "record_type": "accident", "record_id": scenario.accident}
    ]


def test_unknown_record_is_404(login):
    response = login("officer").get("/api/records/AZ-HA-2099-00001")
    assert response.status_code == 404
    assert response.json()["problems"] == []


# -- reports and the workflow -------------------------------------------------------------------


def test_draft_submit_approve_updates_the_register_and_is_audited(login, draft_hazard, scenario):
    draft = draft_hazard("clerk")
    assert draft["status"] == "draft" and draft["author"] == "clerk"
    assert draft["changes"]["geometry"]["type"] == "Polygon"
    clerk = login("clerk")
    edited = clerk.patch(f"/api/reports/{draft['report_id']}", json={"reason": "from the field"})
    assert edited.status_code == 200 and edited.json()["reason"] == "from the field"
    assert edited.json()["changes"]["name"] == "Orchard"
    assert edited.json()["record_id"] == draft["record_id"]
    submitted = clerk.post(f"/api/reports/{draft['report_id']}/submit")
    assert submitted.json()["status"] == "submitted"

    assert clerk.post(f"/api/reports/{draft['report_id']}/approve").status_code == 403
    officer = login("officer")
    approved = officer.post(
        f"/api/reports/{draft['report_id']}/approve", json={"reason": "checked"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["reviewed_by"] == "officer"
    record = officer.get(f"/api/records/{draft['record_id']}").json()
    assert record["name"] == "Orchard" and record["remaining_m2"] > 900_000
    again = officer.post(f"/api/reports/{draft['report_id']}/approve")
    assert again.status_code == 409
    actions = {
        a: _audit(scenario, a)
        for a in ("report.draft", "report.edit", "report.submit", "report.approve")
    }
    assert [r["username"] for r in actions["report.approve"]] == ["officer"]
    assert all(len(rows) == 1 for rows in actions.values())
    assert actions["report.approve"][0]["detail"]["record_id"] == draft["record_id"]


def test_reject_needs_a_reason_and_a_reviewer(login, draft_hazard):
    draft = draft_hazard("clerk", submit=True)
    reviewer = login("reviewer")
    no_reason = reviewer.post(f"/api/reports/{draft['report_id']}/reject", json={"reason": ""})
    assert no_reason.status_code == 422
    assert no_reason.json()["problems"][0]["field"] == "reason"
    assert (
        login("clerk")
        .post(f"/api/reports/{draft['report_id']}/reject", json={"reason": "x"})
        .status_code
        == 403
    )
    rejected = reviewer.post(
        f"/api/reports/{draft['report_id']}/reject", json={"reason": "wrong place"}
    )
    assert rejected.status_code == 200
    assert (
        rejected.json()["status"] == "rejected"
        and rejected.json()["review_reason"] == "wrong place"
    )


def test_four_eyes_nobody_approves_or_rejects_their_own_report(login, draft_hazard):
    draft = draft_hazard("officer", submit=True)
    officer = login("officer")
    own = officer.post(f"/api/reports/{draft['report_id']}/approve")
    assert own.status_code == 403 and "of their own" in own.json()["detail"]
    assert (
        officer.post(f"/api/reports/{draft['report_id']}/reject", json={"reason": "x"}).status_code
        == 403
    )
    approved = login("reviewer").post(f"/api/reports/{draft['report_id']}/approve")
    assert approved.status_code == 200 and approved.json()["reviewed_by"] == "reviewer"


def test_data_entry_cannot_read_or_touch_another_organisations_drafts(login, draft_hazard):
    draft = draft_hazard("clerk")
    other = login("clerk2")
    assert other.get(f"/api/reports/{draft['report_id']}").status_code == 403
    assert draft["report_id"] not in [
        r["report_id"] for r in other.get("/api/reports").json()["items"]
    ]
    assert (
        other.patch(f"/api/reports/{draft['report_id']}", json={"reason": "x"}).status_code == 403
    )
    assert other.post(f"/api/reports/{draft['report_id']}/submit").status_code == 403
    # a colleague of the same organisation reads it; the reviewer (national) too
    assert login("reviewer").get(f"/api/reports/{draft['report_id']}").status_code == 200
    listed = login("clerk").get("/api/reports?status=draft").json()["items"]
    assert [r["report_id"] for r in listed] == [draft["report_id"]]


def test_data_entry_cannot_plan_tasks_for_another_organisation(login, scenario):
    body = {
        "record_type": "task",
        "date_of_information": "2022-01-01",
        "changes": {
            "hazard_id": scenario.hazard,
            "activity_type": "ts",
            "organisation_id": scenario.orgs["beta"],
        },
    }
    assert login("clerk").post("/api/reports", json=body).status_code == 403
    body["changes"]["organisation_id"] = scenario.orgs["alpha"]
    assert login("clerk").post("/api/reports", json=body).status_code == 201
    update = {
        "record_type": "task",
        "record_id": scenario.tasks["beta"],
        "date_of_information": "2022-01-01",
        "changes": {"priority": 1},
    }
    assert login("clerk").post("/api/reports", json=update).status_code == 403


def test_someone_elses_draft_cannot_be_submitted_is_409(login, scenario):
    reviewer = login("reviewer")
    body = {
        "record_type": "organisation",
        "date_of_information": "2022-01-01",
        "changes": {"name": "Y"},
    }
    draft = reviewer.post("/api/reports", json=body).json()
    assert login("officer").post(f"/api/reports/{draft['report_id']}/submit").status_code == 409


def test_bad_geometry_and_wrong_types_are_422_naming_the_field_and_write_nothing(login, scenario):
    clerk = login("clerk")
    with scenario.register.store.read() as conn:
        before = conn.execute(select(report.c.report_id)).all()
    cases = [
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            "geometry",
            "Self-intersection",
        ),
        ({"geometry": {"type": "Polygon"}}, "geometry", "not a geometry"),
        ({"geometry": {"type": "Point", "coordinates": [500000, 4400000]}}, "geometry", "WGS84"),
        ({"reliability": "very"}, "reliability", ""),
        ({"classification": "dangerous"}, "classification", ""),
    ]
    for changes, field, words in cases:
        response = clerk.post(
            "/api/reports",
            json={
                "record_type": "hazardous_area",
                "date_of_information": "2022-01-01",
                "changes": changes,
            },
        )
        assert response.status_code == 422, (changes, response.text)
        problems = response.json()["problems"]
        assert any(p["field"] == field and words in p["message"] for p in problems), problems
    wrong_date = clerk.post(
        "/api/reports",
        json={"record_type": "organisation", "date_of_information": "soon", "changes": {}},
    )
    assert wrong_date.status_code == 422
    assert wrong_date.json()["problems"][0]["field"] == "date_of_information"
    with scenario.register.store.read() as conn:
        assert conn.execute(select(report.c.report_id)).all() == before
    assert _audit(scenario, "report.draft") == []


def test_a_rule_violation_at_submit_is_422_and_leaves_the_draft_a_draft(login, scenario):
    clerk = login("clerk")
    body = {
        "record_type": "eo_item",
        "date_of_information": "2022-01-01",
        "changes": {
            "category": "ap_mine",
            "hazard_id": "AZ-HA-2099-00009",
            "geometry": {"type": "Point", "coordinates": [46.9, 39.9]},
        },
    }
    draft = clerk.post("/api/reports", json=body)
    assert draft.status_code == 201, draft.text
    report_id = draft.json()["report_id"]
    refused = clerk.post(f"/api/reports/{report_id}/submit")
    assert refused.status_code == 422
    assert any(p["field"] == "hazard_id" for p in refused.json()["problems"])
    assert clerk.get(f"/api/reports/{report_id}").json()["status"] == "draft"
    assert _audit(scenario, "report.submit") == []


def _accident_with_victim(session, **victim) -> tuple[dict, dict]:
    """An accident's draft and a victim's naming it, as the accident form saves them."""
    accident = session.post(
        "/api/reports",
        json={
            "record_type": "accident",
            "date_of_information": "2022-05-01",
            "changes": {
                "accident_type": "mine",
                "geometry": {"type": "Point", "coordinates": [46.905, 39.905]},
            },
        },
    ).json()
    changes = {"accident_id": accident["record_id"], "outcome": "injured", **victim}
    drafted = session.post(
        "/api/reports",
        json={"record_type": "victim", "date_of_information": "2022-05-01", "changes": changes},
    )
    assert drafted.status_code == 201, drafted.text
    return accident, drafted.json()


def _status(session, report: dict) -> str:
    return session.get(f"/api/reports/{report['report_id']}").json()["status"]


def test_an_accident_and_its_victim_are_submitted_together(login, scenario):
    clerk = login("clerk")
    accident, victim = _accident_with_victim(clerk, name="Aysel Aliyeva")
    alone = clerk.post(f"/api/reports/{victim['report_id']}/submit")
    assert alone.status_code == 422
    assert alone.json()["problems"][0]["field"] == "accident_id"
    ids = [accident["report_id"], victim["report_id"]]
    submitted = clerk.post("/api/reports/submit", json={"report_ids": ids})
    assert submitted.status_code == 200, submitted.text
    items = submitted.json()["items"]
    assert [(r["report_id"], r["status"]) for r in items] == [(i, "submitted") for i in ids]
    assert all(r["submitted_at"] for r in items)
    assert "name" not in items[1]["changes"]  # the clerk may not read the victim's name
    audited = [a["target"] for a in _audit(scenario, "report.submit")]
    assert audited == [f"report {i}" for i in ids]


def test_submitting_together_writes_nothing_when_one_fails(login, scenario):
    clerk = login("clerk")
    accident, victim = _accident_with_victim(clerk)
    item = clerk.post(
        "/api/reports",
        json={
            "record_type": "eo_item",
            "date_of_information": "2022-05-01",
            "changes": {
                "category": "uxo",
                "hazard_id": "AZ-HA-2099-00009",
                "geometry": {"type": "Point", "coordinates": [46.9, 39.9]},
            },
        },
    ).json()
    drafts = [accident, victim, item]
    refused = clerk.post(
        "/api/reports/submit", json={"report_ids": [r["report_id"] for r in drafts]}
    )
    assert refused.status_code == 422
    assert [(p["record"], p["field"]) for p in refused.json()["problems"]] == [
        (item["record_id"], "hazard_id")
    ]
    # A colleague's draft (the reviewer works for the same organisation) is not the clerk's.
    theirs = (
        login("reviewer")
        .post(
            "/api/reports",
            json={
                "record_type": "organisation",
                "date_of_information": "2022-01-01",
                "changes": {"name": "Y"},
            },
        )
        .json()
    )
    ids = [accident["report_id"], victim["report_id"], theirs["report_id"]]
    conflict = clerk.post("/api/reports/submit", json={"report_ids": ids})
    assert conflict.status_code == 409 and "reviewer's draft" in conflict.json()["detail"]
    other_organisation = login("clerk2").post("/api/reports/submit", json={"report_ids": ids[:2]})
    assert other_organisation.status_code == 403
    assert [_status(clerk, r) for r in drafts] == ["draft"] * 3
    assert _audit(scenario, "report.submit") == []
    for body in ({"report_ids": []}, {"report_ids": [0]}, {}):
        assert clerk.post("/api/reports/submit", json=body).status_code == 422
    assert clerk.post("/api/reports/submit", json={"report_ids": [99999]}).status_code == 404
    assert login("visitor").post("/api/reports/submit", json={"report_ids": ids}).status_code == 403


def test_a_victim_is_approved_after_its_accident_or_with_it(login, scenario):
    clerk, officer = login("clerk"), login("officer")
    accident, victim = _accident_with_victim(clerk)
    ids = [accident["report_id"], victim["report_id"]]
    assert clerk.post("/api/reports/submit", json={"report_ids": ids}).status_code == 200
    early = officer.post(f"/api/reports/{victim['report_id']}/approve")
    assert early.status_code == 422
    (problem,) = early.json()["problems"]
    assert problem == {
        "field": "accident_id",
        "message": f"accident {accident['record_id']} is in report {accident['report_id']}, "
        "not yet approved: approve it first",
        "record": victim["record_id"],
    }
    assert _status(officer, victim) == "submitted"
    assert officer.post(f"/api/reports/{accident['report_id']}/approve").status_code == 200
    assert officer.post(f"/api/reports/{victim['report_id']}/approve").status_code == 200
    assert (
        officer.get(f"/api/records/{victim['record_id']}").json()["accident_id"]
        == (accident["record_id"])
    )


def test_an_accident_is_approved_with_its_victims_in_one_call(login, scenario):
    clerk = login("clerk")
    accident, victim = _accident_with_victim(clerk)
    ids = [accident["report_id"], victim["report_id"]]
    clerk.post("/api/reports/submit", json={"report_ids": ids})
    body = {"report_ids": ids, "reason": "checked with the hospital"}
    assert clerk.post("/api/reports/approve", json=body).status_code == 403
    assert login("visitor").post("/api/reports/approve", json=body).status_code == 403
    approved = login("reviewer").post("/api/reports/approve", json=body)
    assert approved.status_code == 200, approved.text
    items = approved.json()["items"]
    assert [(r["report_id"], r["status"], r["reviewed_by"]) for r in items] == [
        (i, "approved", "reviewer") for i in ids
    ]
    assert approved.json()["notices"] == []
    assert [a["detail"]["reason"] for a in _audit(scenario, "report.approve")] == [
        "checked with the hospital"
    ] * 2
    victim_record = login("officer").get(f"/api/records/{victim['record_id']}").json()
    assert victim_record["accident_id"] == accident["record_id"]
    again = login("officer").post("/api/reports/approve", json=body)
    assert again.status_code == 409


def test_approving_together_keeps_four_eyes_and_is_all_or_nothing(login, scenario):
    officer = login("officer")
    accident, victim = _accident_with_victim(officer)
    ids = [accident["report_id"], victim["report_id"]]
    officer.post("/api/reports/submit", json={"report_ids": ids})
    own = officer.post("/api/reports/approve", json={"report_ids": ids})
    assert own.status_code == 403
    assert f"of their own (report {accident['report_id']})" in own.json()["detail"]
    reviewer = login("reviewer")
    organisation = {"record_type": "organisation", "date_of_information": "2022-01-01"}
    draft = officer.post("/api/reports", json={**organisation, "changes": {"name": "Z"}}).json()
    refused = reviewer.post("/api/reports/approve", json={"report_ids": [*ids, draft["report_id"]]})
    assert refused.status_code == 409 and "is draft" in refused.json()["detail"]
    assert [_status(reviewer, r) for r in (accident, victim)] == ["submitted"] * 2
    assert _audit(scenario, "report.approve") == []


def test_unknown_report_is_404(login):
    assert login("officer").get("/api/reports/99999").status_code == 404
    assert login("officer").post("/api/reports/99999/approve").status_code == 404


# -- attachments --------------------------------------------------------------------------------


def test_attachments_are_kept_with_their_sha256_and_listed(login, scenario):
    import hashlib

    photo = b"\x89PNG fake photo bytes" * 10
    officer = login("officer")
    response = officer.post(
        f"/api/records/{scenario.hazard}/attachments",
        files={"file": ("marking.png", photo, "image/png")},
        data={"caption": "marking at the benchmark"},
    )
    assert response.status_code == 201, response.text
    attached = response.json()
    assert attached["sha256"] == hashlib.sha256(photo).hexdigest()
    assert attached["status"] == "approved"
    listed = officer.get(f"/api/records/{scenario.hazard}/links").json()["attachments"]
    assert [a["record_id"] for a in listed] == [attached["record_id"]]
    download = officer.get(listed[0]["content_url"])
    assert download.content == photo and download.headers["content-type"] == "image/png"
    assert _audit(scenario, "attachment.add")[0]["target"] == attached["record_id"]
    drafted = login("clerk").post(
        f"/api/records/{scenario.hazard}/attachments", files={"file": ("a.txt", b"note")}
    )
    assert drafted.json()["status"] == "draft"


def _attach(session, record_id: str, name: str = "site.jpg", content: bytes = b"\xff\xd8 photo"):
    return session.post(
        f"/api/records/{record_id}/attachments", files={"file": (name, content, "image/jpeg")}
    )


def _refused_again(
    session, record_id: str, caption: str, photo: dict, status: str, detail: str
) -> None:
    """The photo ``_attach`` sent (``photo``, its answer) sent again under another name is
    refused with 409, naming and giving the attachment there already."""
    import hashlib

    again = session.post(
        f"/api/records/{record_id}/attachments",
        files={"file": ("renamed.jpg", b"\xff\xd8 photo", "image/jpeg")},
        data={"caption": caption},
    )
    assert again.status_code == 409, again.text
    body = again.json()
    assert body["detail"] == detail
    assert body["problems"] == [{"field": "file", "message": detail, "record": photo["record_id"]}]
    assert body["existing"] == {
        "record_id": photo["record_id"],
        "report_id": photo["report_id"],
        "status": status,
        "sha256": hashlib.sha256(b"\xff\xd8 photo").hexdigest(),
        "size_bytes": len(b"\xff\xd8 photo"),
        "filename": "site.jpg",
        "caption": None,
    }


def test_a_photo_goes_with_a_new_records_draft_and_is_approved_with_it(login, scenario):
    clerk, reviewer = login("clerk"), login("reviewer")
    accident, victim = _accident_with_victim(clerk)
    attached = _attach(clerk, accident["record_id"])
    assert attached.status_code == 201, attached.text
    photo = attached.json()
    assert photo["status"] == "draft"
    assert _audit(scenario, "attachment.add")[0]["detail"]["target_id"] == accident["record_id"]
    # Drafted even for the IM officer: nothing is filed against a record not yet registered.
    assert _attach(login("officer"), accident["record_id"]).json()["status"] == "draft"
    # The draft's organisation only, as for the draft itself.
    assert _attach(login("clerk2"), accident["record_id"]).status_code == 403
    assert _attach(login("visitor"), accident["record_id"]).status_code == 403

    url = f"/api/reports/{accident['report_id']}/dependents"
    mine = [(r["record_type"], r["report_id"]) for r in clerk.get(url).json()["items"]]
    assert mine == [("victim", victim["report_id"]), ("attachment", photo["report_id"])]
    assert len(reviewer.get(url).json()["items"]) == 3  # the officer's photo too
    assert login("clerk2").get(url).status_code == 403

    ids = [accident["report_id"], victim["report_id"], photo["report_id"]]
    assert clerk.post("/api/reports/submit", json={"report_ids": ids}).status_code == 200
    content = reviewer.get(f"/api/reports/{photo['report_id']}/content")
    assert content.content == b"\xff\xd8 photo" and content.headers["content-type"] == "image/jpeg"
    assert reviewer.get(f"/api/reports/{accident['report_id']}/content").status_code == 404
    assert login("clerk2").get(f"/api/reports/{photo['report_id']}/content").status_code == 403
    early = reviewer.post(f"/api/reports/{photo['report_id']}/approve")
    assert early.status_code == 422
    assert early.json()["problems"] == [
        {
            "field": "target_id",
            "message": f"record {accident['record_id']} is in report {accident['report_id']}, "
            "not yet approved: approve it first",
            "record": photo["record_id"],
        }
    ]
    assert reviewer.post("/api/reports/approve", json={"report_ids": ids}).status_code == 200
    links = reviewer.get(f"/api/records/{accident['record_id']}/links").json()
    assert [a["record_id"] for a in links["attachments"]] == [photo["record_id"]]
    assert len(_audit(scenario, "report.approve")) == 3


def test_the_same_file_is_not_attached_twice_while_its_report_waits(login, scenario):
    """A retried upload (a form saved again after a failed one, an answer lost) is refused with
    409 naming the attachment there already, while the report attaching it is the caller's
    draft or submitted report; nothing is written or audited for it."""
    clerk = login("clerk")
    accident, victim = _accident_with_victim(clerk)
    first = _attach(clerk, accident["record_id"])
    assert first.status_code == 201, first.text
    photo = first.json()
    _refused_again(
        clerk,
        accident["record_id"],
        "the crater",
        photo,
        "draft",
        f"renamed.jpg is attached to {accident['record_id']} already: your draft report "
        f"{photo['report_id']} attaches the same file (site.jpg, {photo['record_id']}, "
        f"SHA-256 {photo['sha256'][:12]}…), so it is not attached twice",
    )
    assert len(_audit(scenario, "attachment.add")) == 1
    url = f"/api/reports/{accident['report_id']}/dependents"
    attached = [
        r["report_id"] for r in clerk.get(url).json()["items"] if r["record_type"] == "attachment"
    ]
    assert attached == [photo["report_id"]]

    # Another file, or the same file from someone else, is attached as before.
    assert _attach(clerk, accident["record_id"], content=b"another photo").status_code == 201
    assert _attach(login("officer"), accident["record_id"]).status_code == 201
    # Submitted, it still waits: still refused.
    ids = [accident["report_id"], victim["report_id"], photo["report_id"]]
    assert clerk.post("/api/reports/submit", json={"report_ids": ids}).status_code == 200
    refused = _attach(clerk, accident["record_id"])
    assert refused.status_code == 409 and refused.json()["existing"]["status"] == "submitted"

    # On a registered record: a data entry clerk's drafted attachment is refused again until
    # its draft is withdrawn; then the file can be attached anew.
    drafted = _attach(clerk, scenario.hazard)
    assert drafted.json()["status"] == "draft"
    assert _attach(clerk, scenario.hazard).status_code == 409
    withdraw = f"/api/reports/{drafted.json()['report_id']}/withdraw"
    assert clerk.post(withdraw, json={}).status_code == 200
    assert _attach(clerk, scenario.hazard).status_code == 201
    # Filed at once, an attachment waits for nothing: see the next test.


def test_a_file_on_a_registered_record_is_not_attached_to_it_again(login, scenario):
    """A reviewer's upload to a registered record is filed approved at once, so no report of
    theirs waits: sent again (a retry), by them or anyone, the same file is refused with 409
    naming the attachment on the record, for as long as it is there."""
    officer, reviewer, clerk = login("officer"), login("reviewer"), login("clerk")
    first = _attach(officer, scenario.hazard)
    assert first.status_code == 201, first.text
    photo = first.json()
    assert photo["status"] == "approved"
    _refused_again(
        officer,
        scenario.hazard,
        "the gate",
        photo,
        "approved",
        f"renamed.jpg is attached to {scenario.hazard} already: {photo['record_id']} is the "
        f"same file (site.jpg, attached by report {photo['report_id']}, SHA-256 "
        f"{photo['sha256'][:12]}…), so it is not attached twice",
    )
    # Whoever sends it: another reviewer, who would file it, or a clerk, who would draft it.
    for other in (reviewer, clerk):
        refused = _attach(other, scenario.hazard)
        assert refused.status_code == 409, refused.text
        assert refused.json()["existing"]["record_id"] == photo["record_id"]
    assert len(_audit(scenario, "attachment.add")) == 1
    links = officer.get(f"/api/records/{scenario.hazard}/links").json()
    assert [a["record_id"] for a in links["attachments"]] == [photo["record_id"]]
    with scenario.register.store.read() as conn:
        attached = conn.execute(select(record_tables["attachment"].c.record_id)).all()
    assert len(attached) == 1
    # Another file, or the same file for another record, is attached as before.
    assert _attach(officer, scenario.hazard, content=b"another photo").status_code == 201
    assert _attach(officer, scenario.accident).status_code == 201

    # Retired from the record, it is no longer there: it can be attached anew.
    retire = {
        "record_type": "attachment",
        "record_id": photo["record_id"],
        "operation": "retire",
        "changes": {},
        "date_of_information": date.today().isoformat(),
        "reason": "wrong site",
    }
    retiring = clerk.post("/api/reports", json=retire).json()
    assert clerk.post(f"/api/reports/{retiring['report_id']}/submit").status_code == 200
    assert reviewer.post(f"/api/reports/{retiring['report_id']}/approve").status_code == 200
    assert _attach(reviewer, scenario.hazard).json()["status"] == "approved"


def test_a_saved_files_caption_is_changed_by_an_update_report(login, scenario):
    """An attachment is a record like any other: an update report on it changes its caption
    once approved, through the workflow (the record page's Edit caption files one). A file sent
    again is refused naming the attachment with its caption as it stands."""
    officer, clerk, reviewer = login("officer"), login("clerk"), login("reviewer")
    photo = _attach(officer, scenario.hazard).json()
    body = {
        "record_type": "attachment",
        "record_id": photo["record_id"],
        "operation": "update",
        "changes": {"caption": "The gate, north side"},
        "date_of_information": date.today().isoformat(),
    }
    draft = clerk.post("/api/reports", json=body)
    assert draft.status_code == 201, draft.text
    change = draft.json()
    assert clerk.post(f"/api/reports/{change['report_id']}/submit").status_code == 200

    def caption() -> str | None:
        links = officer.get(f"/api/records/{scenario.hazard}/links").json()
        (shown,) = [a for a in links["attachments"] if a["record_id"] == photo["record_id"]]
        return shown["caption"]

    assert caption() is None  # waits for review
    assert reviewer.post(f"/api/reports/{change['report_id']}/approve").status_code == 200
    assert caption() == "The gate, north side"
    history = clerk.get(f"/api/records/{photo['record_id']}/history").json()["entries"]
    assert [(e["report_id"], e["diff"].get("caption")) for e in history][-1] == (
        change["report_id"],
        {"old": None, "new": "The gate, north side"},
    )
    refused = _attach(clerk, scenario.hazard)
    assert refused.status_code == 409
    assert refused.json()["existing"]["caption"] == "The gate, north side"

    # Dated before the attachment was (the upload's day by the server's clock), a change is
    # refused at submission: the page dates it no earlier than the attachment's reports.
    early = clerk.post("/api/reports", json={**body, "date_of_information": "2020-01-01"}).json()
    refused = clerk.post(f"/api/reports/{early['report_id']}/submit")
    assert refused.status_code == 422
    assert "no earlier approved report creates this record" in refused.json()["detail"]


def test_rejecting_a_new_record_rejects_the_photo_submitted_with_it(login, scenario):
    clerk, reviewer = login("clerk"), login("reviewer")
    accident, _ = _accident_with_victim(clerk)
    photo = _attach(clerk, accident["record_id"]).json()
    ids = [accident["report_id"], photo["report_id"]]
    clerk.post("/api/reports/submit", json={"report_ids": ids})
    rejected = reviewer.post(
        f"/api/reports/{accident['report_id']}/reject", json={"reason": "duplicate"}
    )
    assert rejected.status_code == 200
    assert rejected.json()["rejected_with"] == [photo["report_id"]]
    shown = clerk.get(f"/api/reports/{photo['report_id']}").json()
    assert (shown["status"], shown["review_reason"]) == (
        "rejected",
        f"rejected with report {accident['report_id']}, which was to create "
        f"{accident['record_id']}: duplicate",
    )
    audited = [(a["target"], a["detail"]["reason"]) for a in _audit(scenario, "report.reject")]
    assert audited == [
        (f"report {accident['report_id']}", "duplicate"),
        (f"report {photo['report_id']}", shown["review_reason"]),
    ]


def test_only_its_author_withdraws_a_draft_and_it_is_audited(client, login, draft_hazard, scenario):
    draft = draft_hazard("clerk")
    url = f"/api/reports/{draft['report_id']}/withdraw"
    assert client.post(url).status_code == 401
    assert login("visitor").post(url).status_code == 403
    assert login("clerk2").post(url).status_code == 403  # another organisation's draft
    not_theirs = login("reviewer").post(url)
    assert not_theirs.status_code == 409 and "is clerk's draft" in not_theirs.json()["detail"]
    assert _audit(scenario, "report.withdraw") == []

    clerk = login("clerk")
    withdrawn = clerk.post(url, json={"reason": "wrong form"})
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert (body["status"], body["reviewed_by"], body["review_reason"]) == (
        "withdrawn",
        "clerk",
        "wrong form",
    )
    assert body["reviewed_at"] and body["withdrawn_with"] == []
    (audited,) = _audit(scenario, "report.withdraw")
    assert (audited["username"], audited["target"], audited["detail"]) == (
        "clerk",
        f"report {draft['report_id']}",
        {"record_id": draft["record_id"], "reason": "wrong form"},
    )
    assert clerk.get("/api/reports?status=draft").json()["items"] == []
    listed = clerk.get("/api/reports?status=withdrawn").json()["items"]
    assert [r["report_id"] for r in listed] == [draft["report_id"]]
    (entry,) = clerk.get(f"/api/records/{draft['record_id']}/history").json()["entries"]
    assert (entry["status"], entry["reviewed_by"], entry["review_reason"]) == (
        "withdrawn",
        "clerk",
        "wrong form",
    )
    again = clerk.post(url)
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"report {draft['report_id']} is withdrawn: only a draft can be withdrawn"
    )

    submitted = draft_hazard("clerk", submit=True)
    refused = clerk.post(f"/api/reports/{submitted['report_id']}/withdraw")
    assert refused.status_code == 409
    assert "is submitted: only a draft can be withdrawn" in refused.json()["detail"]
    assert len(_audit(scenario, "report.withdraw")) == 1


def test_an_administrator_withdraws_a_disabled_accounts_draft_with_a_reason(login, scenario):
    clerk = login("clerk")
    accident = clerk.post(
        "/api/reports",
        json={
            "record_type": "accident",
            "date_of_information": "2022-05-01",
            "changes": {
                "accident_type": "uxo",
                "geometry": {"type": "Point", "coordinates": [47, 40]},
            },
        },
    ).json()
    victim = clerk.post(
        "/api/reports",
        json={
            "record_type": "victim",
            "date_of_information": "2022-05-01",
            "changes": {"accident_id": accident["record_id"], "outcome": "injured"},
        },
    ).json()
    url = f"/api/reports/{accident['report_id']}/withdraw"
    refused = (
        f"report {accident['report_id']} is clerk's draft; only clerk, or an administrator "
        "once clerk's account is disabled, can withdraw it"
    )
    admin = login("admin")
    for who, detail in (
        (login("reviewer"), refused),
        (admin, f"{refused} (clerk's account is active)"),
    ):
        answer = who.post(url, json={"reason": "left"})
        assert (answer.status_code, answer.json()["detail"]) == (409, detail)

    with scenario.register.store.begin() as conn:
        accounts.disable_account(conn, "clerk", by="admin")
    officer = login("officer")  # not the role that manages accounts
    assert officer.post(url, json={"reason": "left"}).json()["detail"] == refused
    for body in (None, {}, {"reason": " "}):
        unsaid = admin.post(url, json=body)
        assert unsaid.status_code == 422
        assert unsaid.json()["problems"][0]["field"] == "reason"
    assert _audit(scenario, "report.withdraw") == []

    withdrawn = admin.post(url, json={"reason": "clerk left the programme"})
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert (body["status"], body["author"], body["reviewed_by"], body["review_reason"]) == (
        "withdrawn",
        "clerk",
        "admin",
        "clerk left the programme",
    )
    assert body["withdrawn_with"] == [victim["report_id"]]
    audited = [
        (a["username"], a["target"], a["detail"]) for a in _audit(scenario, "report.withdraw")
    ]
    assert audited == [
        (
            "admin",
            f"report {accident['report_id']}",
            {
                "record_id": accident["record_id"],
                "reason": "clerk left the programme",
                "on_behalf_of": "clerk",
            },
        ),
        (
            "admin",
            f"report {victim['report_id']}",
            {
                "record_id": victim["record_id"],
                "reason": f"withdrawn with report {accident['report_id']}, which was to create "
                f"{accident['record_id']}: clerk left the programme",
            },
        ),
    ]
    assert admin.get("/api/reports?status=draft").json()["items"] == []


def test_withdrawing_a_new_records_draft_withdraws_the_drafts_naming_it(login, scenario):
    clerk = login("clerk")
    accident, victim = _accident_with_victim(clerk)
    photo = _attach(login("officer"), accident["record_id"]).json()
    withdrawn = clerk.post(f"/api/reports/{accident['report_id']}/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["withdrawn_with"] == [victim["report_id"], photo["report_id"]]
    assert withdrawn.json()["review_reason"] is None
    with_it = (
        f"withdrawn with report {accident['report_id']}, which was to create "
        f"{accident['record_id']}"
    )
    shown = clerk.get(f"/api/reports/{victim['report_id']}").json()
    assert (shown["status"], shown["review_reason"]) == ("withdrawn", with_it)
    audited = [(a["target"], a["detail"]["reason"]) for a in _audit(scenario, "report.withdraw")]
    assert audited == [
        (f"report {accident['report_id']}", None),
        (f"report {victim['report_id']}", with_it),
        (f"report {photo['report_id']}", with_it),
    ]
    dependents = clerk.get(f"/api/reports/{accident['report_id']}/dependents").json()
    assert dependents["items"] == []


def test_an_oversize_upload_is_413_and_stores_nothing(login, scenario):
    officer = login("officer")
    big = b"x" * (scenario.settings.max_upload_bytes + 1)
    response = officer.post(
        f"/api/records/{scenario.hazard}/attachments", files={"file": ("big.bin", big)}
    )
    assert response.status_code == 413
    assert "detail" in response.json()
    with scenario.register.store.read() as conn:
        assert conn.execute(select(blob.c.sha256)).all() == []
        assert conn.execute(select(record_tables["attachment"].c.record_id)).all() == []


def test_attaching_to_an_unknown_record_is_404(login):
    response = login("officer").post(
        "/api/records/AZ-HA-2099-00001/attachments", files={"file": ("a.txt", b"x")}
    )
    assert response.status_code == 404


# -- ledger and audit ---------------------------------------------------------------------------


def test_ledger_groupings(client):
    for by in ("admin_area", "operator", "classification", "period"):
        assert client.get(f"/api/ledger?by={by}").status_code == 200
    assert client.get("/api/ledger?by=colour").status_code == 422


def test_audit_log_for_im_officer_and_admin_only(login, client):
    assert client.get("/api/audit").status_code == 401
    assert login("clerk").get("/api/audit").status_code == 403
    assert login("reviewer").get("/api/audit").status_code == 403
    items = login("officer").get("/api/audit").json()["items"]
    assert items[0]["action"] == "login" and items[0]["username"] == "officer"
    assert login("admin").get("/api/audit").status_code == 200


def test_openapi_document_lists_the_api(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/login",
        "/api/records",
        "/api/records/{record_id}/history",
        "/api/reports/{report_id}/approve",
        "/api/reports/{report_id}/withdraw",
        "/api/reports/submit",
        "/api/reports/approve",
        "/api/ledger",
        "/api/audit",
        "/api/tokens",
    ):
        assert path in paths


def test_a_password_hashed_with_old_parameters_is_rehashed_at_login(client, scenario, monkeypatch):
    from argon2 import PasswordHasher

    from safeground.service import accounts
    from safeground.storage.schema import account

    def stored() -> str:
        with scenario.register.store.read() as conn:
            return conn.execute(
                select(account.c.password_hash).where(account.c.username == "clerk")
            ).scalar_one()

    old = stored()
    stronger = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_HASHER", stronger)
    assert (
        client.post("/api/login", json={"username": "clerk", "password": PASSWORD}).status_code
        == 200
    )
    new = stored()
    assert new != old and not stronger.check_needs_rehash(new)
    assert stronger.verify(new, PASSWORD)


def test_role_matrix(client, login, draft_hazard, scenario):
    """Who gets what, for one request of each kind (None: not logged in)."""
    submitted = draft_hazard("clerk", submit=True)["report_id"]
    rows = {
        "GET /api/records": ("get", "/api/records", None),
        "GET /api/reports": ("get", "/api/reports", None),
        "POST /api/reports": (
            "post",
            "/api/reports",
            {
                "record_type": "organisation",
                "date_of_information": "2022-01-01",
                "changes": {"name": "Z"},
            },
        ),
        "POST reject, empty reason": (
            "post",
            f"/api/reports/{submitted}/reject",
            {"reason": ""},
        ),
        "GET /api/audit": ("get", "/api/audit", None),
        "GET /api/ledger": ("get", "/api/ledger", None),
    }
    expected = {
        None: [401, 401, 401, 401, 401, 200],
        "visitor": [403, 403, 403, 403, 403, 200],
        "clerk": [200, 200, 201, 403, 403, 200],
        "reviewer": [200, 200, 201, 422, 403, 200],
        "officer": [200, 200, 201, 422, 200, 200],
        "admin": [200, 200, 201, 422, 200, 200],
    }
    for username, statuses in expected.items():
        session = client if username is None else login(username)
        got = [
            getattr(session, method)(path, **({"json": body} if body else {})).status_code
            for method, path, body in rows.values()
        ]
        assert got == statuses, (username, dict(zip(rows, got, strict=True)))


def test_csrf_tokens_survive_a_server_restart(app, login, scenario):
    from fastapi.testclient import TestClient

    from safeground.web.app import create_app

    clerk = login("clerk")
    restarted = create_app(scenario.settings)
    again = TestClient(restarted, cookies=dict(clerk.cookies), headers=dict(clerk.headers))
    body = {
        "record_type": "organisation",
        "date_of_information": "2022-01-01",
        "changes": {"name": "Q"},
    }
    assert again.post("/api/reports", json=body).status_code == 201
    restarted.state.register.store.engine.dispose()


def test_nul_characters_are_422_on_both_backends(login, client, scenario):
    """Found by fuzzing: PostgreSQL cannot store NUL in text, and answered 500."""
    officer = login("officer")
    cases = [
        officer.get("/api/records?type=hazardous_area&admin_area=%00"),
        officer.get("/api/records/AZ%00"),
        officer.get("/api/reports?record_type=x%00y"),
        officer.post(
            "/api/reports",
            json={
                "record_type": "organisation",
                "date_of_information": "2022-01-01",
                "changes": {"name": "a\u0000b"},
            },
        ),
        client.post("/api/login", data={"username": "clerk\x00", "password": "x"}),
        client.post("/api/login", json={"username": "clerk\x00", "password": "x"}),
        officer.post(
            f"/api/records/{scenario.hazard}/attachments",
            files={"file": ("a.txt", b"bytes \x00 are fine in files")},
            data={"caption": "bad\x00caption"},
        ),
    ]
    for response in cases:
        assert response.status_code == 422, response.text
        assert "NUL" in response.json()["problems"][0]["message"]
    fields = [r.json()["problems"][0]["field"] for r in cases]
    assert fields == [
        "query.admin_area",
        "path",
        "query.record_type",
        "body.changes.name",
        "body",
        "body.username",
        "caption",
    ]
    fine = officer.post(
        f"/api/records/{scenario.hazard}/attachments", files={"file": ("a.bin", b"\x00\x01")}
    )
    assert fine.status_code == 201


def test_editing_a_draft_revalidates_it_and_a_bad_edit_changes_nothing(login, draft_hazard):
    draft = draft_hazard("clerk")
    clerk = login("clerk")
    url = f"/api/reports/{draft['report_id']}"
    renamed = clerk.patch(url, json={"changes": {**draft["changes"], "name": "Orchard north"}})
    assert renamed.status_code == 200 and renamed.json()["changes"]["name"] == "Orchard north"
    bad = clerk.patch(url, json={"changes": {"name": "x", "reliability": 9}})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "reliability"
    assert clerk.get(url).json()["changes"] == renamed.json()["changes"]
    assert login("officer").patch(url, json={"reason": "mine now"}).status_code == 409


def test_a_report_names_the_form_that_reopens_it_and_gives_processed_land_as_geojson(
    login, draft_hazard, scenario
):
    clerk = login("clerk")
    square = [[46.901, 39.901], [46.905, 39.901], [46.905, 39.905], [46.901, 39.905]]
    cleared = {"type": "Polygon", "coordinates": [[*square, square[0]]]}
    activity = {
        "record_type": "activity",
        "date_of_information": "2022-05-01",
        "changes": {
            "activity_type": "clearance",
            "outcome": "completion",
            "hazard_id": scenario.hazard,
            "processed": [{"land_type": "cleared", "geometry": cleared, "method": "manual"}],
        },
    }
    draft = clerk.post("/api/reports", json=activity).json()
    assert draft["form"] == "clearance_completion"
    processed = clerk.get(f"/api/reports/{draft['report_id']}").json()["changes"]["processed"]
    assert processed[0]["geometry"] == cleared
    # What the form reads it can send back unchanged.
    back = clerk.patch(
        f"/api/reports/{draft['report_id']}",
        json={"changes": {**activity["changes"], "processed": processed}},
    )
    assert back.status_code == 200 and back.json()["changes"]["processed"] == processed
    survey = {**activity["changes"], "activity_type": "ts", "outcome": "progress"}
    assert clerk.post("/api/reports", json={**activity, "changes": survey}).json()["form"] == "ts"
    assert draft_hazard("clerk")["form"] == "nts"
    victim = {
        "record_type": "victim",
        "date_of_information": "2022-05-01",
        "changes": {"accident_id": scenario.accident, "outcome": "injured"},
    }
    assert clerk.post("/api/reports", json=victim).json()["form"] == "accident"  # with it


def test_editing_a_victim_draft_keeps_the_personal_fields_its_author_may_not_see(login, scenario):
    clerk = login("clerk")
    body = {
        "record_type": "victim",
        "date_of_information": "2022-05-01",
        "changes": {
            "accident_id": scenario.accident,
            "outcome": "injured",
            "name": "Aysel Aliyeva",
            "phone": "+994 50 111 11 11",
        },
    }
    draft = clerk.post("/api/reports", json=body).json()
    url = f"/api/reports/{draft['report_id']}"
    shown = clerk.get(url).json()["changes"]
    assert "name" not in shown and "phone" not in shown
    assert clerk.patch(url, json={"changes": {**shown, "age": 31}}).status_code == 200
    kept = login("officer").get(url).json()["changes"]
    assert (kept["name"], kept["phone"], kept["age"]) == ("Aysel Aliyeva", "+994 50 111 11 11", 31)
    renamed = clerk.patch(url, json={"changes": {**shown, "name": "Aysel Aliyeva-Guliyeva"}})
    assert renamed.status_code == 200
    kept = login("officer").get(url).json()["changes"]
    assert (kept["name"], kept["phone"]) == ("Aysel Aliyeva-Guliyeva", "+994 50 111 11 11")
    assert "age" not in kept
