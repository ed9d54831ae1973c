"""The register's workflow and rules, on the GeoPackage file and on PostGIS alike."""

import re
from datetime import date

import pytest
from shapely.geometry import box
from sqlalchemy import or_, select

from safeground.domain.errors import NotFound, RuleViolation, ValidationFailed, WorkflowError
from safeground.domain.geometry import geodesic_area
from safeground.domain.reports import ReportStatus
from safeground.service import accounts, checks
from safeground.service.attachments import attach
from safeground.service.history import history
from safeground.service.ledger import recount, totals
from safeground.service.register import Register, Submission
from safeground.storage.schema import processed_land, record_tables
from tests import geometries as g
from tests.helpers import add, at_once, update

D = date


@pytest.fixture
def hazard(register):
    org = add(register, "organisation", D(2021, 1, 1), name="Demo Army Engineers")
    hazard_id = add(
        register,
        "hazardous_area",
        D(2021, 2, 1),
        name="Field 1",
        geometry=g.HAZARD.wkt,
        evidence=["front_line"],
        organisation_id=org,
    )
    return register, hazard_id, org


def clearance(hazard_id, geom, land_type="cleared", activity_type="clearance", **extra):
    return {
        "hazard_id": hazard_id,
        "activity_type": activity_type,
        "processed": [{"land_type": land_type, "geometry": geom.wkt}],
        **extra,
    }


def test_ids_estimated_area_and_remaining(hazard):
    register, hazard_id, _ = hazard
    assert hazard_id == "AZ-HA-2021-00001"
    view = register.get(hazard_id)
    assert view["estimated_area_m2"] == pytest.approx(geodesic_area(g.HAZARD))
    assert view["remaining_m2"] == view["estimated_area_m2"]
    assert view["status"] == "open" and view["classification"] == "sha"


def test_only_approved_reports_change_the_register(hazard):
    register, hazard_id, _ = hazard
    rep = register.draft(
        "op", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 5, 1))]
    )[0]
    assert register.get(hazard_id)["remaining_m2"] == register.get(hazard_id)["estimated_area_m2"]
    with pytest.raises(WorkflowError):
        register.approve("im", [rep.report_id])  # a draft cannot be approved
    with pytest.raises(WorkflowError):
        register.submit("someone-else", rep.report_id)
    register.submit("op", rep.report_id)
    register.approve("im", [rep.report_id])
    view = register.get(hazard_id)
    assert view["cleared_m2"] == pytest.approx(geodesic_area(g.WEST_HALF), abs=1)
    assert view["remaining_m2"] == pytest.approx(geodesic_area(g.EAST_HALF), abs=1)
    assert view["status"] == "worked_on"
    with pytest.raises(WorkflowError):
        register.approve("im", [rep.report_id])  # not twice


def test_rejected_report_is_kept_with_its_reason(hazard):
    register, hazard_id, _ = hazard
    rep = register.draft(
        "op", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 5, 1))]
    )[0]
    register.submit("op", rep.report_id)
    with pytest.raises(ValidationFailed):
        register.reject("im", rep.report_id, " ")
    register.reject("im", rep.report_id, "polygon drawn from memory, resurvey")
    statuses = [r.status for r in register.reports(rep.record_id)]
    assert statuses == [ReportStatus.REJECTED]
    assert register.get(hazard_id)["cleared_m2"] == 0


def test_overlapping_release_is_refused_and_nothing_changes(hazard):
    register, hazard_id, _ = hazard
    register.file("im", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 5, 1))])
    before = register.get(hazard_id)
    with pytest.raises(RuleViolation) as error:
        register.file(
            "im",
            [
                Submission(
                    "activity", clearance(hazard_id, g.CENTRE_STRIP, "reduced", "ts"), D(2021, 6, 1)
                )
            ],
        )
    assert "overlaps land already processed" in str(error.value)
    assert register.get(hazard_id)["remaining_m2"] == before["remaining_m2"]


def test_jitter_within_tolerance_is_accepted(hazard):
    register, hazard_id, _ = hazard
    register.file("im", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 5, 1))])
    register.file(
        "im", [Submission("activity", clearance(hazard_id, g.EAST_HALF_JITTER), D(2021, 6, 1))]
    )
    view = register.get(hazard_id)
    assert view["remaining_m2"] < 1
    assert (
        view["status"] == "closed" and view["status_reason"] == "nothing remains: all land released"
    )


def test_release_outside_the_hazard_is_refused(hazard):
    register, hazard_id, _ = hazard
    with pytest.raises(RuleViolation, match="leaves hazardous area AZ-HA-2021-00001 by up to 8"):
        register.file(
            "im", [Submission("activity", clearance(hazard_id, g.SPILLS_EAST), D(2021, 5, 1))]
        )


def test_invalid_processed_polygon_is_refused_before_anything_is_written(hazard):
    register, hazard_id, _ = hazard
    with pytest.raises(ValidationFailed, match="Self-intersection"):
        register.draft(
            "op", [Submission("activity", clearance(hazard_id, g.BOWTIE), D(2021, 5, 1))]
        )
    assert register.pending() == []


def test_late_report_dated_earlier_takes_its_place(hazard):
    register, hazard_id, _ = hazard
    register.file("im", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 6, 1))])
    # A paper completion report from April arrives afterwards.
    register.file(
        "im",
        [
            Submission(
                "activity",
                clearance(hazard_id, g.EAST_HALF, "reduced", "ts", outcome="completion"),
                D(2021, 4, 1),
            )
        ],
    )
    view = register.get(hazard_id)
    assert view["status"] == "closed"
    assert str(view["status_date"]) == "2021-04-01"
    assert view["remaining_m2"] < 1


def test_same_date_reports_are_ordered_and_the_user_is_told(hazard):
    register, hazard_id, _ = hazard
    update(register, hazard_id, "hazardous_area", D(2021, 3, 1), name="First")
    result = register.file(
        "im", [Submission("hazardous_area", {"name": "Second"}, D(2021, 3, 1), record_id=hazard_id)]
    )
    assert register.get(hazard_id)["name"] == "Second"
    entries = history(register, hazard_id).entries
    assert any(e.notice and "same date of information" in e.notice for e in entries)
    assert result.report_ids


def test_direct_evidence_turns_sha_into_cha(hazard):
    register, hazard_id, _ = hazard
    add(
        register,
        "eo_item",
        D(2021, 7, 1),
        category="ap_mine",
        model="PMN-2",
        hazard_id=hazard_id,
        geometry="POINT (46.905 39.905)",
        disposal="destroyed_in_situ",
    )
    view = register.get(hazard_id)
    assert view["classification"] == "cha"
    changes = history(register, hazard_id).changes
    assert changes[-1]["new_value"] == "cha" and "direct evidence" in changes[-1]["reason"]


def test_status_change_needs_a_reason_and_follows_the_rules(hazard):
    register, hazard_id, _ = hazard
    with pytest.raises(RuleViolation, match="needs a reason"):
        update(register, hazard_id, "hazardous_area", D(2021, 3, 1), status="suspended")
    update(
        register,
        hazard_id,
        "hazardous_area",
        D(2021, 3, 1),
        status="suspended",
        status_reason="snow",
    )
    register.file(
        "im",
        [
            Submission(
                "activity", clearance(hazard_id, g.WEST_HALF, outcome="completion"), D(2021, 5, 1)
            )
        ],
    )
    assert register.get(hazard_id)["status"] == "closed"
    with pytest.raises(RuleViolation, match="cannot go from Closed to Worked on"):
        update(
            register,
            hazard_id,
            "hazardous_area",
            D(2021, 6, 1),
            status="worked_on",
            status_reason="x",
        )


def test_references_must_exist(register):
    with pytest.raises(RuleViolation, match="no hazardous area AZ-HA-2021-09999"):
        add(register, "activity", D(2021, 5, 1), hazard_id="AZ-HA-2021-09999", activity_type="nts")


def _asset_register(register, accreditation_expires, certification_expires):
    org = add(register, "organisation", D(2021, 1, 1), name="Demo NGO")
    team = add(
        register, "team", D(2021, 1, 1), name="Manual 1", organisation_id=org, team_type="manual"
    )
    person = add(register, "person", D(2021, 1, 1), name="Deminer One", team_id=team)
    add(
        register,
        "certification",
        D(2021, 1, 1),
        person_id=person,
        qualification="EOD level 2",
        issued=D(2021, 1, 10),
        expires=certification_expires,
    )
    add(
        register,
        "accreditation",
        D(2021, 1, 1),
        subject_type="team",
        subject_id=team,
        activity_types=["clearance"],
        issued=D(2021, 1, 15),
        expires=accreditation_expires,
    )
    hazard_id = add(register, "hazardous_area", D(2021, 2, 1), geometry=g.HAZARD.wkt)
    return team, person, hazard_id


def test_expired_accreditation_blocks_deployment(register):
    team, _, hazard_id = _asset_register(register, D(2021, 12, 31), D(2023, 1, 1))
    add(
        register,
        "task",
        D(2021, 3, 1),
        hazard_id=hazard_id,
        activity_type="clearance",
        team_ids=[team],
        planned_start=D(2021, 6, 1),
    )
    with pytest.raises(RuleViolation) as error:
        add(
            register,
            "task",
            D(2022, 1, 5),
            hazard_id=hazard_id,
            activity_type="clearance",
            team_ids=[team],
            planned_start=D(2022, 2, 1),
        )
    assert f"team Manual 1 ({team}): accreditation" in str(error.value)
    assert "expired on 2021-12-31" in str(error.value)


def test_expired_member_certification_blocks_deployment(register):
    team, person, hazard_id = _asset_register(register, D(2023, 1, 1), D(2021, 5, 31))
    with pytest.raises(
        RuleViolation,
        match=f"person Deminer One \\({person}\\), member of team Manual 1.*expired on 2021-05-31",
    ):
        add(
            register,
            "activity",
            D(2021, 6, 2),
            hazard_id=hazard_id,
            activity_type="clearance",
            team_ids=[team],
            start_date=D(2021, 6, 1),
        )


def test_history_shows_who_what_when_why(hazard):
    register, hazard_id, _ = hazard
    register.file(
        "reviewer",
        [
            Submission(
                "hazardous_area",
                {"name": "Field one"},
                D(2021, 4, 1),
                record_id=hazard_id,
                reason="spelling",
            )
        ],
    )
    found = history(register, hazard_id)
    last = found.entries[-1]
    assert last.report.reviewed_by == "reviewer" and last.report.reason == "spelling"
    assert last.diff == {"name": ("Field 1", "Field one")}


def test_victims_personal_data_lives_apart_and_is_masked(register):
    accident = add(
        register, "accident", D(2020, 12, 1), accident_type="mine", geometry="POINT (46.9 39.9)"
    )
    victim = add(
        register,
        "victim",
        D(2020, 12, 2),
        accident_id=accident,
        outcome="injured",
        victim_status="civilian",
        name="Leyla Mammadova",
        phone="+994 50 000 00 00",
    )
    assert "name" not in register.get(victim)
    assert register.get(victim, include_personal=True)["name"] == "Leyla Mammadova"
    masked = history(register, victim).entries[0].diff["name"]
    assert masked == (None, "L**** M********")
    with register.store.begin() as conn:
        stored = conn.exec_driver_sql("SELECT changes FROM report").all()
    assert all("Leyla" not in str(row[0]) for row in stored)


def test_retire_removes_the_current_view_but_keeps_history(register):
    org = add(register, "organisation", D(2021, 1, 1), name="Duplicate Org")
    from safeground.domain.reports import Operation

    register.file(
        "im",
        [
            Submission(
                "organisation",
                {},
                D(2021, 2, 1),
                record_id=org,
                operation=Operation.RETIRE,
                reason="duplicate",
            )
        ],
    )
    with pytest.raises(Exception, match="retired"):
        register.get(org)
    assert len(history(register, org).entries) == 2


def test_ledger_totals_agree_with_a_recount(hazard):
    register, hazard_id, org = hazard
    register.file(
        "im",
        [
            Submission(
                "activity",
                clearance(hazard_id, g.WEST_HALF, "cancelled", "nts", organisation_id=org),
                D(2021, 5, 1),
            )
        ],
    )
    register.file(
        "im",
        [
            Submission(
                "activity", clearance(hazard_id, g.EAST_HALF, organisation_id=org), D(2021, 6, 1)
            )
        ],
    )
    with register.store.begin() as conn:
        check = recount(conn)
        by_operator = totals(conn, "operator")
        by_period = totals(conn, "period")
    assert check.agrees
    assert check.recounted_released_m2 == pytest.approx(check.stored_released_m2, abs=1)
    assert by_operator[0].label == "Demo Army Engineers"
    assert by_operator[0].cancelled_m2 + by_operator[0].cleared_m2 == pytest.approx(
        geodesic_area(g.HAZARD), abs=1
    )
    assert [r.key for r in by_period] == ["2021"]


def _land(register):
    """The processed land stored: each piece's row by its key, (activity, piece)."""
    with register.store.read() as conn:
        rows = conn.execute(select(processed_land)).all()
    return {(row.activity_id, row.piece): row for row in rows}


def _cleared_elsewhere(register):
    """Land cleared in another area, so that the land of the tests' area is not the last
    stored: a GeoPackage gives rows deleted from the end and inserted again their fids back."""
    east = box(g.X0 + 2 * g.D, g.Y0, g.X0 + 3 * g.D, g.Y0 + g.D)
    elsewhere = add(register, "hazardous_area", D(2021, 2, 1), name="Field 9", geometry=east.wkt)
    add(register, "activity", D(2021, 5, 2), **clearance(elsewhere, east))


def test_processed_land_keeps_its_fids_when_its_area_is_reprojected(hazard):
    """QGIS selections, edits and joins hold on to fids: an approval that reprojects the area
    leaves its land's rows as they were, or updates them in place."""
    register, hazard_id, _ = hazard
    cleared = add(register, "activity", D(2021, 5, 1), **clearance(hazard_id, g.WEST_HALF))
    _cleared_elsewhere(register)
    before = _land(register)
    add(
        register,
        "eo_item",
        D(2021, 7, 1),
        category="ap_mine",
        hazard_id=hazard_id,
        geometry="POINT (46.905 39.905)",
    )
    update(register, hazard_id, "hazardous_area", D(2021, 8, 1), name="Field 1 north")
    assert register.get(hazard_id)["classification"] == "cha"
    assert _land(register) == before  # every column, the fid included
    # The area redrawn over half the land cleared: that land is credited with less, in place.
    west_quarter = box(g.X0, g.Y0, g.X0 + g.D / 4, g.Y0 + g.D)
    redrawn = g.HAZARD.difference(west_quarter)
    update(register, hazard_id, "hazardous_area", D(2021, 9, 1), geometry=redrawn.wkt)
    after = _land(register)[(cleared, 0)]
    assert after.fid == before[(cleared, 0)].fid
    assert after.credited_m2 == pytest.approx(before[(cleared, 0)].credited_m2 / 2, rel=1e-3)


def test_a_second_clearance_keeps_the_first_ones_fid_and_adds_a_row(hazard):
    register, hazard_id, _ = hazard
    add(register, "activity", D(2021, 5, 1), **clearance(hazard_id, g.WEST_HALF))
    _cleared_elsewhere(register)
    before = _land(register)
    second = add(register, "activity", D(2021, 6, 1), **clearance(hazard_id, g.EAST_HALF))
    land = _land(register)
    assert set(land) == {*before, (second, 0)}
    assert all(land[key].fid == row.fid for key, row in before.items())
    assert land[(second, 0)].fid not in {row.fid for row in before.values()}
    assert land[(second, 0)].credited_m2 == pytest.approx(geodesic_area(g.EAST_HALF), abs=1)


def test_land_whose_activity_names_another_area_moves_there_with_its_fid(hazard):
    """Its polygon redrawn too: the row is updated in place, and found where it is now (on a
    GeoPackage, through the R-tree its update trigger keeps)."""
    register, hazard_id, _ = hazard
    other = add(register, "hazardous_area", D(2021, 2, 1), name="Field 2", geometry=g.HAZARD.wkt)
    cleared = add(register, "activity", D(2021, 5, 1), **clearance(hazard_id, g.WEST_HALF))
    _cleared_elsewhere(register)
    fid = _land(register)[(cleared, 0)].fid
    redrawn = clearance(other, g.SOUTH_WEST)
    update(register, cleared, "activity", D(2021, 6, 1), **redrawn)
    moved = _land(register)[(cleared, 0)]
    assert (moved.fid, moved.hazard_id, moved.geometry) == (fid, other, g.SOUTH_WEST)
    assert register.get(hazard_id)["cleared_m2"] == 0
    assert register.get(other)["cleared_m2"] == pytest.approx(geodesic_area(g.SOUTH_WEST), abs=1)
    north_west = (g.X0 + 0.001, g.Y0 + 0.007, g.X0 + 0.002, g.Y0 + 0.008)
    south_west = (g.X0 + 0.001, g.Y0 + 0.002, g.X0 + 0.002, g.Y0 + 0.003)
    store = register.store
    with store.read() as conn:
        for bbox, found in ((north_west, []), (south_west, [fid])):
            query = select(processed_land.c.fid).where(store.bbox_clause(processed_land, bbox))
            assert conn.scalars(query).all() == found


def test_release_on_an_area_without_polygon_is_a_rule_error(register):
    hazard_id = add(
        register,
        "hazardous_area",
        D(2021, 1, 1),
        reference_point="POINT (46.9 39.9)",
        estimated_area_m2=5000.0,
    )
    with pytest.raises(
        RuleViolation, match=f"hazardous area {hazard_id} has no polygon to release land from"
    ):
        register.file(
            "im", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 2, 1))]
        )
    assert register.get(hazard_id)["remaining_m2"] == 5000.0


def test_two_bounding_boxes_in_one_query_keep_their_own_corners(register):
    """Each bbox clause binds its own values, on both backends."""
    on = D(2021, 1, 1)
    west = add(register, "accident", on, accident_type="mine", geometry="POINT(46.0 40.0)")
    east = add(register, "accident", on, accident_type="mine", geometry="POINT(47.0 40.0)")
    add(register, "accident", on, accident_type="mine", geometry="POINT(48.0 40.0)")
    table = record_tables["accident"]
    store = register.store
    with store.begin() as conn:
        found = conn.scalars(
            select(table.c.record_id).where(
                or_(
                    store.bbox_clause(table, (45.9, 39.9, 46.1, 40.1)),
                    store.bbox_clause(table, (46.9, 39.9, 47.1, 40.1)),
                )
            )
        ).all()
    assert sorted(found) == sorted([west, east])


def test_a_register_whose_creation_fails_is_not_left_behind(store_location):
    def refuse(_conn):
        raise RuntimeError("the audit entry could not be written")

    with pytest.raises(RuntimeError):
        Register.create(store_location, country="AZ", after_create=refuse)
    with pytest.raises(NotFound):
        Register.open(store_location)
    created = Register.create(store_location, country="AZ")
    with created.store.read() as conn:
        assert created.store.settings(conn)["country"] == "AZ"
    created.store.engine.dispose()


def _accident_with_victim(register, user="op"):
    """Drafts of a new accident and of a victim naming it, as the accident form saves them."""
    on = D(2022, 3, 1)
    (accident,) = register.draft(
        user,
        [Submission("accident", {"accident_type": "mine", "geometry": "POINT(46.9 39.9)"}, on)],
    )
    (victim,) = register.draft(
        user,
        [Submission("victim", {"accident_id": accident.record_id, "outcome": "injured"}, on)],
    )
    return accident, victim


def _statuses(register, *reports):
    return [register.reports(r.record_id)[-1].status for r in reports]


def test_a_victim_submitted_with_its_accident_passes_the_checks_together(register):
    accident, victim = _accident_with_victim(register)
    alone = f"accident {accident.record_id} is in draft report {accident.report_id}: submit it"
    with pytest.raises(RuleViolation, match=alone):
        register.submit("op", victim.report_id)  # alone, its accident is nowhere yet
    submitted = register.submit("op", [accident.report_id, victim.report_id])
    assert [r.report_id for r in submitted] == [accident.report_id, victim.report_id]
    assert all(r.status is ReportStatus.SUBMITTED and r.submitted_at for r in submitted)
    assert _statuses(register, accident, victim) == [ReportStatus.SUBMITTED] * 2
    with pytest.raises(NotFound, match="has no approved report yet"):
        register.get(accident.record_id)  # the trial approval left nothing behind


def test_submitting_together_is_all_or_nothing_and_names_the_failing_record(register):
    accident, victim = _accident_with_victim(register)
    (item,) = register.draft(
        "op",
        [
            Submission(
                "eo_item",
                {
                    "category": "uxo",
                    "hazard_id": "AZ-HA-2099-00009",
                    "geometry": "POINT(46.9 39.9)",
                },
                D(2022, 3, 1),
            )
        ],
    )
    ids = [accident.report_id, victim.report_id, item.report_id]
    with pytest.raises(RuleViolation) as error:
        register.submit("op", ids)
    (problem,) = error.value.problems
    assert (problem.record, problem.field) == (item.record_id, "hazard_id")
    assert _statuses(register, accident, victim, item) == [ReportStatus.DRAFT] * 3

    (theirs,) = register.draft("other", [Submission("organisation", {"name": "X"}, D(2022, 3, 1))])
    with pytest.raises(WorkflowError, match=f"report {theirs.report_id} is other's draft"):
        register.submit("op", [accident.report_id, victim.report_id, theirs.report_id])
    assert _statuses(register, accident, victim, theirs) == [ReportStatus.DRAFT] * 3
    register.submit("op", [accident.report_id, victim.report_id])
    with pytest.raises(WorkflowError, match=f"report {victim.report_id} is submitted"):
        register.submit("op", [victim.report_id])


def test_a_victim_is_approved_after_its_accident_or_with_it(register):
    accident, victim = _accident_with_victim(register)
    register.submit("op", [accident.report_id, victim.report_id])
    with pytest.raises(RuleViolation) as error:
        register.approve("im", [victim.report_id])
    (problem,) = error.value.problems
    assert (problem.record, problem.field) == (victim.record_id, "accident_id")
    assert problem.reason == (
        f"accident {accident.record_id} is in report {accident.report_id}, not yet approved: "
        "approve it first"
    )
    assert _statuses(register, victim) == [ReportStatus.SUBMITTED]
    register.approve("im", [accident.report_id])
    register.approve("im", [victim.report_id])
    assert register.get(victim.record_id)["accident_id"] == accident.record_id

    together = _accident_with_victim(register)
    register.submit("op", [r.report_id for r in together])
    approval = register.approve("im", [r.report_id for r in reversed(together)])
    assert approval.record_ids == [r.record_id for r in reversed(together)]
    assert _statuses(register, *together) == [ReportStatus.APPROVED] * 2


def _attach(register, target_id, user="op", approve=True, content=b"\xff\xd8 photo"):
    with register.store.begin() as conn:
        return attach(register, conn, user, target_id, "site.jpg", content, approve=approve)


def test_a_new_records_photo_is_drafted_and_goes_with_it(register):
    accident, victim = _accident_with_victim(register)
    other_accident, _ = _accident_with_victim(register)
    photo = _attach(register, accident.record_id)  # asked to file it: drafted all the same
    assert photo.status is ReportStatus.DRAFT
    _attach(register, other_accident.record_id)
    with register.store.read() as conn:
        dependents = register.dependents(conn, accident.record_id)
    assert [r.report_id for r in dependents] == [victim.report_id, photo.report_id]

    with pytest.raises(RuleViolation) as error:
        register.submit("op", photo.report_id)
    (problem,) = error.value.problems
    assert (problem.record, problem.field) == (photo.record_id, "target_id")
    assert problem.reason == (
        f"record {accident.record_id} is in draft report {accident.report_id}: "
        "submit it with this one"
    )
    ids = [accident.report_id, victim.report_id, photo.report_id]
    register.submit("op", ids)
    with pytest.raises(RuleViolation) as error:
        register.approve("im", [photo.report_id])
    (problem,) = error.value.problems
    assert problem.reason == (
        f"record {accident.record_id} is in report {accident.report_id}, not yet approved: "
        "approve it first"
    )
    assert _statuses(register, photo) == [ReportStatus.SUBMITTED]
    register.approve("im", ids)
    assert register.get(photo.record_id)["target_id"] == accident.record_id
    another = _attach(register, accident.record_id, content=b"\xff\xd8 another photo")
    assert another.status is ReportStatus.APPROVED  # filed now
    with pytest.raises(NotFound, match="no record AZ-ACC-2099-00001"):
        _attach(register, "AZ-ACC-2099-00001")


def test_rejecting_a_new_record_rejects_what_was_submitted_with_it(register):
    accident, victim = _accident_with_victim(register)
    photo = _attach(register, accident.record_id)
    register.submit("op", [accident.report_id, victim.report_id, photo.report_id])
    late = _attach(register, accident.record_id)  # drafted after the submission
    rejected = register.reject("im", accident.report_id, "no such place")
    assert [r.report_id for r in rejected] == [
        accident.report_id,
        victim.report_id,
        photo.report_id,
    ]
    with_it = f"rejected with report {accident.report_id}, which was to create {accident.record_id}"
    assert [r.review_reason for r in register.reports(photo.record_id)] == [
        f"{with_it}: no such place"
    ]
    assert _statuses(register, victim, photo, late) == [
        ReportStatus.REJECTED,
        ReportStatus.REJECTED,
        ReportStatus.DRAFT,
    ]
    with pytest.raises(RuleViolation, match=r"was rejected \(report \d+\): it will not be"):
        register.submit("op", late.report_id)
    with pytest.raises(NotFound, match="awaits no approval"):
        _attach(register, accident.record_id)


def test_rejecting_an_update_leaves_what_names_the_record(register):
    accident = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    (change,) = register.draft(
        "op", [Submission("accident", {"place_name": "Orchard"}, D(2022, 4, 1), accident)]
    )
    (victim,) = register.draft(
        "op", [Submission("victim", {"accident_id": accident, "outcome": "injured"}, D(2022, 4, 1))]
    )
    register.submit("op", [change.report_id, victim.report_id])
    assert [r.report_id for r in register.reject("im", change.report_id, "wrong")] == [
        change.report_id
    ]
    assert _statuses(register, victim) == [ReportStatus.SUBMITTED]


def test_a_new_hazard_and_its_photo_are_approved_together(register):
    """A hazard's view is written after the checks: its photo in the batch still finds it."""
    (hazard,) = register.draft(
        "op",
        [Submission("hazardous_area", {"name": "F1", "geometry": g.HAZARD.wkt}, D(2021, 2, 1))],
    )
    photo = _attach(register, hazard.record_id)
    register.submit("op", [hazard.report_id, photo.report_id])
    register.approve("im", [photo.report_id, hazard.report_id])
    assert register.get(photo.record_id)["target_id"] == hazard.record_id


def test_a_draft_is_withdrawn_by_its_author_and_kept_with_who_when_and_why(hazard):
    register, hazard_id, _ = hazard
    (rep,) = register.draft(
        "op", [Submission("activity", clearance(hazard_id, g.WEST_HALF), D(2021, 5, 1))]
    )
    with pytest.raises(WorkflowError, match=f"report {rep.report_id} is op's draft"):
        register.withdraw("im", rep.report_id)
    (withdrawn,) = register.withdraw("op", rep.report_id, " wrong hazard ")
    assert (withdrawn.status, withdrawn.reviewed_by, withdrawn.review_reason) == (
        ReportStatus.WITHDRAWN,
        "op",
        "wrong hazard",
    )
    (kept,) = register.reports(rep.record_id)  # nothing is deleted
    assert (kept.status, kept.reviewed_by, kept.review_reason) == (
        ReportStatus.WITHDRAWN,
        "op",
        "wrong hazard",
    )
    assert kept.reviewed_at is not None and kept.changes == rep.changes
    assert [e.report.status for e in history(register, rep.record_id).entries] == [
        ReportStatus.WITHDRAWN
    ]
    assert register.pending(ReportStatus.DRAFT) == []
    with register.store.read() as conn:
        assert register.awaiting(conn, rep.record_id) == []
    state = f"report {rep.report_id} is withdrawn"
    with pytest.raises(WorkflowError, match=f"{state}: only a draft can be withdrawn"):
        register.withdraw("op", rep.report_id)
    with pytest.raises(WorkflowError, match=state):
        register.submit("op", rep.report_id)
    with pytest.raises(WorkflowError, match=state):
        register.edit("op", rep.report_id, reason="again")
    assert register.get(hazard_id)["cleared_m2"] == 0

    (blank,) = register.draft("op", [Submission("organisation", {"name": "X"}, D(2021, 5, 1))])
    assert register.withdraw("op", blank.report_id, "  ")[0].review_reason is None
    (sent,) = register.draft("op", [Submission("organisation", {"name": "Y"}, D(2021, 5, 1))])
    register.submit("op", sent.report_id)
    with pytest.raises(WorkflowError, match="is submitted: only a draft can be withdrawn"):
        register.withdraw("op", sent.report_id)


def test_withdrawing_a_new_records_draft_withdraws_the_drafts_naming_it(register):
    accident, victim = _accident_with_victim(register)
    photo = _attach(register, accident.record_id, user="im")  # someone else's draft
    other_accident, other_victim = _accident_with_victim(register)
    withdrawn = register.withdraw("op", accident.report_id, "entered twice")
    assert [r.report_id for r in withdrawn] == [
        accident.report_id,
        victim.report_id,
        photo.report_id,
    ]
    with_it = (
        f"withdrawn with report {accident.report_id}, which was to create {accident.record_id}"
    )
    assert [r.review_reason for r in register.reports(photo.record_id)] == [
        f"{with_it}: entered twice"
    ]
    assert _statuses(register, accident, victim, photo, other_accident, other_victim) == [
        ReportStatus.WITHDRAWN,
        ReportStatus.WITHDRAWN,
        ReportStatus.WITHDRAWN,
        ReportStatus.DRAFT,
        ReportStatus.DRAFT,
    ]
    with register.store.read() as conn:
        assert register.dependents(conn, accident.record_id) == []
    with pytest.raises(NotFound, match="awaits no approval"):
        _attach(register, accident.record_id)
    # A report naming the withdrawn record later is refused naming the withdrawn report.
    (late,) = register.draft(
        "op",
        [
            Submission(
                "victim", {"accident_id": accident.record_id, "outcome": "killed"}, D(2022, 3, 1)
            )
        ],
    )
    with pytest.raises(RuleViolation) as error:
        register.submit("op", late.report_id)
    (problem,) = error.value.problems
    assert problem.reason == (
        f"accident {accident.record_id} was withdrawn (report {accident.report_id}): "
        "it will not be registered"
    )
    # Without a reason, those withdrawn with it say with which.
    register.withdraw("op", other_accident.report_id)
    assert register.reports(other_victim.record_id)[-1].review_reason == (
        f"withdrawn with report {other_accident.report_id}, "
        f"which was to create {other_accident.record_id}"
    )


def test_an_administrator_withdraws_a_disabled_accounts_draft_with_a_reason(register):
    """A clerk who left keeps no record awaiting approval for good: an administrator withdraws
    their drafts, saying why; the cascade is the author's own."""
    with register.store.begin() as conn:
        accounts.add_account(conn, "op", "reviewer", "a long password")
    accident, victim = _accident_with_victim(register)
    (ghost,) = register.draft("nobody", [Submission("organisation", {"name": "G"}, D(2022, 3, 1))])
    refused = (
        f"report {accident.report_id} is op's draft; only op, or an administrator once op's "
        "account is disabled, can withdraw it"
    )
    with pytest.raises(WorkflowError) as error:
        register.withdraw("rev", accident.report_id, "left")
    assert str(error.value) == refused
    with pytest.raises(WorkflowError) as error:
        register.withdraw("admin", accident.report_id, "left", administrator=True)
    assert str(error.value) == f"{refused} (op's account is active)"
    with pytest.raises(WorkflowError, match=r"\(nobody has no account to disable\)"):
        register.withdraw("admin", ghost.report_id, "left", administrator=True)

    with register.store.begin() as conn:
        accounts.disable_account(conn, "op", by="admin")
    with pytest.raises(WorkflowError, match=re.escape(refused)):
        register.withdraw("rev", accident.report_id, "left")  # not an administrator
    for blank in (None, "  "):
        with pytest.raises(ValidationFailed) as problems:
            register.withdraw("admin", accident.report_id, blank, administrator=True)
        assert [(p.field, p.reason) for p in problems.value.problems] == [
            ("reason", "say why you withdraw op's draft on their behalf")
        ]
    assert _statuses(register, accident, victim) == [ReportStatus.DRAFT, ReportStatus.DRAFT]

    withdrawn = register.withdraw("admin", accident.report_id, " op left ", administrator=True)
    assert [(r.report_id, r.author, r.reviewed_by) for r in withdrawn] == [
        (accident.report_id, "op", "admin"),
        (victim.report_id, "op", "admin"),
    ]
    assert register.reports(accident.record_id)[-1].review_reason == "op left"
    assert register.reports(victim.record_id)[-1].review_reason == (
        f"withdrawn with report {accident.report_id}, which was to create "
        f"{accident.record_id}: op left"
    )
    with register.store.read() as conn:
        assert register.awaiting(conn, accident.record_id) == []
    assert [r.report_id for r in register.pending(ReportStatus.DRAFT)] == [ghost.report_id]


def _attached_at_once(register, target, first_user, second_user, approve):
    """Attach one file to ``target`` twice at the same instant (on PostgreSQL, where writers do
    not hold the whole register as a GeoPackage's do): the second upload must wait for the
    first's transaction, then be refused. The first's attachment, and what the second heard."""
    from safeground.service.attachments import AlreadyAttached

    def upload(conn, user, name):
        return attach(register, conn, user, target, name, b"same", approve=approve, once=True)

    def second():
        with register.store.begin() as conn:
            upload(conn, second_user, "b.jpg")
        return "attached"

    return at_once(
        register, lambda conn: upload(conn, first_user, "a.jpg"), second, AlreadyAttached
    )


def test_two_uploads_of_one_file_at_once_attach_it_once(register):
    """The second finds the first's report."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    first, second = _attached_at_once(register, target, "op", "op", approve=False)
    assert second.startswith(f"b.jpg is attached to {target} already")
    assert f"report {first.report_id}" in second
    with register.store.read() as conn:
        assert [r.report_id for r in register.dependents(conn, target)] == [first.report_id]


def test_two_users_filing_one_file_at_once_attach_it_once(register):
    """Two reviewers filing the same photo to a registered record at the same instant: the
    second finds the first's attachment there (the lock is the record's and the file's, not
    the user's)."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    first, second = _attached_at_once(register, target, "im", "im2", approve=True)
    assert first.status is ReportStatus.APPROVED
    assert second == (
        f"b.jpg is attached to {target} already: {first.record_id} is the same file (a.jpg, "
        f"attached by report {first.report_id}, SHA-256 {first.sha256[:12]}…), so it is not "
        "attached twice"
    )
    attachments = record_tables["attachment"]
    with register.store.read() as conn:
        found = conn.execute(select(attachments.c.record_id)).scalars().all()
    assert found == [first.record_id]


def test_two_writers_needing_two_id_prefixes_in_opposite_orders_both_land(register, monkeypatch):
    """Each new record's ID counter stays locked (on PostgreSQL) until its transaction ends:
    two drafts needing the same two prefixes, listed in opposite orders, each wait for the
    other's first counter unless the counters are always taken in one order (a deadlock,
    which PostgreSQL breaks by failing one of them)."""
    import contextlib
    import threading

    if register.store.dialect != "postgresql":
        pytest.skip("a GeoPackage has one writer at a time")
    # Each writer waits (a while) after its first counter for the other to take one too.
    both_took_one = threading.Barrier(2, timeout=2.0)
    taken = threading.local()
    reserve = register.store.next_numbers

    def next_numbers(conn, prefix, count):
        numbers = reserve(conn, prefix, count)
        if not getattr(taken, "one", False):
            taken.one = True
            with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for this
                both_took_one.wait()
        return numbers

    monkeypatch.setattr(register.store, "next_numbers", next_numbers)
    accident = Submission("accident", {"accident_type": "mine"}, D(2022, 3, 1))
    item = Submission("eo_item", {"category": "uxo"}, D(2022, 3, 1))
    drafted, failed = [], []

    def draft(items: list[Submission]) -> None:
        try:
            drafted.append(register.draft("op", items))
        except Exception as exc:
            failed.append(exc)

    writers = [
        threading.Thread(target=draft, args=(i,)) for i in ([accident, item], [item, accident])
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=30)
    assert failed == []
    ids = sorted(r.record_id for reports in drafted for r in reports)
    assert ids == ["AZ-ACC-2022-00001", "AZ-ACC-2022-00002", "AZ-EO-2022-00001", "AZ-EO-2022-00002"]


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_a_report_decided_by_two_reviewers_at_once_is_decided_once(register, second):
    """The second reviewer, approving or rejecting the report while the first one's approval
    is not yet committed, waits for it and is then told the report is approved: before, it read
    the report still submitted and overwrote the first decision once that was committed."""
    rep = register.draft("op", [Submission("accident", {"accident_type": "mine"}, D(2022, 3, 1))])
    report_id = rep[0].report_id
    register.submit("op", report_id)

    def decide():
        if second == "approve":
            register.approve("im2", [report_id])
        else:
            register.reject("im2", report_id, "duplicate of a paper form")
        return "decided"

    def approve(conn):
        return register.approve("im", [report_id], conn=conn)

    _, heard = at_once(register, approve, decide, WorkflowError)
    assert heard.startswith(f"report {report_id} is approved")
    (decided,) = register.reports(rep[0].record_id)
    assert (decided.status, decided.reviewed_by) == (ReportStatus.APPROVED, "im")


@pytest.mark.parametrize("close", ["reject", "withdraw"])
def test_a_report_closed_with_its_record_keeps_a_decision_made_at_the_same_moment(register, close):
    """Rejecting (or withdrawing) a new record's report closes the reports naming the record.
    One of them closed on its own at the same moment, not yet committed: the cascade waits for
    it and then leaves it as it was closed. Before, the cascade read it still open and, once
    the other transaction committed, overwrote who closed it and why."""
    accident, victim = _accident_with_victim(register)
    decider = "op"
    if close == "reject":
        register.submit("op", [accident.report_id, victim.report_id])
        decider = "im2"

    def close_victim(conn):
        if close == "reject":
            return register.reject(decider, victim.report_id, "no such person", conn=conn)
        return register.withdraw(decider, victim.report_id, "no such person", conn=conn)

    def close_accident():
        if close == "reject":
            return register.reject("im", accident.report_id, "no such place")
        return register.withdraw("op", accident.report_id, "no such place")

    _, closed = at_once(register, close_victim, close_accident, WorkflowError)
    assert [r.report_id for r in closed] == [accident.report_id]
    (kept,) = register.reports(victim.record_id)
    assert (kept.reviewed_by, kept.review_reason) == (decider, "no such person")


def test_one_username_added_by_two_administrators_at_once_is_refused_once(register):
    """The second waits for the first's transaction, then hears what adding an existing
    account says (before, the account's primary key refused it: an IntegrityError, a 500)."""

    def add_amina(conn):
        return accounts.add_account(conn, "amina", "reviewer", "a long password", by="admin")

    def add_amina_again():
        with register.store.begin() as conn:
            return add_amina(conn)

    added, heard = at_once(register, add_amina, add_amina_again, ValidationFailed)
    assert added.username == "amina"
    assert heard == "username: 'amina' exists already"


def test_an_attachment_must_name_a_stored_file(register):
    """A create sent to the reports API rather than uploaded can name any digest: approval
    refuses one that names no stored file, or the wrong size (an update changing the file is
    refused as such: test_an_attachment_keeps_its_record_and_its_file)."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    with register.store.begin() as conn:
        photo = attach(register, conn, "im", target, "a.jpg", b"four")
    other = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    for sha256, size_bytes, field, reason in (
        (
            "0" * 64,
            4,
            "sha256",
            "no file with SHA-256 000000000000… is stored: attach a file by uploading it",
        ),
        (
            photo.sha256,
            5,
            "size_bytes",
            f"the file with SHA-256 {photo.sha256[:12]}… has 4 bytes, not 5",
        ),
    ):
        with pytest.raises(RuleViolation) as refused:
            add(
                register,
                "attachment",
                D(2022, 3, 2),
                target_id=other,
                filename="b.jpg",
                sha256=sha256,
                size_bytes=size_bytes,
            )
        assert [(p.field, p.reason) for p in refused.value.problems] == [(field, reason)]
    update(register, photo.record_id, "attachment", date.today(), caption="the crater")
    assert register.get(photo.record_id)["caption"] == "the crater"


def test_a_record_does_not_get_a_second_copy_of_a_file(register):
    """Approval refuses it, whoever attaches it and however (the upload's own check, ``once``,
    refuses at once only what it can see: not another user's draft approved later)."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    other = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    with register.store.begin() as conn:
        draft = attach(register, conn, "op", target, "b.jpg", b"same", approve=False)
        first = attach(register, conn, "im", target, "a.jpg", b"same")
        attach(register, conn, "im", other, "a.jpg", b"same")  # another record: its own copy
    with pytest.raises(RuleViolation) as refused:
        register.submit("op", [draft.report_id])
    assert [(p.field, p.reason, p.record) for p in refused.value.problems] == [
        (
            "sha256",
            f"{target} has this file already as {first.record_id} (SHA-256 "
            f"{first.sha256[:12]}…): a record does not get a second copy",
            draft.record_id,
        )
    ]
    with pytest.raises(RuleViolation), register.store.begin() as conn:
        attach(register, conn, "im2", target, "c.jpg", b"same")
    update(register, first.record_id, "attachment", date.today(), caption="kept")


def _caption_edit(register, record_id, caption):
    """The record page's Edit caption: an update report with the caption only, submitted, then
    approved by another."""
    item = Submission("attachment", {"caption": caption}, date.today(), record_id=record_id)
    (edit,) = register.draft("op", [item])
    register.submit("op", [edit.report_id])
    register.approve("im", [edit.report_id])


def test_an_attachment_keeps_its_record_and_its_file(register):
    """An update report may change an attachment's caption, not the record it documents nor its
    file (moving a scanned form to another record would rewrite what history says it
    documents): submission and approval refuse it, naming the attachment and what to do."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    other = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    with register.store.begin() as conn:
        photo = attach(register, conn, "im", target, "a.jpg", b"four")
        elsewhere = attach(register, conn, "im", other, "b.jpg", b"another file")
    moved = (
        f"{photo.record_id} belongs to {target} and is not moved to {other}: "
        f"retire it and attach the file to {other}"
    )
    replaced = (
        f"{photo.record_id} keeps the file it was attached with (SHA-256 "
        f"{photo.sha256[:12]}…, 4 bytes): retire it and attach the other file to {target}"
    )
    item = Submission("attachment", {"target_id": other}, date.today(), record_id=photo.record_id)
    (draft,) = register.draft("op", [item])
    with pytest.raises(RuleViolation) as refused:
        register.submit("op", [draft.report_id])
    assert [(p.record, p.field, p.reason) for p in refused.value.problems] == [
        (photo.record_id, "target_id", moved)
    ]
    for changes, field in (
        ({"target_id": other}, "target_id"),
        ({"sha256": elsewhere.sha256, "size_bytes": elsewhere.size_bytes}, "sha256"),
        ({"sha256": "0" * 64}, "sha256"),
        ({"size_bytes": 5}, "size_bytes"),
    ):
        with pytest.raises(RuleViolation) as refused:
            update(register, photo.record_id, "attachment", date.today(), **changes)
        assert [(p.record, p.field, p.reason) for p in refused.value.problems] == [
            (photo.record_id, field, moved if field == "target_id" else replaced)
        ]
    # Restating them unchanged changes nothing; the caption changes.
    update(
        register,
        photo.record_id,
        "attachment",
        date.today(),
        target_id=target,
        sha256=photo.sha256,
        size_bytes=4,
        caption="the crater",
    )
    _caption_edit(register, photo.record_id, "the crater, north side")
    view = register.get(photo.record_id)
    assert (view["target_id"], view["sha256"], view["caption"]) == (
        target,
        photo.sha256,
        "the crater, north side",
    )


def test_a_caption_edit_passes_on_a_second_copy_from_before_the_rule(register, monkeypatch):
    """A record may hold two copies of one file attached before approval refused them: a
    caption edit places no file on it, so it passes on either copy; a third copy is refused."""
    target = add(register, "accident", D(2022, 3, 1), accident_type="mine")
    with monkeypatch.context() as before_the_rule, register.store.begin() as conn:
        before_the_rule.setattr(checks, "_repeated_files", lambda *args: [])
        first = attach(register, conn, "im", target, "a.jpg", b"same")
        second = attach(register, conn, "im", target, "b.jpg", b"same")
    for copy, caption in ((first, "the gate"), (second, "the gate again")):
        _caption_edit(register, copy.record_id, caption)
        assert register.get(copy.record_id)["caption"] == caption
    with pytest.raises(RuleViolation) as refused, register.store.begin() as conn:
        attach(register, conn, "im", target, "c.jpg", b"same")
    assert [p.reason.split(" (")[0] for p in refused.value.problems] == [
        f"{target} has this file already as {first.record_id}"
    ]
