"""The current view of a hazardous area: its own reports, interleaved with the approved
activities and evidence that concern it, in date-of-information order.

Status and classification move as the primer says: Open → Worked on at the first TS or clearance
progress, Closed at a completion or handover report or when nothing remains; SHA → CHA on
direct evidence (an item found, an accident at a known place, direct evidence reported by an
activity). Each change keeps its date, its reason and what caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from safeground.domain.codes import (
    DIRECT_EVIDENCE,
    WORK_ACTIVITIES,
    Classification,
    HazardStatus,
    Outcome,
)
from safeground.domain.errors import Problem
from safeground.domain.geometry import geodesic_areas
from safeground.domain.ledger import Account, Balance, Credit, ProcessedPiece, account
from safeground.domain.records import Activity, HazardousArea
from safeground.domain.reports import (
    Operation,
    Report,
    ReportStatus,
    apply_report,
    approved_in_order,
    build_record,
)
from safeground.domain.rules import status_change_problem

# Less than this left (m²) counts as nothing remaining: float noise, not land.
NOTHING_REMAINS_M2 = 1.0


@dataclass(frozen=True)
class ApprovedActivity:
    activity_id: str
    record: Activity
    order_key: tuple[date, int]


@dataclass(frozen=True)
class EvidenceEvent:
    """An item found or an accident at a known place inside the area: direct evidence."""

    source_id: str
    description: str
    order_key: tuple[date, int]


@dataclass(frozen=True)
class Change:
    on: date
    attribute: str  # "status" or "classification"
    old: str | None
    new: str
    reason: str
    cause: str  # the report number or record ID that caused it


@dataclass
class HazardView:
    hazard_id: str
    record: HazardousArea | None
    balance: Balance
    credits: list[Credit]
    changes: list[Change] = field(default_factory=list)
    # Each problem with its cause (a report number or record ID), so that an approval can refuse
    # exactly the problems it would introduce.
    problems: list[tuple[str, Problem]] = field(default_factory=list)
    # What the view was projected from, for whoever stores it.
    reports: list[Report] = field(default_factory=list)
    activities: dict[str, ApprovedActivity] = field(default_factory=dict)

    @property
    def status_date(self) -> date | None:
        dates = [c.on for c in self.changes if c.attribute == "status"]
        return dates[-1] if dates else None


def project_hazard(
    hazard_id: str,
    reports: list[Report],
    activities: list[ApprovedActivity],
    evidence: list[EvidenceEvent],
) -> HazardView:
    """Rebuild a hazardous area from everything approved that concerns it."""
    timeline: list[tuple[tuple[date, int], int, Any]] = []
    timeline += [(r.order_key, 0, r) for r in approved_in_order(reports)]
    timeline += [(a.order_key, 1, a) for a in activities]
    timeline += [(e.order_key, 2, e) for e in evidence]
    timeline.sort(key=lambda item: (item[0], item[1]))

    state: dict[str, Any] | None = None
    changes: list[Change] = []
    problems: list[tuple[str, Problem]] = []
    pieces: list[ProcessedPiece] = []
    early: list[EvidenceEvent] = []
    running: Account | None = None  # the ledger as work goes on, to see when nothing remains

    def move(attribute: str, new: str, on: date, reason: str, cause: str) -> None:
        assert state is not None
        old = state.get(attribute)
        if old == new:
            return
        state[attribute] = new
        if attribute == "status":
            state["status_reason"] = reason
        changes.append(Change(on, attribute, old, new, reason, cause))

    for (on, _), _, item in timeline:
        if isinstance(item, Report):
            before = state
            state = apply_report(state, item)
            if state is None:
                continue
            cause = f"report {item.report_id}"
            old_status = HazardStatus((before or {}).get("status", HazardStatus.OPEN))
            new_status = HazardStatus(state.get("status", HazardStatus.OPEN))
            if before is None:
                changes.append(
                    Change(
                        on,
                        "status",
                        None,
                        new_status,
                        state.get("status_reason") or "recorded",
                        cause,
                    )
                )
                changes.append(
                    Change(
                        on,
                        "classification",
                        None,
                        state.get("classification", "sha"),
                        "recorded",
                        cause,
                    )
                )
            elif new_status != old_status:
                problem = status_change_problem(old_status, new_status)
                if problem:
                    problems.append((cause, Problem("status", problem, hazard_id)))
                if "status_reason" not in item.changes:
                    problems.append(
                        (
                            cause,
                            Problem("status_reason", "a status change needs a reason", hazard_id),
                        )
                    )
                changes.append(
                    Change(
                        on,
                        "status",
                        old_status,
                        new_status,
                        state.get("status_reason") or "",
                        cause,
                    )
                )
            if before is not None and before.get("classification") != state.get("classification"):
                changes.append(
                    Change(
                        on,
                        "classification",
                        before.get("classification"),
                        state["classification"],
                        item.reason or "",
                        cause,
                    )
                )
            for event in early if before is None else []:
                _direct_evidence(
                    move, state, on, f"{event.description} on {event.order_key[0]}", event.source_id
                )
            continue
        if state is None and isinstance(item, EvidenceEvent):
            # An accident or a find often comes first and is why the area is recorded at all.
            early.append(item)
            continue
        if state is None:
            problems.append(
                (
                    _source(item),
                    Problem(
                        None,
                        f"{_source(item)} is dated {on}, before the area was recorded",
                        hazard_id,
                    ),
                )
            )
            continue
        if isinstance(item, EvidenceEvent):
            _direct_evidence(move, state, on, item.description, item.source_id)
            continue
        act = item.record
        if act.processed and state.get("geometry") is None:
            reason = f"hazardous area {hazard_id} has no polygon to release land from"
            problems.append((item.activity_id, Problem("processed", reason, item.activity_id)))
            continue
        pieces += [
            ProcessedPiece(item.activity_id, i, p.land_type, p.geometry)
            for i, p in enumerate(act.processed)
        ]
        direct = [e for e in act.evidence_found if e in DIRECT_EVIDENCE]
        if direct:
            _direct_evidence(
                move, state, on, f"{direct[0].label} reported by activity", item.activity_id
            )
        if act.outcome in (Outcome.COMPLETION, Outcome.HANDOVER):
            move(
                "status",
                HazardStatus.CLOSED,
                on,
                f"{act.activity_type.label} {act.outcome.label} report",
                item.activity_id,
            )
        elif act.activity_type in WORK_ACTIVITIES and state.get("status") == HazardStatus.OPEN:
            move(
                "status",
                HazardStatus.WORKED_ON,
                on,
                f"first {act.activity_type.label} progress report",
                item.activity_id,
            )
        if act.processed and state.get("status") != HazardStatus.CLOSED:
            geometry = _geometry(state)
            if running is None or not _same(running.hazard, geometry):
                running = Account(geometry, state.get("estimated_area_m2"))
                for piece in pieces[: -len(act.processed)]:
                    running.add(piece)
            for piece in pieces[-len(act.processed) :]:
                running.add(piece)
            if running.balance.remaining_m2 < NOTHING_REMAINS_M2:
                move(
                    "status",
                    HazardStatus.CLOSED,
                    on,
                    "nothing remains: all land released",
                    item.activity_id,
                )

    record = None if state is None else build_record("hazardous_area", state, hazard_id)
    assert record is None or isinstance(record, HazardousArea)
    geometry = record.geometry if record else None
    if (
        running is not None
        and _same(running.hazard, geometry)
        and len(running.credits) == len(pieces)
    ):
        balance, credits = running.balance, running.credits
    else:
        balance, credits = account(geometry, record.estimated_area_m2 if record else None, pieces)
    return HazardView(
        hazard_id,
        record,
        balance,
        credits,
        changes,
        problems,
        reports,
        {a.activity_id: a for a in activities},
    )


def project_created_hazards(created: list[tuple[Report, HazardousArea]]) -> list[HazardView]:
    """``project_hazard`` of many areas that each have one approved report, the create report
    that built the record given with it, and no activities or evidence: a bulk import's new
    areas.

    The same views, without replaying each report: the record is the create report's (a
    record's payload validates back into the same record), its first status and classification
    are the record's, and the polygons' areas are measured in one vectorised call.
    """
    areas = geodesic_areas([record.geometry for _, record in created])
    views = []
    for (rep, record), area in zip(created, areas.tolist(), strict=True):
        if rep.operation is not Operation.CREATE or rep.status is not ReportStatus.APPROVED:
            raise ValueError(f"report {rep.report_id} is not an approved create report")
        cause = f"report {rep.report_id}"
        on = rep.date_of_information
        changes = [
            Change(
                on,
                "status",
                None,
                HazardStatus(record.status),
                record.status_reason or "recorded",
                cause,
            ),
            Change(
                on,
                "classification",
                None,
                Classification(record.classification).value,
                "recorded",
                cause,
            ),
        ]
        estimated = (record.estimated_area_m2 or 0.0) if record.geometry is None else area
        views.append(
            HazardView(rep.record_id, record, Balance(estimated), [], changes, [], [rep], {})
        )
    return views


def _same(a: Any, b: Any) -> bool:
    return a is b or (a is not None and b is not None and a.equals_exact(b, 0))


def _geometry(state: dict[str, Any]) -> Any:
    from safeground.domain.geometry import parse_geometry

    value = state.get("geometry")
    return None if value is None else parse_geometry(value)


def _direct_evidence(move: Any, state: dict[str, Any], on: date, what: str, source: str) -> None:
    if state.get("classification") in (Classification.INDICATION, Classification.SHA, None):
        move("classification", Classification.CHA, on, f"direct evidence: {what}", source)


def _source(item: Any) -> str:
    return item.activity_id if isinstance(item, ApprovedActivity) else item.source_id
