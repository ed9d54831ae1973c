"""Pure domain rules: geometry checks, areas, the ledger, replay order, transitions, deployment."""

from datetime import date

import pytest
from shapely.geometry import Polygon, box

from safeground.domain.codes import HazardStatus, LandType
from safeground.domain.errors import ValidationFailed
from safeground.domain.geometry import (
    geodesic_area,
    geometry_problems,
    metres_outside,
    overlap_depth,
)
from safeground.domain.ids import format_record_id, parse_record_id
from safeground.domain.ledger import ProcessedPiece, account
from safeground.domain.personal import mask
from safeground.domain.reports import Operation, Report, ReportStatus, build_record, replay
from safeground.domain.rules import (
    Credential,
    Deployable,
    deployment_problems,
    status_change_problem,
)
from tests import geometries as g


def test_geodesic_area_of_one_degree_cell_at_equator():
    # A 1°×1° cell at the equator on WGS84 is 12,308,778,361 m² (known value, ±1 km²).
    assert geodesic_area(box(0, 0, 1, 1)) == pytest.approx(12_308_778_361, rel=1e-4)


def test_a_vertex_added_on_an_edge_does_not_change_the_area():
    from shapely.geometry import Polygon

    with_vertex = Polygon(
        [(46.90, 39.90), (46.905, 39.90), (46.91, 39.90), (46.91, 39.91), (46.90, 39.91)]
    )
    assert abs(geodesic_area(with_vertex) - geodesic_area(g.HAZARD)) < 0.01


def test_area_is_never_in_degrees():
    assert geodesic_area(g.HAZARD) == pytest.approx(850.4 * 1111.0, rel=0.01)


@pytest.mark.parametrize(
    ("geom", "fragment"),
    [
        (g.BOWTIE, "Self-intersection"),
        (g.UTM_SQUARE, "wrong CRS"),
        (g.WITH_Z, "3D"),
        (Polygon(), "empty"),
        (box(1, 1, 1, 1), "Too few points"),
    ],
)
def test_bad_geometries_are_reported_not_repaired(geom, fragment):
    problems = geometry_problems(geom, ("Polygon",))
    assert any(fragment in p for p in problems), problems


def test_distance_outside_and_overlap_depth_are_in_metres():
    assert metres_outside(g.WEST_HALF, g.HAZARD) < 0.001
    assert metres_outside(g.SPILLS_EAST, g.HAZARD) == pytest.approx(85.2, abs=1.0)
    assert overlap_depth(g.WEST_HALF, g.EAST_HALF) == 0
    assert overlap_depth(g.WEST_HALF, g.EAST_HALF_JITTER) < 0.5
    assert overlap_depth(g.WEST_HALF, g.CENTRE_STRIP) == pytest.approx(85.2, abs=1.0)


def test_ledger_credits_each_square_metre_once():
    pieces = [
        ProcessedPiece("a", 0, LandType.CANCELLED, g.WEST_HALF),
        ProcessedPiece("b", 0, LandType.CLEARED, g.SOUTH_WEST),  # inside already-cancelled land
        ProcessedPiece("c", 0, LandType.REDUCED, g.SPILLS_EAST),  # partly outside the hazard
    ]
    balance, credits = account(g.HAZARD, None, pieces)
    assert credits[1].area_m2 == 0
    assert balance.released_m2[LandType.REDUCED] == pytest.approx(geodesic_area(g.EAST_HALF), abs=1)
    assert balance.remaining_m2 == pytest.approx(0, abs=1)
    assert balance.total_released_m2 == pytest.approx(balance.estimated_m2, abs=1)


def test_area_without_polygon_keeps_its_estimate():
    balance, _ = account(None, 5000.0, [])
    assert balance.remaining_m2 == 5000.0


def _report(n, on, seq, **changes):
    op = Operation.CREATE if n == 1 else Operation.UPDATE
    return Report(
        n,
        "AZ-ORG-2021-00001",
        "organisation",
        op,
        on,
        changes,
        "u",
        status=ReportStatus.APPROVED,
        approval_seq=seq,
    )


def test_replay_applies_late_report_in_date_order_and_tells_of_equal_dates():
    reports = [
        _report(1, date(2021, 1, 1), 1, name="A"),
        _report(2, date(2021, 3, 1), 2, name="C"),
        _report(3, date(2021, 2, 1), 3, name="B", acronym="late"),  # entered late, dated earlier
        _report(4, date(2021, 3, 1), 4, acronym="same-day"),
    ]
    result = replay(reports)
    assert result.record.name == "C"  # the March report wins over the late February one
    assert result.record.acronym == "same-day"
    assert [v.report.report_id for v in result.versions] == [1, 3, 2, 4]
    assert len(result.notices) == 1 and "same date of information" in result.notices[0]


def test_drafts_and_rejected_reports_do_not_count():
    reports = [
        _report(1, date(2021, 1, 1), 1, name="A"),
        _report(2, date(2021, 2, 1), None, name="X"),
    ]
    reports[1].status = ReportStatus.REJECTED
    assert replay(reports).record.name == "A"


def test_missing_required_field_and_unknown_code_name_the_field():
    with pytest.raises(ValidationFailed) as error:
        build_record("activity", {"activity_type": "teleport"}, "AZ-ACT-2021-00001")
    assert error.value.problems[0].field == "activity_type"
    with pytest.raises(ValidationFailed) as error:
        build_record("team", {"team_type": "manual"})
    assert {p.field for p in error.value.problems} == {"name", "organisation_id"}


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinite_or_undefined_numbers_are_refused(value):
    with pytest.raises(ValidationFailed) as error:
        build_record("hazardous_area", {"name": "X", "estimated_area_m2": value})
    assert [p.field for p in error.value.problems] == ["estimated_area_m2"]


def test_status_transitions():
    assert status_change_problem(HazardStatus.OPEN, HazardStatus.WORKED_ON) is None
    assert status_change_problem(HazardStatus.CLOSED, HazardStatus.OPEN) is None
    assert "cannot go from Worked on to Open" in status_change_problem(
        HazardStatus.WORKED_ON, HazardStatus.OPEN
    )


def test_deployment_gate_names_who_and_since_when():
    expired = Credential(
        "T1",
        "team Alpha",
        "AZ-ACR-2021-00001",
        "accreditation",
        date(2021, 1, 1),
        date(2021, 12, 31),
    )
    cert = Credential(
        "P1", "Aysel", "AZ-CRT-2021-00001", "certification", date(2021, 3, 1), date(2022, 2, 28)
    )
    member = Deployable("P1", "person Aysel", (cert,))
    team = Deployable("T1", "team Alpha", (expired,), (member,))
    assert deployment_problems([team], date(2021, 6, 1), "assets") == []
    problems = deployment_problems([team], date(2022, 3, 15), "assets")
    reasons = " | ".join(p.reason for p in problems)
    assert "team Alpha (T1): accreditation AZ-ACR-2021-00001 expired on 2021-12-31" in reasons
    assert (
        "person Aysel (P1), member of team Alpha: certification AZ-CRT-2021-00001 expired on 2022-02-28"
        in reasons
    )


def test_record_ids_are_readable_and_stable():
    assert format_record_id("AZ", "HA", 2021, 42) == "AZ-HA-2021-00042"
    assert parse_record_id("AZ-HA-2021-00042") == ("AZ", "HA", 2021, 42)
    with pytest.raises(ValueError):
        parse_record_id("HA-42")


def test_mask_keeps_initials_only():
    assert mask("Leyla Mammadova") == "L**** M********"
    assert mask(None) is None


def test_a_multipart_geometry_with_an_empty_part_is_refused_before_anything_measures_it():
    # GEOS crashed the process (segfault) densifying such a MultiPolygon to measure its area.
    from shapely import from_wkt

    from safeground.domain.geometry import geometries_acceptable

    holed = from_wkt("MULTIPOLYGON (EMPTY, ((46.9 39.9, 46.91 39.9, 46.91 39.91, 46.9 39.9)))")
    whole = from_wkt("MULTIPOLYGON (((46.9 39.9, 46.91 39.9, 46.91 39.91, 46.9 39.9)))")
    assert geometry_problems(holed, ("MultiPolygon",)) == [
        "part 1 is empty in the MultiPolygon: remove it"
    ]
    assert geometry_problems(whole, ("MultiPolygon",)) == []
    assert geometries_acceptable([holed, whole], ("MultiPolygon",)).tolist() == [False, True]
    with pytest.raises(ValidationFailed, match="part 1 is empty"):
        build_record(
            "hazardous_area",
            {"name": "Holed", "classification": "sha", "status": "open", "geometry": holed},
        )
