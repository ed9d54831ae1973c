"""Dashboard aggregates on a small register whose answers can be worked out by hand."""

from datetime import date

import pytest
from shapely.geometry import box

from safeground.domain.geometry import geodesic_area
from safeground.service import dashboard
from safeground.service.register import Submission
from tests import geometries as g
from tests.helpers import add

D = date
OTHER_HAZARD = box(g.X0 + 0.05, g.Y0, g.X0 + 0.05 + g.D, g.Y0 + g.D)
SOUTH_EAST = box(g.X0 + g.D / 2, g.Y0, g.X0 + g.D, g.Y0 + g.D / 2)


@pytest.fixture
def filled(register):
    west = add(register, "admin_area", D(2020, 1, 1), name="Aghdam", level=2)
    east = add(register, "admin_area", D(2020, 1, 1), name="Fuzuli", level=2)
    org = add(register, "organisation", D(2020, 1, 1), name="Demo Army Engineers")
    hazard = add(
        register, "hazardous_area", D(2021, 2, 1), geometry=g.HAZARD.wkt, admin_area_id=west
    )
    add(register, "hazardous_area", D(2021, 2, 1), geometry=OTHER_HAZARD.wkt, admin_area_id=east)
    for on, land_type, geom in [
        (D(2021, 5, 3), "cancelled", g.WEST_HALF),
        (D(2021, 6, 9), "cleared", SOUTH_EAST),
    ]:
        processed = [{"land_type": land_type, "geometry": geom.wkt}]
        register.file(
            "im",
            [
                Submission(
                    "activity",
                    {
                        "hazard_id": hazard,
                        "activity_type": "clearance",
                        "organisation_id": org,
                        "processed": processed,
                    },
                    on,
                )
            ],
        )
    for category, quantity in [("ap_mine", 3), ("ap_mine", 2), ("uxo", 1)]:
        add(register, "eo_item", D(2021, 7, 1), category=category, quantity=quantity)
    march = add(
        register, "accident", D(2021, 3, 20), accident_type="mine", accident_date="2021-03-15"
    )
    march_too = add(
        register, "accident", D(2021, 3, 21), accident_type="mine", accident_date="2021-03-20"
    )
    some_day_in_2020 = add(
        register,
        "accident",
        D(2020, 6, 1),
        accident_type="uxo",
        accident_date="2020-01-01",
        date_precision="year",
    )
    for accident, status, outcome in [
        (march, "civilian", "killed"),
        (march, "civilian", "injured"),
        (march_too, "military", "injured"),
        (some_day_in_2020, "civilian", "killed"),
    ]:
        add(
            register,
            "victim",
            D(2021, 4, 1),
            accident_id=accident,
            victim_status=status,
            outcome=outcome,
            name="Leyla Mammadova",
        )
    team = add(
        register,
        "team",
        D(2021, 1, 1),
        name="Manual team 3",
        organisation_id=org,
        team_type="manual",
    )
    for expires, suspended in [
        ("2022-01-20", False),
        ("2022-02-09", False),  # the 30th day: still inside the window
        ("2022-02-10", False),  # the 31st day
        ("2022-01-09", False),  # expired yesterday
        ("2022-01-15", True),  # suspended: not coming up for renewal
    ]:
        add(
            register,
            "accreditation",
            D(2021, 1, 1),
            subject_type="team",
            subject_id=team,
            issued="2021-01-01",
            expires=expires,
            suspended=suspended,
        )
    return register


def chart(register, name, **options):
    with register.store.begin() as conn:
        return dashboard.chart(conn, name, D(2022, 1, 10), **options)


def test_land_released_by_month_and_year(filled):
    rows = chart(filled, "land_released").rows
    west, south_east = geodesic_area(g.WEST_HALF), geodesic_area(SOUTH_EAST)
    assert [r[0] for r in rows] == ["2021-05", "2021-06"]
    assert rows[0][1:] == pytest.approx([west, 0, 0], abs=1)
    assert rows[1][1:] == pytest.approx([0, 0, south_east], abs=1)
    (year,) = chart(filled, "land_released", period="year").rows
    assert year[0] == "2021" and year[1:] == pytest.approx([west, 0, south_east], abs=1)
    with pytest.raises(ValueError, match="period"):
        chart(filled, "land_released", period="week")


def test_remaining_area_by_district(filled):
    rows = chart(filled, "remaining_by_district").rows
    by_name = {r[1]: (r[2], r[3]) for r in rows}
    left = geodesic_area(g.HAZARD) - geodesic_area(g.WEST_HALF) - geodesic_area(SOUTH_EAST)
    assert by_name["Aghdam"] == (1, pytest.approx(left, abs=1))
    assert by_name["Fuzuli"] == (1, pytest.approx(geodesic_area(OTHER_HAZARD), abs=1))
    assert [r[1] for r in rows] == ["Fuzuli", "Aghdam"]  # most remaining first


def test_items_by_category(filled):
    rows = chart(filled, "items_by_category").rows
    assert rows == [["ap_mine", "AP mine", 5, 2], ["uxo", "UXO", 1, 1]]


def test_casualties_by_month_without_personal_data(filled):
    result = chart(filled, "casualties_by_month")
    table = {row[0]: dict(zip(result.columns[1:], row[1:], strict=True)) for row in result.rows}
    assert list(table) == ["2020", "2021-03"]  # dated to the year only: not put in January
    assert table["2021-03"]["civilian_killed"] == 1
    assert table["2021-03"]["civilian_injured"] == 1
    assert table["2021-03"]["military_injured"] == 1
    assert table["2021-03"]["military_killed"] == 0
    assert table["2020"]["civilian_killed"] == 1
    assert sum(sum(row[1:]) for row in result.rows) == 4
    assert "Leyla" not in str(result.as_dict())


def test_accreditations_expiring_in_the_next_30_days(filled):
    rows = chart(filled, "expiring_accreditations").rows
    assert [(r[3], r[4], r[5]) for r in rows] == [
        ("Manual team 3", "2022-01-20", 10),
        ("Manual team 3", "2022-02-09", 30),
    ]


def test_empty_register_gives_empty_charts(register):
    for name in dashboard.CHARTS:
        assert chart(register, name).rows == []
    with pytest.raises(ValueError, match="no chart"):
        chart(register, "pie")
