"""SYNTHETIC Karabakh scenario for the demo: invented hazardous areas along a notional former
line of contact, with survey and clearance history, teams, MEMATT machines, dogs, deminers and a
few accidents. Nothing here describes a real minefield, operator or person. It is generated
from a fixed seed and filed through the ordinary approval workflow, so it exercises the same
rules as real data.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select

from safeground.domain.errors import RuleViolation
from safeground.service.register import Register, Submission
from safeground.storage.schema import record_tables

SEED = 2020
USER = "demo.im.officer"
# A notional line of contact (lon, lat), drawn for the demo only, from Tartar to the Araz river.
NOTIONAL_LINE = LineString(
    [
        (46.55, 40.42),
        (46.75, 40.22),
        (46.93, 40.05),
        (47.05, 39.87),
        (47.12, 39.68),
        (47.10, 39.50),
        (46.98, 39.42),
        (46.80, 39.38),
    ]
)
SYNTHETIC = "SYNTHETIC demo data"


@dataclass
class Scenario:
    """What the scenario created, for the demo's summary."""

    organisations: dict[str, str] = field(default_factory=dict)
    teams: dict[str, str] = field(default_factory=dict)
    hazards: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def _file(register: Register, items: list[Submission], reason: str = SYNTHETIC) -> list[str]:
    result = register.file(USER, items, reason=reason)
    return result.record_ids


def _one(register: Register, record_type: str, on: date, **values: Any) -> str:
    return _file(register, [Submission(record_type, values, on)])[0]


def _rectangle(rng: np.random.Generator, centre: Point) -> BaseGeometry:
    """A rotated rectangle of a few hectares around ``centre``, in lon/lat."""
    to_lonlat = Transformer.from_crs(
        f"+proj=aeqd +lat_0={centre.y} +lon_0={centre.x} +datum=WGS84 +units=m",
        "EPSG:4326",
        always_xy=True,
    )
    width, height = rng.uniform(180, 650), rng.uniform(120, 420)
    local = shapely.affinity.rotate(
        box(-width / 2, -height / 2, width / 2, height / 2), rng.uniform(0, 90)
    )
    x, y = to_lonlat.transform(*np.array(local.exterior.coords).T)
    return shapely.Polygon(np.column_stack([np.round(x, 7), np.round(y, 7)]))


def _bands(hazard: BaseGeometry, cuts: list[float]) -> list[BaseGeometry]:
    """Split a hazard into west-to-east bands at fractions of its width (exactly inside it)."""
    minx, miny, maxx, maxy = hazard.bounds
    edges = [minx + f * (maxx - minx) for f in [0.0, *cuts, 1.0]]
    return [hazard.intersection(box(a, miny, b, maxy)) for a, b in itertools.pairwise(edges)]


def _admin_area_at(register: Register, point: Point) -> str | None:
    table = record_tables["admin_area"]
    with register.store.begin() as conn:
        rows = conn.execute(
            select(table.c.record_id, table.c.geometry).where(
                register.store.bbox_clause(table, (point.x, point.y, point.x, point.y)),
                table.c.level == 2,
            )
        ).all()
    for record_id, geometry in rows:
        if geometry is not None and geometry.contains(point):
            return str(record_id)
    return None


def build(register: Register, hazards: int = 40) -> Scenario:
    """File the whole scenario into ``register``."""
    rng = np.random.default_rng(SEED)
    out = Scenario()
    start = date(2021, 1, 10)
    orgs = {
        "authority": ("Demo National Authority", "national_authority"),
        "army": ("Demo Army Engineers", "army"),
        "ngo": ("Demo Humanitarian Demining NGO", "ngo"),
        "company": ("Demo Clearance Company", "commercial"),
    }
    ids = _file(
        register,
        [
            Submission("organisation", {"name": n, "organisation_type": t}, start)
            for n, t in orgs.values()
        ],
    )
    out.organisations = dict(zip(orgs, ids, strict=True))
    army, ngo, company = (
        out.organisations["army"],
        out.organisations["ngo"],
        out.organisations["company"],
    )

    course = _one(
        register,
        "training_course",
        date(2021, 2, 14),
        name="EOD specialist course (two weeks)",
        place_name="Izmir",
        start_date=date(2021, 2, 1),
        end_date=date(2021, 2, 14),
        participants=23,
    )
    team_specs = {
        "memATT": ("MEMATT mechanical team", army, "mechanical"),
        "mdd": ("Dog team 1", ngo, "mdd"),
        "manual1": ("Manual team 1", army, "manual"),
        "manual2": ("Manual team 2", ngo, "manual"),
        "manual3": ("Manual team 3", company, "manual"),
        "nts": ("Survey team 1", ngo, "nts"),
    }
    team_ids = _file(
        register,
        [
            Submission("team", {"name": n, "organisation_id": o, "team_type": t}, start)
            for n, o, t in team_specs.values()
        ],
    )
    out.teams = dict(zip(team_specs, team_ids, strict=True))
    people = []
    for key, team_id in out.teams.items():
        size = {"memATT": 3, "mdd": 2, "nts": 2}.get(key, 6)
        role = {"mdd": "dog handler", "nts": "surveyor", "memATT": "machine operator"}.get(
            key, "deminer"
        )
        people += [
            Submission(
                "person",
                {"name": f"Synthetic {role} {key}-{i + 1}", "team_id": team_id, "role": role},
                start,
            )
            for i in range(size)
        ]
    person_ids = _file(register, people)
    _file(
        register,
        [
            Submission(
                "certification",
                {
                    "person_id": p,
                    "course_id": course,
                    "qualification": "EOD specialist",
                    "issued": date(2021, 2, 14),
                    "expires": date(2023, 2, 14),
                },
                date(2021, 2, 14),
            )
            for p in person_ids
        ],
    )
    handlers = person_ids[3:5]
    dogs = _file(
        register,
        [
            Submission("dog", {"name": name, "team_id": out.teams["mdd"], "handler_id": h}, start)
            for name, h in zip(("Karabash", "Alabai"), handlers, strict=True)
        ],
    )
    machines = _file(
        register,
        [
            Submission(
                "machine",
                {
                    "name": f"MEMATT {i}",
                    "model": "MEMATT (ASFAT)",
                    "serial_number": f"SYN-{i:03d}",
                    "team_id": out.teams["memATT"],
                    "organisation_id": army,
                },
                start,
            )
            for i in (1, 2)
        ],
    )
    # One-year accreditations; every asset is renewed in 2022 except Manual team 3.
    accreditations = []
    for year in (2021, 2022):
        subjects = [
            ("team", t) for k, t in out.teams.items() if not (year == 2022 and k == "manual3")
        ]
        subjects += [("dog", d) for d in dogs] + [("machine", m) for m in machines]
        accreditations += [
            Submission(
                "accreditation",
                {
                    "subject_type": kind,
                    "subject_id": sid,
                    "activity_types": ["ts", "clearance"],
                    "issued": date(year, 3, 1),
                    "expires": date(year + 1, 2, 28),
                },
                date(year, 3, 1),
            )
            for kind, sid in subjects
        ]
    _file(register, accreditations)

    _hazards(register, rng, out, hazards)
    _accidents_and_education(register, rng, out)
    return out


def _hazards(register: Register, rng: np.random.Generator, out: Scenario, count: int) -> None:
    survey: list[Submission] = []
    shapes = []
    for i in range(count):
        along = NOTIONAL_LINE.interpolate(rng.uniform(0, 1), normalized=True)
        centre = Point(along.x + rng.normal(0, 0.02), along.y + rng.normal(0, 0.02))
        shape = _rectangle(rng, centre)
        shapes.append(shape)
        survey.append(
            Submission(
                "hazardous_area",
                {
                    "name": f"Synthetic area {i + 1:02d}",
                    "classification": "sha",
                    "evidence": ["front_line", "verbal_report"],
                    "reliability": int(rng.integers(2, 5)),
                    "source_reliability": "C",
                    "contamination": ["ap_mines", "at_mines"] if i % 3 else ["uxo"],
                    "geometry": shape.wkt,
                    "reference_point": shape.centroid.wkt,
                    "benchmark": Point(shape.bounds[0] - 0.0005, shape.bounds[1] - 0.0005).wkt,
                    "organisation_id": out.organisations["ngo"],
                    "admin_area_id": _admin_area_at(register, shape.centroid),
                    "blockages": ["farmland"] if i % 2 else ["housing", "road"],
                    "beneficiaries": {
                        "female_18_plus": int(rng.integers(10, 200)),
                        "male_18_plus": int(rng.integers(10, 200)),
                    },
                    "description": SYNTHETIC,
                },
                date(2021, 3, 1) + timedelta(days=int(rng.integers(0, 120))),
            )
        )
    out.hazards = _file(register, survey, "non-technical survey (synthetic)")
    army, ngo = out.organisations["army"], out.organisations["ngo"]
    for hazard_id, shape, sub in zip(out.hazards, shapes, survey, strict=True):
        fate = rng.uniform()
        surveyed = sub.date_of_information
        if fate < 0.25:  # cancelled by NTS: no evidence found
            _one_activity(
                register,
                hazard_id,
                "nts",
                "cancellation",
                surveyed + timedelta(days=30),
                ngo,
                [("cancelled", shape, "non_technical", None)],
                out.teams["nts"],
            )
            continue
        if fate > 0.85:
            continue  # still open, waiting
        reduced, *rest = _bands(shape, [0.45, 0.7])
        ts_day = surveyed + timedelta(days=int(rng.integers(40, 200)))
        _one_activity(
            register,
            hazard_id,
            "ts",
            "progress",
            ts_day,
            ngo,
            [("reduced", reduced, "dog", "MDD pair")],
            out.teams["mdd"],
        )
        clear_day = ts_day + timedelta(days=int(rng.integers(20, 90)))
        _one_activity(
            register,
            hazard_id,
            "clearance",
            "progress",
            clear_day,
            army,
            [("cleared", rest[0], "mixed", "MEMATT + manual follow-up")],
            out.teams["memATT"],
            items=int(rng.integers(1, 4)),
            rng=rng,
        )
        if fate < 0.6:
            _one_activity(
                register,
                hazard_id,
                "clearance",
                "completion",
                clear_day + timedelta(days=25),
                army,
                [("cleared", rest[1], "manual", "manual")],
                out.teams["manual1"],
            )
    # A paper TS report that reached the IM office late, dated before later work.
    late = out.hazards[-1]
    result = register.file(
        USER,
        [
            Submission(
                "hazardous_area",
                {"confirmed": "no"},
                survey[-1].date_of_information + timedelta(days=3),
                record_id=late,
                reason="late paper report (synthetic)",
            )
        ],
    )
    out.notices += result.notices
    # A task for Manual team 3, whose accreditation was not renewed: the register refuses it.
    try:
        register.file(
            USER,
            [
                Submission(
                    "task",
                    {
                        "hazard_id": late,
                        "activity_type": "clearance",
                        "team_ids": [out.teams["manual3"]],
                        "planned_start": date(2022, 5, 2),
                    },
                    date(2022, 4, 20),
                )
            ],
        )
    except RuleViolation as refused:
        out.refused += [str(p) for p in refused.problems]
    open_hazards = out.hazards[-3:]
    register.file(
        USER,
        [
            Submission(
                "task",
                {
                    "hazard_id": h,
                    "activity_type": "clearance",
                    "team_ids": [out.teams["manual1"]],
                    "machine_ids": [],
                    "planned_start": date(2022, 5, 2 + i),
                    "priority": 1 + i % 3,
                    "organisation_id": army,
                },
                date(2022, 4, 20),
            )
            for i, h in enumerate(open_hazards)
        ],
    )


def _one_activity(
    register: Register,
    hazard_id: str,
    activity_type: str,
    outcome: str,
    on: date,
    org: str,
    land: list[tuple[str, BaseGeometry, str, str | None]],
    team: str,
    items: int = 0,
    rng: np.random.Generator | None = None,
) -> None:
    processed = [
        {
            "land_type": t,
            "geometry": g.wkt,
            "method": m,
            "asset": a,
            "depth_cm": 25.0 if t == "cleared" else None,
        }
        for t, g, m, a in land
        if not g.is_empty
    ]
    record = {
        "hazard_id": hazard_id,
        "activity_type": activity_type,
        "outcome": outcome,
        "organisation_id": org,
        "team_ids": [team],
        "start_date": on - timedelta(days=10),
        "end_date": on,
        "processed": processed,
    }
    if items:
        record["evidence_found"] = ["item_found"]
    activity_id = _file(register, [Submission("activity", record, on)])[0]
    if items and rng is not None:
        area = land[0][1]
        minx, miny, maxx, maxy = area.bounds
        found = []
        for _ in range(items):
            point = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if not area.contains(point):
                point = area.representative_point()
            category, model = [
                ("ap_mine", "PMN-2"),
                ("at_mine", "TM-62M"),
                ("uxo", "122 mm rocket"),
            ][int(rng.integers(0, 3))]
            found.append(
                Submission(
                    "eo_item",
                    {
                        "category": category,
                        "model": model,
                        "hazard_id": hazard_id,
                        "activity_id": activity_id,
                        "geometry": point.wkt,
                        "depth_cm": float(rng.integers(5, 25)),
                        "condition": "armed",
                        "disposal": "destroyed_in_situ",
                        "found_date": on,
                        "organisation_id": org,
                    },
                    on,
                )
            )
        _file(register, found)


def _accidents_and_education(register: Register, rng: np.random.Generator, out: Scenario) -> None:
    events = [
        (date(2020, 11, 22), "mine", "civilian", "killed", "farming"),
        (date(2020, 12, 5), "mine", "military", "injured", "patrol"),
        (date(2021, 1, 17), "uxo", "civilian", "injured", "scrap collecting"),
        (date(2021, 4, 9), "mine", "civilian", "killed", "herding"),
        (date(2021, 6, 30), "demining", "deminer", "injured", "manual clearance"),
        (date(2021, 9, 14), "mine", "civilian", "injured", "returning home"),
    ]
    accidents = []
    for i, (on, kind, _status, _outcome, doing) in enumerate(events):
        hazard = out.hazards[i * 5 % len(out.hazards)]
        with register.store.begin() as conn:
            table = record_tables["hazardous_area"]
            geom = conn.execute(
                select(table.c.geometry).where(table.c.record_id == hazard)
            ).scalar_one()
        accidents.append(
            Submission(
                "accident",
                {
                    "accident_type": kind,
                    "accident_date": on,
                    "geometry": geom.representative_point().wkt,
                    "hazard_id": hazard,
                    "device": "ap_mine" if kind != "uxo" else "uxo",
                    "activity_at_time": doing,
                    "description": SYNTHETIC,
                },
                on,
            )
        )
    accident_ids = _file(register, accidents)
    _file(
        register,
        [
            Submission(
                "victim",
                {
                    "accident_id": a,
                    "outcome": outcome,
                    "victim_status": status,
                    "sex": "male" if i % 3 else "female",
                    "age": int(rng.integers(16, 60)),
                    "activity": doing,
                    "name": f"Synthetic Person {i + 1}",
                    "phone": f"+994 00 000 00 {i:02d}",
                },
                on,
            )
            for i, (a, (on, _, status, outcome, doing)) in enumerate(
                zip(accident_ids, events, strict=True)
            )
        ],
    )
    _file(
        register,
        [
            Submission(
                "eore_session",
                {
                    "session_date": date(2021, 5, 1) + timedelta(days=20 * i),
                    "organisation_id": out.organisations["ngo"],
                    "place_name": f"Synthetic village {i + 1}",
                    "method": "group_session" if i % 2 else "house_to_house",
                    "audience": ["returnees", "children"] if i % 2 else ["farmers"],
                    "geometry": NOTIONAL_LINE.interpolate(0.1 * i, normalized=True).wkt,
                    "beneficiaries": {
                        "female_5_12": int(rng.integers(5, 40)),
                        "male_5_12": int(rng.integers(5, 40)),
                        "female_18_plus": int(rng.integers(5, 60)),
                        "male_18_plus": int(rng.integers(5, 60)),
                    },
                },
                date(2021, 5, 1) + timedelta(days=20 * i),
            )
            for i in range(10)
        ],
    )
    _one(
        register,
        "qm_visit",
        date(2021, 10, 5),
        visit_type="qa",
        visit_date=date(2021, 10, 5),
        team_id=out.teams["manual1"],
        organisation_id=out.organisations["army"],
        non_conformities=[
            {
                "kind": "marking of cleared lanes",
                "severity": "minor",
                "corrective_action": "re-mark lanes before work resumes",
            }
        ],
    )
