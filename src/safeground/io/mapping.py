"""Import mappings: a short YAML file saying how a source's columns and codes become records.

Real data never matches the register's fields, so each source gets a mapping rather than a
converter. A mapping is validated when it is loaded (unknown fields, code values that are not
valid for their field, a bounding box that is not lon/lat ...) so that a bad mapping fails
before a single row is read, with the place in the YAML and the reason.

Example (the shape of ``mappings/colombia-mine-events.yaml``)::

    source: colombia-mine-events
    region: {name: Colombia, bbox: [-82.0, -4.3, -66.8, 13.6]}
    date_of_information: {column: AÑO, format: year}
    record_type:
      column: TIPO_EVENTO
      codes: {1: accident, 2: accident, 8: hazardous_area}
    records:
      accident:
        accident_type: {column: TIPO_EVENTO, codes: {1: mine, 2: uxo}}
        accident_date: {column: AÑO, format: year}
        place_name: {template: "{MUNICIPIO}, {DEPARTAMENTO}"}
      hazardous_area:
        classification: {value: indication}
        reference_point: {geometry: input}
"""

from __future__ import annotations

import difflib
import functools
import math
import string
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from safeground.domain.errors import Problem, ValidationFailed
from safeground.domain.records import RECORD_TYPES, Record, field_adapter
from safeground.io.mappings import FOLDER, shipped, shipped_path
from safeground.storage.schema import unwrap

DATE_FORMATS = ("year", "date")


class MappingError(ValidationFailed):
    """A mapping that cannot be used; each problem names the place in the YAML."""

    def __init__(self, name: str, problems: list[Problem]):
        self.name = name
        super().__init__(problems)
        lines = [f"mapping {name} is not valid:"] + [f"  {p}" for p in problems]
        self.args = ("\n".join(lines),)


def code_key(value: Any) -> str:
    """A cell or YAML key as a code: 1, 1.0 and "1" are the same code."""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _code_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {code_key(k): v for k, v in value.items()}
    return value


def is_missing(value: Any) -> bool:
    """Empty cells: None, NaN, NaT and blank text (not an empty list, which is a value)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    return value is pd.NaT or value is pd.NA


Codes = Annotated[dict[str, Any], BeforeValidator(_code_keys)]


class FieldSpec(BaseModel):
    """Where one field's value comes from: a column, a constant, a template or the geometry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = None
    value: Any = None
    template: str | None = None
    geometry: Literal["input"] | None = None
    codes: Codes | None = None
    format: str | None = None
    separator: str | None = None
    to_multi: bool = False

    @model_validator(mode="before")
    @classmethod
    def _not_bare(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                f"write {{column: {data}}} for a column or {{value: {data}}} for a constant, "
                "not a bare value"
            )
        codes = data.get("codes")
        if "template" in data and isinstance(codes, dict):
            # A template's codes are one table per column: normalise the codes of each.
            data = {**data, "codes": {k: _code_keys(v) for k, v in codes.items()}}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [
            k for k in ("column", "value", "template", "geometry") if k in self.model_fields_set
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of column, value, template or geometry"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.format is not None:
            if self.column is None:
                raise ValueError("format applies to a column")
            if self.format not in DATE_FORMATS and "%" not in self.format:
                raise ValueError(
                    f"format {self.format!r}: use year, date or a strptime pattern like %d/%m/%Y"
                )
        if self.separator is not None and self.column is None:
            raise ValueError("separator applies to a column")
        if self.codes is not None and self.column is None and self.template is None:
            raise ValueError("codes apply to a column or to a template's columns")
        if self.template is not None and self.codes is not None:
            names = set(placeholders(self.template))
            for column, table in self.codes.items():
                if column not in names:
                    raise ValueError(f"codes.{column}: not a {{placeholder}} of the template")
                if not isinstance(table, dict):
                    raise ValueError(f"codes.{column}: give a table of code: text")
        if self.to_multi and self.geometry is None:
            raise ValueError("to_multi applies to {geometry: input}")
        return self

    def columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.template is not None:
            return placeholders(self.template)
        return []

    @property
    def is_constant(self) -> bool:
        return "value" in self.model_fields_set


@functools.lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def placeholders(template: str) -> list[str]:
    """The column names a template reads, e.g. ["MUNICIPIO", "DEPARTAMENTO"]."""
    return list(_placeholders(template))


class InputFormat(BaseModel):
    """Hints for reading the input: layer, coordinate columns and the input's CRS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: str | None = None
    lon: str | None = None
    lat: str | None = None
    wkt: str | None = None
    crs: str | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CRS.from_user_input(value)
            except CRSError as exc:
                raise ValueError(f"unknown CRS {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _coordinates(self) -> InputFormat:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat columns, or neither")
        if self.lon is not None and self.wkt is not None:
            raise ValueError("give lon/lat columns or a wkt column, not both")
        return self


class Region(BaseModel):
    """Where the data must lie; a point outside is a row error, never repaired."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    bbox: tuple[float, float, float, float]

    @field_validator("bbox")
    @classmethod
    def _lon_lat(cls, value: tuple[float, float, float, float]) -> tuple[float, ...]:
        minx, miny, maxx, maxy = value
        if not (minx < maxx and miny < maxy):
            raise ValueError("give [min lon, min lat, max lon, max lat] with min < max")
        if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
            raise ValueError("give the box in longitude/latitude degrees (EPSG:4326)")
        return value

    def contains(self, geom: BaseGeometry) -> bool:
        minx, miny, maxx, maxy = geom.bounds
        bx0, by0, bx1, by1 = self.bbox
        return bx0 <= minx and maxx <= bx1 and by0 <= miny and maxy <= by1


class RecordTypeChoice(BaseModel):
    """The record type chosen per row by a code column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    codes: Codes


class Mapping(BaseModel):
    """A validated mapping; ``plan`` says, per record type, how each field is filled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)
    description: str | None = None
    format: InputFormat = InputFormat()
    region: Region | None = None
    key: list[str] = Field(default_factory=list)
    record_type: str | RecordTypeChoice
    date_of_information: FieldSpec
    records: dict[str, dict[str, FieldSpec]]
    _name: str = PrivateAttr(default="<mapping>")
    # Record type → ``geometry_placement``, found once (an import asks for every row).
    _placements: dict[str, tuple[str, bool] | None] = PrivateAttr(default_factory=dict)

    @property
    def name(self) -> str:
        """The shipped name or the file the mapping came from (for messages and reports)."""
        return self._name

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        if self.date_of_information.geometry is not None:
            raise ValueError("date_of_information: cannot come from the geometry")
        wanted = self.record_types()
        if isinstance(self.record_type, RecordTypeChoice):
            for code, value in self.record_type.codes.items():
                if str(value) not in RECORD_TYPES:
                    raise ValueError(f"record_type.codes.{code}: {_unknown(value, RECORD_TYPES)}")
        elif self.record_type not in RECORD_TYPES:
            raise ValueError(f"record_type: {_unknown(self.record_type, RECORD_TYPES)}")
        for record_type in self.records:
            if record_type not in RECORD_TYPES:
                raise ValueError(f"records.{record_type}: {_unknown(record_type, RECORD_TYPES)}")
            if record_type not in wanted:
                raise ValueError(f"records.{record_type}: record_type never chooses it")
        missing = [t for t in wanted if t not in self.records]
        if missing:
            raise ValueError(f"records: no block for {', '.join(missing)}")
        return self

    def record_types(self) -> list[str]:
        if isinstance(self.record_type, str):
            return [self.record_type]
        return list(dict.fromkeys(str(v) for v in self.record_type.codes.values()))

    def columns(self) -> list[str]:
        """Every input column the mapping reads (checked against each file before rows)."""
        used: list[str] = list(self.key)
        used += self.date_of_information.columns()
        if isinstance(self.record_type, RecordTypeChoice):
            used.append(self.record_type.column)
        for specs in self.records.values():
            for spec in specs.values():
                used += spec.columns()
        for name in (self.format.lon, self.format.lat, self.format.wkt):
            if name:
                used.append(name)
        return list(dict.fromkeys(used))

    def geometry_field(self, record_type: str) -> str | None:
        """The field that receives the input geometry (``geometry`` unless the mapping says)."""
        for name, spec in self.records[record_type].items():
            if spec.geometry is not None:
                return name
        model = RECORD_TYPES[record_type]
        return "geometry" if "geometry" in model.model_fields else None

    def choose_type(self, cells: dict[str, Any]) -> tuple[str | None, str | None]:
        """(record type, None) or (None, reason)."""
        if isinstance(self.record_type, str):
            return self.record_type, None
        choice = self.record_type
        raw = cells.get(choice.column)
        if is_missing(raw):
            return None, f"column {choice.column} is empty: cannot choose the record type"
        found = choice.codes.get(code_key(raw))
        if found is None:
            return None, _unknown_code(raw, choice.column, choice.codes)
        return str(found), None

    def map_row(
        self, record_type: str, cells: dict[str, Any], geometry: BaseGeometry | None
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The field values of one row, and (field, reason) for each value that cannot be had."""
        values: dict[str, Any] = {}
        problems: list[tuple[str, str]] = []
        model = RECORD_TYPES[record_type]
        for name, spec in self.records[record_type].items():
            if spec.geometry is not None:
                continue
            try:
                value = spec_value(spec, cells)
            except ValueError as exc:
                problems.append((name, str(exc)))
                continue
            if value is not None:
                values[name] = value
        if geometry is not None:
            values.update(placed(self.geometry_placement(record_type), geometry))
        if _year_only(self.records[record_type]) and "date_precision" in model.model_fields:
            values.setdefault("date_precision", "year")
        return values, problems

    def geometry_placement(self, record_type: str) -> tuple[str, bool] | None:
        """The field the input geometry goes to, and whether a polygon becomes a multipolygon
        there; None when it goes nowhere."""
        if record_type in self._placements:
            return self._placements[record_type]
        found: tuple[str, bool] | None = None
        for name, spec in self.records[record_type].items():
            if spec.geometry is not None:
                found = name, spec.to_multi
                break
        else:
            unmapped = "geometry" not in self.records[record_type]
            if unmapped and self.geometry_field(record_type) == "geometry":
                found = "geometry", False
        self._placements[record_type] = found
        return found

    def value_columns(self) -> list[str]:
        """The columns the record type, the date and the fields are read from (not the key)."""
        used = self.date_of_information.columns()
        if isinstance(self.record_type, RecordTypeChoice):
            used.append(self.record_type.column)
        for specs in self.records.values():
            for spec in specs.values():
                used += spec.columns()
        return list(dict.fromkeys(used))


def spec_value(spec: FieldSpec, cells: dict[str, Any]) -> Any:
    """A field's value from one row's cells; raises ValueError with a reason for the user."""
    if spec.is_constant:
        return spec.value
    if spec.template is not None:
        return _fill(spec, cells)
    assert spec.column is not None
    raw = cells.get(spec.column)
    if is_missing(raw):
        return None
    if spec.separator is not None:
        parts = [p.strip() for p in str(raw).split(spec.separator) if p.strip()]
        return [_convert(spec, p) for p in parts]
    return _convert(spec, raw)


def _convert(spec: FieldSpec, raw: Any) -> Any:
    if spec.codes is not None:
        key = code_key(raw)
        if key not in spec.codes:
            raise ValueError(_unknown_code(raw, spec.column or "", spec.codes))
        return spec.codes[key]
    if spec.format is not None:
        return parse_date(raw, spec.format)
    return raw.item() if hasattr(raw, "item") and not isinstance(raw, list | str) else raw


def _fill(spec: FieldSpec, cells: dict[str, Any]) -> str | None:
    assert spec.template is not None
    filled: dict[str, str] = {}
    for name in _placeholders(spec.template):
        raw = cells.get(name)
        if is_missing(raw):
            filled[name] = ""
            continue
        table = (spec.codes or {}).get(name)
        if table is not None:
            key = code_key(raw)
            if key not in table:
                raise ValueError(_unknown_code(raw, name, table))
            filled[name] = str(table[key])
        else:
            filled[name] = code_key(raw)
    if not any(filled.values()):
        return None
    text = spec.template.format_map(filled)
    return text.strip(" ,;-") or None


def parse_date(raw: Any, fmt: str) -> date:
    """A date from a cell: ``year`` gives 1 January of that year."""
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = code_key(raw)
    if fmt == "year":
        if not (text.isdigit() and len(text) == 4):
            raise ValueError(f"{raw!r} is not a year")
        return date(int(text), 1, 1)
    try:
        if fmt == "date":
            return date.fromisoformat(text[:10])
        return datetime.strptime(text, fmt).date()
    except ValueError:
        raise ValueError(f"{raw!r} is not a date ({fmt})") from None


def _year_only(specs: dict[str, FieldSpec]) -> bool:
    return "date_precision" not in specs and any(s.format == "year" for s in specs.values())


def placed(
    placement: tuple[str, bool] | None, geometry: BaseGeometry | None
) -> dict[str, BaseGeometry]:
    """The field the input geometry goes to (``Mapping.geometry_placement``), with its value;
    nothing for no geometry. The placement is found beforehand: an import places every row's
    geometry, and asking the mapping (a pydantic model) each time cost more than placing it."""
    if geometry is None or placement is None:
        return {}
    name, to_multi = placement
    if to_multi and geometry.geom_type == "Polygon":
        return {name: MultiPolygon([geometry])}
    return {name: geometry}


def _unknown_code(raw: Any, column: str, codes: dict[str, Any]) -> str:
    known = ", ".join(sorted(codes, key=lambda k: (len(k), k)))
    return f"unknown code {code_key(raw)!r} in column {column} (known: {known})"


def _unknown(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown record type {name!r}{hint}"


# -- checks that need the record models ---------------------------------------------------------


@dataclass
class _Checker:
    problems: list[Problem] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.problems.append(Problem(where, reason))


def _check_fields(mapping: Mapping) -> list[Problem]:
    checker = _Checker()
    for record_type, specs in mapping.records.items():
        model = RECORD_TYPES[record_type]
        geometry_specs = [n for n, s in specs.items() if s.geometry is not None]
        if len(geometry_specs) > 1:
            checker.add(
                f"records.{record_type}",
                f"the input geometry goes to one field only (got {', '.join(geometry_specs)})",
            )
        for name, spec in specs.items():
            where = f"records.{record_type}.{name}"
            if name not in model.model_fields:
                close = difflib.get_close_matches(name, list(model.model_fields), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                checker.add(where, f"not a field of {record_type}{hint}")
                continue
            _check_values(checker, model, name, spec, where)
    return checker.problems


def _check_values(
    checker: _Checker, model: type[Record], name: str, spec: FieldSpec, where: str
) -> None:
    adapter = field_adapter(model, name)
    is_list = _is_list_field(model, name)

    def check(value: Any, at: str) -> None:
        try:
            adapter.validate_python([value] if is_list and spec.separator else value)
        except ValidationError as exc:
            checker.add(at, f"{value!r} is not valid for {name}: {_first_error(exc)}")

    if spec.geometry is not None:
        if not _is_geometry_field(model, name):
            checker.add(where, f"{name} is not a geometry field")
        return
    if spec.is_constant:
        check(spec.value, f"{where}.value")
    elif spec.column is not None and spec.codes is not None:
        for code, value in spec.codes.items():
            check(value, f"{where}.codes.{code}")
    elif spec.format is not None and not _is_date_field(model, name):
        checker.add(where, f"format {spec.format} gives a date, but {name} is not a date")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return str(err["msg"]).removeprefix("Value error, ")


def field_kind(model: type[Record], name: str) -> Any:
    """The field's type without ``| None`` and ``Annotated``: list, date, BaseGeometry, ..."""
    kind = unwrap(model.model_fields[name].annotation)
    return typing.get_origin(kind) or kind


def _is_list_field(model: type[Record], name: str) -> bool:
    return field_kind(model, name) is list


def _is_date_field(model: type[Record], name: str) -> bool:
    return field_kind(model, name) is date


def _is_geometry_field(model: type[Record], name: str) -> bool:
    kind = field_kind(model, name)
    return isinstance(kind, type) and issubclass(kind, BaseGeometry)


# -- loading -------------------------------------------------------------------------------------


def parse_mapping(data: Any, name: str = "<mapping>") -> Mapping:
    """Validate mapping data (parsed YAML) into a Mapping, or raise MappingError."""
    if not isinstance(data, dict):
        raise MappingError(name, [Problem(None, "expected a YAML mapping of keys to values")])
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(name, _yaml_problems(exc)) from None
    problems = _check_fields(mapping)
    if problems:
        raise MappingError(name, problems)
    mapping._name = name
    return mapping


def _yaml_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("str", "RecordTypeChoice"))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required"
        elif err["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(loc or None, message))
    return problems


def load_mapping(name_or_path: str) -> Mapping:
    """A shipped mapping by name (``colombia-mine-events``) or a mapping file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        found = shipped_path(name_or_path)
        if found is None:
            raise MappingError(
                name_or_path,
                [
                    Problem(
                        None,
                        "no such file, and no shipped mapping by that name "
                        f"(shipped: {', '.join(shipped())})",
                    )
                ],
            )
        path = found
    name = path.stem if path.parent == FOLDER else str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        reason = str(getattr(exc, "problem", None) or exc)
        raise MappingError(name, [Problem(where, f"not valid YAML: {reason}")]) from None
    return parse_mapping(data, name)
