"""The record types of the register, one pydantic model each.

A model is the single definition of a record's fields: the storage layer derives its table and
GeoPackage layer from it, imports and the API validate against it, and exports name its fields.
Derived values (remaining area, status dates) are not fields: the ledger computes them.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, ClassVar

import numpy as np
import shapely
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from shapely.geometry.base import BaseGeometry

from safeground.domain import codes as c
from safeground.domain.errors import Problem, ValidationFailed
from safeground.domain.geometry import geometry_problems, parse_geometry

Geometry = Annotated[
    BaseGeometry,
    BeforeValidator(parse_geometry),
    PlainSerializer(lambda g: g.wkb_hex, return_type=str),
    WithJsonSchema({"type": "string", "description": "WKT, hex WKB or GeoJSON, EPSG:4326"}),
]

AGE_GROUPS = ("0_4", "5_12", "13_17", "18_plus")
SEXES = ("female", "male")
BENEFICIARY_GROUPS = tuple(f"{s}_{a}" for s in SEXES for a in AGE_GROUPS)


def _check_groups(value: dict[str, int]) -> dict[str, int]:
    for key, count in value.items():
        if key not in BENEFICIARY_GROUPS:
            raise ValueError(
                f"unknown group {key!r}; expected one of {', '.join(BENEFICIARY_GROUPS)}"
            )
        if count < 0:
            raise ValueError(f"{key}: a count cannot be negative")
    return value


Beneficiaries = Annotated[dict[str, int], BeforeValidator(lambda v: v or {})]


class Record(BaseModel):
    """Common behaviour: strict fields, geometry checks, a type name and an ID code."""

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        validate_default=False,
        frozen=True,
        allow_inf_nan=False,
    )

    record_type: ClassVar[str]
    id_code: ClassVar[str]
    # Allowed types of the primary ``geometry`` field, if the record has one.
    geometry_types: ClassVar[tuple[str, ...]] = ()
    geometry_required: ClassVar[bool] = False
    # Fields that are personal data: stored apart, masked, exported only on request.
    personal_fields: ClassVar[tuple[str, ...]] = ()
    # Fields naming other records, with the record type they must name.
    references: ClassVar[dict[str, str]] = {}
    # Fields naming a record of any type (a link's ends, an attachment's target).
    names_any: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _check_geometries(self) -> Record:
        for name in _geometry_fields(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            expected = self.geometry_types if name == "geometry" else ("Point",)
            problems = geometry_problems(value, expected)
            if problems:
                raise ValueError(f"{name}: {'; '.join(problems)}")
        if self.geometry_required and getattr(self, "geometry", None) is None:
            raise ValueError("geometry: required")
        return self


class Organisation(Record):
    record_type = "organisation"
    id_code = "ORG"
    name: str = Field(min_length=1)
    acronym: str | None = None
    organisation_type: c.OrganisationType = c.OrganisationType.OTHER
    country: str | None = None
    parent_id: str | None = None
    references = {"parent_id": "organisation"}


class AdminArea(Record):
    """A district, province or municipality of the gazetteer."""

    record_type = "admin_area"
    id_code = "ADM"
    geometry_types = ("Polygon", "MultiPolygon")
    name: str = Field(min_length=1)
    level: int = Field(ge=0, le=5)
    code: str | None = None
    parent_id: str | None = None
    # Alternative spellings by language tag, e.g. {"az": [...], "ru": [...], "hy": [...]}.
    alternate_names: dict[str, list[str]] = Field(default_factory=dict)
    geometry: Geometry | None = None
    references = {"parent_id": "admin_area"}


class Place(Record):
    """A settlement of the gazetteer, with its spellings in several languages."""

    record_type = "place"
    id_code = "PLC"
    geometry_types = ("Point",)
    geometry_required = True
    name: str = Field(min_length=1)
    alternate_names: list[str] = Field(default_factory=list)
    population: int | None = Field(default=None, ge=0)
    admin_area_id: str | None = None
    admin_name: str | None = None
    geometry: Geometry | None = None
    references = {"admin_area_id": "admin_area"}


class HazardousArea(Record):
    record_type = "hazardous_area"
    id_code = "HA"
    geometry_types = ("Polygon", "MultiPolygon")
    name: str | None = None
    classification: c.Classification = c.Classification.SHA
    status: c.HazardStatus = c.HazardStatus.OPEN
    status_reason: str | None = None
    admin_area_id: str | None = None
    organisation_id: str | None = None
    evidence: list[c.Evidence] = Field(default_factory=list)
    reliability: int | None = Field(default=None, ge=1, le=6)
    source_reliability: c.SourceReliability | None = None
    confirmed: c.Confirmed = c.Confirmed.UNKNOWN
    contamination: list[c.Contamination] = Field(default_factory=list)
    ordnance_classification: c.OrdnanceClassification | None = None
    geometry: Geometry | None = None
    benchmark: Geometry | None = None
    reference_point: Geometry | None = None
    # Only for areas with no polygon yet (an indication); otherwise measured from the polygon.
    estimated_area_m2: float | None = Field(default=None, ge=0)
    blockages: list[c.Blockage] = Field(default_factory=list)
    beneficiaries: Beneficiaries = Field(default_factory=dict)
    expected_returnees: int | None = Field(default=None, ge=0)
    description: str | None = None
    references = {"admin_area_id": "admin_area", "organisation_id": "organisation"}

    _groups = field_validator("beneficiaries")(_check_groups)

    @model_validator(mode="after")
    def _estimated_or_polygon(self) -> HazardousArea:
        if self.geometry is not None and self.estimated_area_m2 is not None:
            raise ValueError(
                "estimated_area_m2: measured from the polygon; give it only for an area "
                "that has no polygon yet"
            )
        return self


class ProcessedLand(BaseModel):
    """One processed polygon of an activity: land cancelled, reduced or cleared."""

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=True, allow_inf_nan=False
    )
    land_type: c.LandType
    geometry: Geometry
    method: c.ReleaseMethod | None = None
    asset: str | None = None
    technical_asset: bool | None = None
    depth_cm: float | None = Field(default=None, ge=0, le=500)

    @field_validator("geometry")
    @classmethod
    def _polygon(cls, value: BaseGeometry) -> BaseGeometry:
        problems = geometry_problems(value, ("Polygon", "MultiPolygon"))
        if problems:
            raise ValueError("; ".join(problems))
        return value


class Activity(Record):
    """A land release activity report (progress, completion, cancellation, handover)."""

    record_type = "activity"
    id_code = "ACT"
    hazard_id: str | None = None
    activity_type: c.ActivityType
    outcome: c.Outcome = c.Outcome.PROGRESS
    organisation_id: str | None = None
    task_id: str | None = None
    team_ids: list[str] = Field(default_factory=list)
    dog_ids: list[str] = Field(default_factory=list)
    machine_ids: list[str] = Field(default_factory=list)
    start_date: date | None = None
    end_date: date | None = None
    clearance_depth_cm: float | None = Field(default=None, ge=0, le=500)
    processed: list[ProcessedLand] = Field(default_factory=list)
    evidence_found: list[c.Evidence] = Field(default_factory=list)
    notes: str | None = None
    references = {
        "hazard_id": "hazardous_area",
        "organisation_id": "organisation",
        "task_id": "task",
        "team_ids": "team",
        "dog_ids": "dog",
        "machine_ids": "machine",
    }

    @model_validator(mode="after")
    def _dates(self) -> Activity:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date: before start_date")
        if self.processed and not self.hazard_id:
            raise ValueError("hazard_id: processed land needs the hazardous area it belongs to")
        return self


class EoItem(Record):
    """An explosive ordnance item found, and how it was disposed of."""

    record_type = "eo_item"
    id_code = "EO"
    geometry_types = ("Point",)
    category: c.ItemCategory
    model: str | None = None
    quantity: int = Field(default=1, ge=1)
    found_date: date | None = None
    date_precision: c.DatePrecision = c.DatePrecision.DAY
    hazard_id: str | None = None
    activity_id: str | None = None
    organisation_id: str | None = None
    geometry: Geometry | None = None
    depth_cm: float | None = Field(default=None, ge=0, le=1000)
    condition: c.ItemCondition = c.ItemCondition.UNKNOWN
    disposal: c.Disposal = c.Disposal.UNKNOWN
    place_name: str | None = None
    admin_area_id: str | None = None
    notes: str | None = None
    references = {
        "hazard_id": "hazardous_area",
        "activity_id": "activity",
        "organisation_id": "organisation",
        "admin_area_id": "admin_area",
    }


class Accident(Record):
    record_type = "accident"
    id_code = "ACC"
    geometry_types = ("Point",)
    accident_type: c.AccidentType
    accident_date: date | None = None
    date_precision: c.DatePrecision = c.DatePrecision.DAY
    geometry: Geometry | None = None
    location_known: bool = True
    hazard_id: str | None = None
    admin_area_id: str | None = None
    place_name: str | None = None
    device: c.ItemCategory | None = None
    trigger: str | None = None
    activity_at_time: str | None = None
    area_type: str | None = None
    description: str | None = None
    references = {"hazard_id": "hazardous_area", "admin_area_id": "admin_area"}


class Victim(Record):
    record_type = "victim"
    id_code = "VIC"
    personal_fields = ("name", "phone", "address")
    accident_id: str
    outcome: c.VictimOutcome
    sex: c.Sex = c.Sex.UNKNOWN
    age: int | None = Field(default=None, ge=0, le=120)
    victim_status: c.VictimStatus = c.VictimStatus.UNKNOWN
    activity: str | None = None
    injuries: str | None = None
    follow_up_needs: str | None = None
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    references = {"accident_id": "accident"}


class EoreSession(Record):
    """An explosive ordnance risk education session and who it reached."""

    record_type = "eore_session"
    id_code = "EORE"
    geometry_types = ("Point",)
    session_date: date
    organisation_id: str | None = None
    place_name: str | None = None
    admin_area_id: str | None = None
    geometry: Geometry | None = None
    method: c.EoreMethod = c.EoreMethod.GROUP_SESSION
    audience: list[c.Audience] = Field(default_factory=list)
    beneficiaries: Beneficiaries = Field(default_factory=dict)
    materials: str | None = None
    references = {"organisation_id": "organisation", "admin_area_id": "admin_area"}

    _groups = field_validator("beneficiaries")(_check_groups)


class Team(Record):
    record_type = "team"
    id_code = "TM"
    name: str = Field(min_length=1)
    organisation_id: str
    team_type: c.TeamType
    references = {"organisation_id": "organisation"}


class Person(Record):
    """A deminer, team leader, dog handler or surveyor (operational staff, not a victim)."""

    record_type = "person"
    id_code = "PER"
    name: str = Field(min_length=1)
    organisation_id: str | None = None
    team_id: str | None = None
    role: str | None = None
    references = {"organisation_id": "organisation", "team_id": "team"}


class Dog(Record):
    record_type = "dog"
    id_code = "DOG"
    name: str = Field(min_length=1)
    organisation_id: str | None = None
    team_id: str | None = None
    handler_id: str | None = None
    birth_date: date | None = None
    references = {"organisation_id": "organisation", "team_id": "team", "handler_id": "person"}


class Machine(Record):
    record_type = "machine"
    id_code = "MCH"
    name: str = Field(min_length=1)
    model: str | None = None
    serial_number: str | None = None
    organisation_id: str | None = None
    team_id: str | None = None
    references = {"organisation_id": "organisation", "team_id": "team"}


class TrainingCourse(Record):
    record_type = "training_course"
    id_code = "TC"
    name: str = Field(min_length=1)
    provider_id: str | None = None
    place_name: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    participants: int | None = Field(default=None, ge=0)
    references = {"provider_id": "organisation"}


class Certification(Record):
    record_type = "certification"
    id_code = "CRT"
    person_id: str
    course_id: str | None = None
    qualification: str = Field(min_length=1)
    issued: date
    expires: date | None = None
    references = {"person_id": "person", "course_id": "training_course"}


class Accreditation(Record):
    record_type = "accreditation"
    id_code = "ACR"
    subject_type: c.AccreditationSubject
    subject_id: str
    activity_types: list[c.ActivityType] = Field(default_factory=list)
    issued: date
    expires: date | None = None
    suspended: bool = False
    notes: str | None = None

    @model_validator(mode="after")
    def _expiry_after_issue(self) -> Accreditation:
        if self.expires and self.expires < self.issued:
            raise ValueError("expires: before issued")
        return self


class NonConformity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    kind: str = Field(min_length=1)
    severity: c.Severity
    corrective_action: str | None = None
    suspension: bool = False


class QmVisit(Record):
    """A quality assurance visit or quality control inspection."""

    record_type = "qm_visit"
    id_code = "QM"
    visit_type: c.QmType
    visit_date: date
    organisation_id: str | None = None
    team_id: str | None = None
    hazard_id: str | None = None
    activity_id: str | None = None
    sampled_area_m2: float | None = Field(default=None, ge=0)
    non_conformities: list[NonConformity] = Field(default_factory=list)
    result: str | None = None
    references = {
        "organisation_id": "organisation",
        "team_id": "team",
        "hazard_id": "hazardous_area",
        "activity_id": "activity",
    }


class Task(Record):
    """Planned work on a hazardous area, with the assets to deploy."""

    record_type = "task"
    id_code = "TSK"
    geometry_types = ("Polygon", "MultiPolygon")
    hazard_id: str
    activity_type: c.ActivityType
    organisation_id: str | None = None
    team_ids: list[str] = Field(default_factory=list)
    dog_ids: list[str] = Field(default_factory=list)
    machine_ids: list[str] = Field(default_factory=list)
    planned_start: date | None = None
    planned_end: date | None = None
    priority: int | None = Field(default=None, ge=1, le=5)
    status: c.TaskStatus = c.TaskStatus.PLANNED
    geometry: Geometry | None = None
    references = {
        "hazard_id": "hazardous_area",
        "organisation_id": "organisation",
        "team_ids": "team",
        "dog_ids": "dog",
        "machine_ids": "machine",
    }


class Link(Record):
    """A free link between any two records (an accident to a hazard, a victim to an EORE...)."""

    record_type = "link"
    id_code = "LNK"
    names_any = ("from_id", "to_id")
    from_id: str
    to_id: str
    relation: str = "related"


class Attachment(Record):
    """A photo or scanned form attached to a record; the bytes are kept by their SHA-256."""

    record_type = "attachment"
    id_code = "ATT"
    names_any = ("target_id",)
    target_id: str
    filename: str = Field(min_length=1)
    media_type: str = "application/octet-stream"
    sha256: str
    size_bytes: int = Field(ge=0)
    caption: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("not a lower-case hex SHA-256 digest")
        return value


RECORD_TYPES: dict[str, type[Record]] = {
    model.record_type: model
    for model in (
        Organisation,
        AdminArea,
        Place,
        HazardousArea,
        Activity,
        EoItem,
        Accident,
        Victim,
        EoreSession,
        Team,
        Person,
        Dog,
        Machine,
        TrainingCourse,
        Certification,
        Accreditation,
        QmVisit,
        Task,
        Link,
        Attachment,
    )
}


def record_model(record_type: str) -> type[Record]:
    try:
        return RECORD_TYPES[record_type]
    except KeyError:
        known = ", ".join(sorted(RECORD_TYPES))
        raise ValidationFailed(
            [Problem("record_type", f"unknown record type {record_type!r}; known: {known}")]
        ) from None


_ADAPTERS: dict[tuple[type[Record], str], TypeAdapter[Any]] = {}


def fields_naming(record_type: str) -> list[tuple[str, str]]:
    """Where a report may name a record of ``record_type``, as (record type, field) pairs: the
    references to that type that hold one record, and the fields naming any record."""
    found: list[tuple[str, str]] = []
    for name, model in RECORD_TYPES.items():
        found += [(name, field) for field in model.names_any]
        found += [
            (name, field)
            for field, target in model.references.items()
            if target == record_type and not _names_several(model, field)
        ]
    return found


def _names_several(model: type[Record], field: str) -> bool:
    return typing.get_origin(model.model_fields[field].annotation) is list


def field_adapter(model: type[Record], name: str) -> TypeAdapter[Any]:
    """A validator for one field on its own: partial updates and mapping constants."""
    key = (model, name)
    if key not in _ADAPTERS:
        info = model.model_fields[name]
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        _ADAPTERS[key] = TypeAdapter(annotation, config={"arbitrary_types_allowed": True})
    return _ADAPTERS[key]


def to_payload(record: BaseModel) -> dict[str, Any]:
    """JSON-ready field values (geometry as hex WKB), without unset defaults."""
    return record.model_dump(mode="json", exclude_none=True)


def to_payloads(records: Sequence[Record]) -> list[dict[str, Any]]:
    """``to_payload`` of many records (the same values; geometry fields come last).

    Serialising records one by one, and geometries one by one, costs more in per-call overhead
    than the work itself: this is the bulk form, with one pydantic call per record type and
    one vectorised shapely call per geometry field.
    """
    payloads: list[dict[str, Any]] = [{} for _ in records]
    by_type: dict[type[Record], list[int]] = {}
    for i, record in enumerate(records):
        by_type.setdefault(type(record), []).append(i)
    for model, positions in by_type.items():
        chosen = [records[i] for i in positions]
        names = _geometry_fields(model)
        dumped = _list_adapter(model).dump_python(
            chosen, mode="json", exclude_none=True, exclude={"__all__": set(names)}
        )
        for name in names:
            geometries = np.empty(len(chosen), dtype=object)
            geometries[:] = [record.__dict__[name] for record in chosen]
            for payload, value in zip(dumped, shapely.to_wkb(geometries, hex=True), strict=True):
                if value is not None:
                    payload[name] = value
        for i, payload in zip(positions, dumped, strict=True):
            payloads[i] = payload
    return payloads


@functools.cache
def _list_adapter(model: type[Record]) -> TypeAdapter[list[Record]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


@functools.cache
def _geometry_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(
        name
        for name, info in model.model_fields.items()
        # A required field's Annotated is unwrapped by pydantic; an optional one's is not.
        if info.annotation is BaseGeometry
        or Geometry in (info.annotation, *typing.get_args(info.annotation))
    )
