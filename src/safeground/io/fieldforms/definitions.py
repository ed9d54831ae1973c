"""The field forms, each a list of record fields: questions are derived from the record models.

A question's XLSForm type, choices, constraint and required flag come from the pydantic model
field it fills (``domain/records.py``) and its enum (``domain/codes.py``), so that a new code in
the register appears in the next form generated, and the import validates against the same
model. A form only says which fields to ask, in which order, with which choices left out, and
what is fixed (an NTS form creates hazardous areas; a completion form's outcome is completion).
"""

from __future__ import annotations

import hashlib
import re
import typing
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from shapely.geometry.base import BaseGeometry

from safeground import __version__
from safeground.domain import codes as c
from safeground.domain.codes import Code
from safeground.domain.errors import NotFound
from safeground.domain.records import (
    BENEFICIARY_GROUPS,
    RECORD_TYPES,
    Accident,
    Activity,
    EoItem,
    EoreSession,
    HazardousArea,
    ProcessedLand,
    Record,
    Victim,
)
from safeground.storage.schema import unwrap

Kind = Literal[
    "text",
    "integer",
    "decimal",
    "date",
    "yes_no",
    "select_one",
    "select_multiple",
    "geopoint",
    "geoshape",
    "id_list",
    "beneficiary",
]

YES_NO = (("yes", "Yes"), ("no", "No"))
DATE_OF_INFORMATION = "date_of_information"
RECORD_ID = "record_id"


@dataclass(frozen=True)
class Question:
    """One XLSForm question and the model field it fills."""

    name: str  # XLSForm name, unique in the form
    field: str  # the model field (for a beneficiary count: the dict field)
    kind: Kind
    label: str
    required: bool = False
    list_name: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    constraint: str | None = None
    constraint_message: str | None = None
    relevant: str | None = None
    hint: str | None = None
    default: str | None = None
    group_key: str | None = None  # a beneficiary count's key in the dict, e.g. female_0_4

    @property
    def xls_type(self) -> str:
        if self.kind in ("select_one", "select_multiple"):
            return f"{self.kind} {self.list_name}"
        if self.kind == "yes_no":
            return f"select_one {self.list_name}"
        if self.kind in ("id_list", "beneficiary"):
            return "text" if self.kind == "id_list" else "integer"
        return self.kind


@dataclass(frozen=True)
class Repeat:
    """A repeat group: land processed by an activity, items found, victims of an accident.

    ``into``: the entries fill a list field of the main record (``Activity.processed``).
    ``link``: each entry is a record of its own whose ``link`` field names the main record.
    ``each``: each entry is a record of its own that takes the form's top-level answers too.
    """

    name: str
    label: str
    model: type[BaseModel]
    questions: tuple[Question, ...]
    mode: Literal["into", "link", "each"]
    target: str | None = None  # the list field (into) or the linking field (link)
    min_count: int = 0

    @property
    def record_type(self) -> str:
        """The type of record each entry becomes (``link`` and ``each`` repeats)."""
        return str(getattr(self.model, "record_type", ""))

    @property
    def count_name(self) -> str:
        """A calculated question holding the number of entries, checked on import."""
        return f"{self.name}_count"


@dataclass(frozen=True)
class FieldForm:
    name: str
    title: str
    record_type: str  # of the top-level answers (and of each entry for an ``each`` repeat)
    questions: tuple[Question, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    repeats: tuple[Repeat, ...] = ()
    updates: bool = False  # may name an existing record to update instead of creating one
    creates_main: bool = True  # False when only the repeat's entries become records

    @property
    def form_id(self) -> str:
        return f"safeground_{self.name}"

    @property
    def model(self) -> type[Record]:
        return RECORD_TYPES[self.record_type]

    @property
    def version(self) -> str:
        """Changes whenever the generated form would (a new code, a new question)."""
        digest = hashlib.sha256(repr((self, __version__)).encode()).hexdigest()
        return f"{__version__}-{digest[:8]}"

    def all_questions(self) -> list[Question]:
        return [*self.questions, *(q for r in self.repeats for q in r.questions)]

    def repeat(self, name: str) -> Repeat:
        return next(r for r in self.repeats if r.name == name)


# -- deriving questions from the models ---------------------------------------------------------

LABELS = {
    "name": "Name of the area",
    "admin_area_id": "Administrative area ID",
    "organisation_id": "Organisation ID",
    "hazard_id": "Hazardous area ID",
    "activity_id": "Activity ID",
    "task_id": "Task ID",
    "team_ids": "Team IDs",
    "dog_ids": "Dog IDs",
    "machine_ids": "Machine IDs",
    "reliability": "Reliability of the information (1 = highest, 6 = lowest)",
    "source_reliability": "Reliability of the source (A = reliable ... F = cannot be judged)",
    "confirmed": "Hazard confirmed",
    "ordnance_classification": "Ordnance classification (M1-M4)",
    "geometry": "Polygon (walk or draw the boundary)",
    "reference_point": "Reference point",
    "benchmark": "Benchmark",
    "estimated_area_m2": "Estimated area (m²), only when no polygon can be drawn",
    "expected_returnees": "Expected returnees",
    "clearance_depth_cm": "Clearance depth (cm)",
    "depth_cm": "Depth (cm)",
    "evidence_found": "Evidence found",
    "land_type": "How the land was released",
    "technical_asset": "Released by a technical asset",
    "location_known": "Location known",
    "device": "Device",
    "quantity": "Quantity",
}


def _id_hint(record_type: str) -> str:
    return f"Register ID such as AZ-{RECORD_TYPES[record_type].id_code}-2021-00042"


def _label(name: str) -> str:
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """(is a list, inner type) without ``| None`` and ``Annotated``."""
    kind = unwrap(annotation)
    is_list = typing.get_origin(kind) is list
    if is_list:
        kind = unwrap(typing.get_args(kind)[0])
    return is_list, typing.get_origin(kind) or kind


def _bounds(model: type[BaseModel], name: str) -> str | None:
    parts = []
    for meta in model.model_fields[name].metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(meta, getattr(annotated_types, attr.capitalize())):
                parts.append(f". {op} {getattr(meta, attr)}")
    return " and ".join(parts) or None


def _reference_target(model: type[BaseModel], name: str) -> str | None:
    """The record type a field names, if it names one."""
    references: dict[str, str] = getattr(model, "references", {})
    return references.get(name)


def _reference_pattern(model: type[BaseModel], name: str) -> str | None:
    """An XLSForm regex for a field naming one record: the target type's ID code."""
    target = _reference_target(model, name)
    return None if target is None else _reference_pattern_for(target)


def _reference_pattern_for(record_type: str) -> str:
    code = RECORD_TYPES[record_type].id_code
    return rf"regex(., '^[A-Z]{{2,3}}-{code}-[0-9]{{4}}-[0-9]{{5,}}$')"


def _list_name(enum: type[Enum]) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.__name__).lower()


def ask(
    model: type[BaseModel],
    name: str,
    *,
    prefix: str = "",
    only: tuple[Code, ...] | None = None,
    required: bool | None = None,
    label: str | None = None,
    relevant: str | None = None,
    hint: str | None = None,
) -> list[Question]:
    """The question(s) for one model field; ``only`` keeps some of the enum's choices."""
    info = model.model_fields[name]
    is_list, inner = _unwrap(info.annotation)
    common: dict[str, Any] = {
        "field": name,
        "label": label or _label(name),
        "required": info.is_required() if required is None else required,
        "relevant": relevant,
        "hint": hint,
    }
    qname = f"{prefix}{name}"
    if name == "beneficiaries":
        return [
            Question(
                name=f"{qname}_{group}",
                field=name,
                kind="beneficiary",
                label=group.replace("_plus", "+")
                .replace("_", ", ", 1)
                .replace("_", "-")
                .capitalize()
                + " years",
                constraint=". >= 0",
                constraint_message="a count cannot be negative",
                group_key=group,
            )
            for group in BENEFICIARY_GROUPS
        ]
    if isinstance(inner, type) and issubclass(inner, Code):
        members = only or tuple(inner)
        list_name = _list_name(inner) if only is None else f"{qname}_choices"
        return [
            Question(
                name=qname,
                kind="select_multiple" if is_list else "select_one",
                list_name=list_name,
                choices=tuple((m.value, m.label) for m in members),
                **common,
            )
        ]
    if is_list:  # lists of record IDs
        common["hint"] = hint or "IDs separated by spaces"
        return [Question(name=qname, kind="id_list", **common)]
    if isinstance(inner, type) and issubclass(inner, BaseGeometry):
        polygon = "Polygon" in getattr(model, "geometry_types", ()) and name == "geometry"
        kind: Kind = "geoshape" if polygon or model is ProcessedLand else "geopoint"
        return [Question(name=qname, kind=kind, **common)]
    if inner is bool:
        return [Question(name=qname, kind="yes_no", list_name="yes_no", choices=YES_NO, **common)]
    if inner is date:
        return [Question(name=qname, kind="date", **common)]
    if inner in (int, float):
        bounds = _bounds(model, name)
        return [
            Question(
                name=qname,
                kind="integer" if inner is int else "decimal",
                constraint=bounds,
                constraint_message=bounds and f"must be {bounds.replace('. ', '')}",
                **common,
            )
        ]
    pattern = _reference_pattern(model, name)
    return [
        Question(
            name=qname,
            kind="text",
            constraint=pattern,
            constraint_message=pattern and "not a register ID of the right type",
            **{
                **common,
                "hint": hint or (pattern and _id_hint(str(_reference_target(model, name)))),
            },
        )
    ]


def _questions(
    model: type[BaseModel], *names: str, prefix: str = "", **special: Any
) -> list[Question]:
    """Questions for several fields; ``special`` gives ``ask`` options per field name."""
    found: list[Question] = []
    for name in names:
        found += ask(model, name, prefix=prefix, **special.get(name, {}))
    return found


def _date_of_information(label: str = "Date of information") -> Question:
    return Question(
        name=DATE_OF_INFORMATION,
        field=DATE_OF_INFORMATION,
        kind="date",
        label=label,
        required=True,
        default="today()",
        constraint=". <= today()",
        constraint_message="cannot be in the future",
    )


def _record_id(model: type[Record], what: str) -> Question:
    """The ID of an existing record to update; empty for a new one."""
    pattern = _reference_pattern_for(model.record_type)
    return Question(
        name=RECORD_ID,
        field=RECORD_ID,
        kind="text",
        label=f"ID of the {what} to update (leave empty to record a new one)",
        hint=_id_hint(model.record_type),
        constraint=pattern,
        constraint_message="not a register ID of the right type",
    )


def _processed(land_types: tuple[c.LandType, ...]) -> Repeat:
    return Repeat(
        name="processed",
        label="Processed land (one polygon each)",
        model=ProcessedLand,
        questions=tuple(
            _questions(
                ProcessedLand,
                "land_type",
                "geometry",
                "method",
                "asset",
                "technical_asset",
                "depth_cm",
                prefix="processed_",
                land_type={"only": land_types},
                geometry={"label": "Processed polygon"},
                asset={"hint": "Team, dog or machine ID that released it"},
            )
        ),
        mode="into",
        target="processed",
    )


_ACTIVITY_COMMON = (
    "hazard_id",
    "organisation_id",
    "task_id",
    "team_ids",
    "dog_ids",
    "machine_ids",
    "start_date",
    "end_date",
)
_HAZARD_REQUIRED: dict[str, Any] = {"hazard_id": {"required": True}}
_LAND = (c.LandType.CANCELLED, c.LandType.REDUCED, c.LandType.CLEARED)
_CLEARANCE_TYPES = (c.ActivityType.CLEARANCE, c.ActivityType.BAC, c.ActivityType.ROAD_CLEARANCE)


def _clearance_form(
    name: str, title: str, outcome: c.Outcome, land_types: tuple[c.LandType, ...]
) -> FieldForm:
    """Clearance progress and completion ask the same; completion may also cancel land."""
    return FieldForm(
        name=name,
        title=title,
        record_type="activity",
        fixed={"outcome": outcome.value},
        questions=(
            _date_of_information(),
            *_questions(
                Activity,
                "activity_type",
                *_ACTIVITY_COMMON,
                "clearance_depth_cm",
                "evidence_found",
                "notes",
                activity_type={"only": _CLEARANCE_TYPES},
                **_HAZARD_REQUIRED,
            ),
        ),
        repeats=(_processed(land_types),),
    )


FORMS: dict[str, FieldForm] = {
    form.name: form
    for form in (
        FieldForm(
            name="nts",
            title="Non-technical survey: suspected or confirmed hazardous area",
            record_type="hazardous_area",
            updates=True,
            questions=(
                _date_of_information(),
                _record_id(HazardousArea, "hazardous area"),
                *_questions(
                    HazardousArea,
                    "name",
                    "classification",
                    "admin_area_id",
                    "organisation_id",
                    "evidence",
                    "reliability",
                    "source_reliability",
                    "confirmed",
                    "contamination",
                    "ordnance_classification",
                    "geometry",
                    "reference_point",
                    "benchmark",
                    "estimated_area_m2",
                    "blockages",
                    "beneficiaries",
                    "expected_returnees",
                    "description",
                    classification={
                        "only": (
                            c.Classification.INDICATION,
                            c.Classification.SHA,
                            c.Classification.CHA,
                        ),
                        "required": True,
                    },
                    estimated_area_m2={"relevant": "${geometry} = ''"},
                ),
            ),
        ),
        FieldForm(
            name="ts",
            title="Technical survey",
            record_type="activity",
            fixed={"activity_type": c.ActivityType.TS.value},
            questions=(
                _date_of_information(),
                *_questions(
                    Activity,
                    *_ACTIVITY_COMMON,
                    "outcome",
                    "evidence_found",
                    "notes",
                    outcome={"only": (c.Outcome.PROGRESS, c.Outcome.COMPLETION), "required": True},
                    **_HAZARD_REQUIRED,
                ),
            ),
            repeats=(_processed((c.LandType.REDUCED, c.LandType.CLEARED)),),
        ),
        _clearance_form(
            "clearance_progress",
            "Clearance progress",
            c.Outcome.PROGRESS,
            (c.LandType.REDUCED, c.LandType.CLEARED),
        ),
        _clearance_form(
            "clearance_completion", "Clearance completion", c.Outcome.COMPLETION, _LAND
        ),
        FieldForm(
            name="items_found",
            title="Explosive ordnance items found",
            record_type="eo_item",
            creates_main=False,
            questions=(
                _date_of_information(),
                *_questions(
                    EoItem,
                    "found_date",
                    "hazard_id",
                    "activity_id",
                    "organisation_id",
                    "admin_area_id",
                    "place_name",
                ),
            ),
            repeats=(
                Repeat(
                    name="items",
                    label="Items (one entry per kind of item and place)",
                    model=EoItem,
                    questions=tuple(
                        _questions(
                            EoItem,
                            "category",
                            "model",
                            "quantity",
                            "geometry",
                            "depth_cm",
                            "condition",
                            "disposal",
                            "notes",
                            prefix="item_",
                            geometry={"label": "Where it was found"},
                        )
                    ),
                    mode="each",
                    min_count=1,
                ),
            ),
        ),
        FieldForm(
            name="accident",
            title="Accident",
            record_type="accident",
            questions=(
                _date_of_information(),
                *_questions(
                    Accident,
                    "accident_type",
                    "accident_date",
                    "geometry",
                    "location_known",
                    "hazard_id",
                    "admin_area_id",
                    "place_name",
                    "device",
                    "trigger",
                    "activity_at_time",
                    "area_type",
                    "description",
                    geometry={"label": "Where the accident happened"},
                ),
            ),
            repeats=(
                Repeat(
                    name="victims",
                    label="Victims",
                    model=Victim,
                    questions=tuple(
                        _questions(
                            Victim,
                            "outcome",
                            "sex",
                            "age",
                            "victim_status",
                            "activity",
                            "injuries",
                            "follow_up_needs",
                            "name",
                            prefix="victim_",
                            activity={"label": "Activity at the time"},
                            name={
                                "label": "Name",
                                "hint": "Personal data: kept apart and shown only to "
                                "authorised roles",
                            },
                        )
                    ),
                    mode="link",
                    target="accident_id",
                ),
            ),
        ),
        FieldForm(
            name="eore",
            title="Explosive ordnance risk education session",
            record_type="eore_session",
            questions=(
                _date_of_information(),
                *_questions(
                    EoreSession,
                    "session_date",
                    "organisation_id",
                    "place_name",
                    "admin_area_id",
                    "geometry",
                    "method",
                    "audience",
                    "beneficiaries",
                    "materials",
                    geometry={"label": "Where the session took place"},
                ),
            ),
        ),
    )
}


def form_for(record_type: str, changes: dict[str, Any]) -> FieldForm | None:
    """The form a draft was written in, to reopen it there: its record type and fixed answers
    match, and it offers every choice the draft made; for a record written as an entry of
    another's form (a victim), that form, which reopens it with its accident. None for a report
    no form asks for."""
    for form in FORMS.values():
        if form.record_type == record_type and _asks_for(form, changes):
            return form
    for form in FORMS.values():
        if any(r.mode == "link" and r.record_type == record_type for r in form.repeats):
            return form
    return None


def _asks_for(form: FieldForm, changes: dict[str, Any]) -> bool:
    if any(changes.get(name) != value for name, value in form.fixed.items()):
        return False
    own = [*form.questions, *(q for r in form.repeats if r.mode == "each" for q in r.questions)]
    return all(
        changes.get(q.field) in (None, *(value for value, _ in q.choices))
        for q in own
        if q.kind == "select_one"
    )


def get_form(name: str) -> FieldForm:
    """A field form by name; the error lists the forms there are."""
    try:
        return FORMS[name]
    except KeyError:
        raise NotFound(f"no field form {name!r}; forms: {', '.join(FORMS)}") from None
