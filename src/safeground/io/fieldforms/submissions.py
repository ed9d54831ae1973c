"""Submission exports from KoboToolbox and ODK Central, turned into draft reports.

Accepted exports of a Safeground field form:

- KoboToolbox XLSX (one sheet for the submissions, one per repeat group, linked by
  ``_submission__uuid`` or ``_parent_index``) or CSV (comma or semicolon separated; it has no
  repeat groups), with XML names as headers and group prefixes (``group/field``,
  ``group-field`` or ``group.field``); the submission is ``_uuid``.
- ODK Central CSV, or its ZIP of the submissions CSV and one ``<form>-<repeat>.csv`` per repeat
  group, linked by ``PARENT_KEY``; the submission is ``KEY`` / ``meta-instanceID``.

ODK writes a geopoint as ``"lat lon alt acc"`` and a geoshape as those joined by ``;``, latitude
first: the reverse of WKT and GeoJSON. Altitude and accuracy are dropped (the register is 2D).
A shape that is not closed or not valid is reported, never repaired.

Every submission becomes one or more drafts (``Register.draft``) with source ``kobo:<form_id>``
or ``odk:<form_id>`` and the submission's uuid as source key (``<uuid>/<repeat>[n]`` for a
repeat entry that is a record of its own), so importing the same export again adds nothing.
Everything is checked first; the drafts are written in one transaction or not at all.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from io import StringIO
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from shapely.geometry import Point, Polygon
from sqlalchemy import Connection

from safeground.domain.errors import NotFound, Problem, ValidationFailed
from safeground.domain.records import RECORD_TYPES
from safeground.domain.reports import Operation, build_record
from safeground.io.fieldforms.definitions import (
    DATE_OF_INFORMATION,
    RECORD_ID,
    FieldForm,
    Question,
    Repeat,
)
from safeground.io.importer import ImportFailed, RowProblem, counted, shown_problems
from safeground.io.mapping import is_missing
from safeground.service.register import IdPrefix, Register, Submission, json_changes
from safeground.storage.reportlog import reports_by_source

Flavour = Literal["kobo", "odk"]

# Columns the servers add to every export; never questions of the form.
KOBO_META = {"_id", "_uuid", "_submission_time", "_index", "_parent_index", "_parent_table_name"}
ODK_META = {
    "SubmissionDate",
    "KEY",
    "PARENT_KEY",
    "SubmitterID",
    "SubmitterName",
    "AttachmentsPresent",
    "AttachmentsExpected",
    "Status",
    "ReviewState",
    "DeviceID",
    "Edits",
    "FormVersion",
}
META_NAMES = {"instanceID", "instanceName", "deprecatedID", "start", "end", "today", "deviceid"}
POINT_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")


@dataclass(frozen=True)
class SubmissionProblem(RowProblem):
    """A RowProblem that also names the submission (its uuid), as the server shows it."""

    submission: str | None = None

    def where(self) -> str:
        where = super().where()
        return f"{where} (submission {self.submission})" if self.submission else where


@dataclass
class Export:
    """An export read into tables of text cells, headers reduced to question names."""

    file: str
    flavour: Flavour
    main: pd.DataFrame
    repeats: dict[str, pd.DataFrame]
    unknown_columns: list[str] = field(default_factory=list)


@dataclass
class FieldImport:
    """What an import of a submission export did."""

    form: str
    source: str
    file: str
    submissions: int = 0
    drafted: int = 0
    already_imported: int = 0
    rejected_upstream: int = 0
    report_ids: list[int] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    rejected: list[SubmissionProblem] = field(default_factory=list)
    rejected_submissions: int = 0
    rejects_file: Path | None = None
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"Import of {self.file} with field form {self.form} (source {self.source})",
            f"  {counted(self.submissions, 'submission')} read",
            f"  {self.drafted} drafted as {counted(len(self.report_ids), 'draft report')}"
            + (f" ({', '.join(self.record_ids[:10])}" if self.record_ids else "")
            + (" ..." if len(self.record_ids) > 10 else "")
            + (")" if self.record_ids else ""),
            f"  {self.already_imported} already imported (skipped)",
        ]
        if self.rejected_upstream:
            lines.append(
                f"  {self.rejected_upstream} rejected on the collection server (not imported)"
            )
        if self.rejected_submissions:
            where = f", written to {self.rejects_file}" if self.rejects_file else ""
            lines.append(f"  {counted(self.rejected_submissions, 'submission')} rejected{where}:")
            lines += shown_problems(self.rejected, "    ")
        else:
            lines.append("  no submissions rejected")
        lines += [f"  note: {n}" for n in self.notices]
        return "\n".join(lines)


# -- reading an export --------------------------------------------------------------------------


def read_export(path: Path, form: FieldForm, name: str | None = None) -> Export:
    """Read a KoboToolbox or ODK Central export of ``form``; ``name`` is shown in messages."""
    label = name or path.name
    suffix = Path(label).suffix.lower() or path.suffix.lower()
    try:
        if suffix == ".csv":
            sheets = [(Path(label).stem, _read_csv(path.read_bytes()))]
        elif suffix in (".xlsx", ".xlsm"):
            sheets = _read_xlsx(path)
        elif suffix == ".zip":
            sheets = _read_zip(path)
        else:
            raise ValueError(
                "give a KoboToolbox export (.xlsx or .csv) or an ODK Central export "
                "(.csv or the .zip of all CSV files)"
            )
    except (ValueError, OSError, zipfile.BadZipFile, pd.errors.ParserError) as exc:
        raise _file_failed(label, f"cannot read the export: {exc}") from None
    if not sheets:
        raise _file_failed(label, "the export has no table")
    main = sheets[0][1]
    flavour = _flavour(main)
    if flavour is None:
        raise _file_failed(
            label,
            "neither a KoboToolbox export (columns _uuid, _submission_time) nor an ODK Central "
            "export (columns KEY, SubmissionDate); export with XML names as headers, not labels",
        )
    known = _known_names(form)
    try:
        export = Export(label, flavour, _rename(main, known), {})
        export.unknown_columns = _unknown(export.main, known)
        for sheet_name, frame in sheets[1:]:
            repeat = next((r for r in form.repeats if _names_repeat(sheet_name, r.name)), None)
            if repeat is None:
                export.unknown_columns.append(f"sheet {sheet_name}")
                continue
            export.repeats[repeat.name] = _rename(frame, known)
            export.unknown_columns += _unknown(export.repeats[repeat.name], known)
    except ValueError as exc:
        raise _file_failed(label, str(exc)) from None
    missing = [q.name for q in form.questions if q.required and q.name not in export.main.columns]
    if missing:
        raise _file_failed(
            label,
            f"not an export of field form {form.name}: no column for {', '.join(missing)} "
            f"(columns: {', '.join(map(str, main.columns))})",
        )
    return export


def _file_failed(file: str, reason: str) -> ImportFailed:
    return ImportFailed([SubmissionProblem(file, None, None, reason)])


def _read_csv(content: bytes) -> pd.DataFrame:
    text = content.decode("utf-8-sig")
    header = text.split("\n", 1)[0]
    separator = ";" if header.count(";") > header.count(",") else ","
    return pd.read_csv(StringIO(text), dtype=str, keep_default_na=False, sep=separator)


def _read_xlsx(path: Path) -> list[tuple[str, pd.DataFrame]]:
    sheets = pd.read_excel(path, sheet_name=None, dtype=object, engine="openpyxl")
    return [
        (str(name), frame.astype(object).where(frame.notna(), "")) for name, frame in sheets.items()
    ]


def _read_zip(path: Path) -> list[tuple[str, pd.DataFrame]]:
    """ODK Central's ZIP: the submissions CSV first, then one CSV per repeat group."""
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
        tables = {Path(m).stem: _read_csv(archive.read(m)) for m in members}
    mains = [n for n, t in tables.items() if "PARENT_KEY" not in t.columns]
    if len(mains) != 1:
        raise ValueError(
            f"expected one submissions CSV (without PARENT_KEY) in the ZIP, found {len(mains)}"
        )
    return [(mains[0], tables[mains[0]])] + [(n, t) for n, t in tables.items() if n != mains[0]]


def _flavour(frame: pd.DataFrame) -> Flavour | None:
    columns = set(map(str, frame.columns))
    if columns & {"_uuid", "_submission_time", "_id"}:
        return "kobo"
    if columns & {"KEY", "SubmissionDate"}:
        return "odk"
    return None


def _names_repeat(sheet: str, repeat: str) -> bool:
    """KoboToolbox names the sheet after the repeat; ODK Central the file ``<form>-<repeat>``."""
    return sheet == repeat or sheet.endswith(f"-{repeat}")


def _known_names(form: FieldForm) -> dict[str, Question]:
    known = {q.name: q for q in form.all_questions()}
    known.update(
        {r.count_name: Question(r.count_name, r.count_name, "integer", "") for r in form.repeats}
    )
    return known


def _rename(frame: pd.DataFrame, known: dict[str, Question]) -> pd.DataFrame:
    """Headers reduced to question names; ODK Central's split geopoints joined back up.

    ``group/evidence/front_line`` (KoboToolbox's one column per choice of a select_multiple)
    and KoboToolbox's ``_point_latitude`` ... columns are dropped: the question's own column
    holds the same values.
    """
    renamed: dict[str, pd.Series] = {}
    parts: dict[str, dict[str, pd.Series]] = defaultdict(dict)
    for header in frame.columns:
        text = str(header)
        column = frame[header].map(_text)
        if text in KOBO_META or text in ODK_META or text.startswith("_"):
            renamed[text] = column
            continue
        segments = re.split(r"[/.\-]", text)
        last = segments[-1]
        before = segments[-2] if len(segments) > 1 else None
        if before in known and known[before].kind == "select_multiple":
            continue
        if before in known and known[before].kind == "geopoint" and last in POINT_PARTS:
            parts[before][last] = column
            continue
        name = last if last in known or last in META_NAMES else text
        if name in renamed and name not in META_NAMES:
            raise ValueError(f"two columns for question {name} (one is {header})")
        renamed[name] = column
    for name, pieces in parts.items():
        if name not in renamed and "Latitude" in pieces and "Longitude" in pieces:
            renamed[name] = pieces["Latitude"].str.cat(pieces["Longitude"], sep=" ").str.strip()
    return pd.DataFrame(renamed, index=frame.index)


def _unknown(frame: pd.DataFrame, known: dict[str, Question]) -> list[str]:
    """Columns with answers that no question of the form takes (told, not imported)."""
    return [
        str(c)
        for c in frame.columns
        if c not in known
        and c not in META_NAMES
        and c not in KOBO_META
        and c not in ODK_META
        and not str(c).startswith("_")
        and not str(c).startswith("meta")
        and (frame[c] != "").any()
    ]


def _text(value: Any) -> Any:
    """Cells as text, except dates and numbers read from XLSX, which convert themselves."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value.strip()
    return value


# -- converting answers -------------------------------------------------------------------------


def parse_odk_point(text: str) -> Point:
    """``"lat lon [alt [acc]]"`` → Point(lon, lat)."""
    lon, lat = _lon_lat(text)
    return Point(lon, lat)


def parse_odk_shape(text: str) -> Polygon:
    """``"lat lon alt acc;lat lon alt acc;..."`` → Polygon of (lon, lat), closed as given."""
    vertices = [_lon_lat(p) for p in text.strip().strip(";").split(";") if p.strip()]
    if len(vertices) < 4:
        raise ValueError(
            f"a shape needs at least 4 points (first repeated last), got {len(vertices)}"
        )
    if vertices[0] != vertices[-1]:
        raise ValueError(
            "the shape is not closed (its last point is not its first): a geotrace, not a "
            "geoshape? Not closed automatically"
        )
    return Polygon(vertices)


def _lon_lat(text: str) -> tuple[float, float]:
    numbers = text.split()
    if len(numbers) < 2 or len(numbers) > 4:
        raise ValueError(
            f"{text.strip()!r} is not an ODK point 'latitude longitude altitude accuracy'"
        )
    try:
        lat, lon = float(numbers[0]), float(numbers[1])
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not an ODK point of numbers") from None
    if not (-90 <= lat <= 90):
        raise ValueError(
            f"latitude {lat:g} is out of range in {text.strip()!r}: ODK writes latitude first "
            "('latitude longitude altitude accuracy'); not swapped"
        )
    if not (-180 <= lon <= 180):
        raise ValueError(f"longitude {lon:g} is out of range in {text.strip()!r}")
    return lon, lat


def convert(question: Question, raw: Any) -> Any:
    """One answer as the model field expects it; ValueError with a reason for the user."""
    kind = question.kind
    if kind in ("integer", "beneficiary"):
        return _integer(raw)
    if kind == "decimal":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a number") from None
    if kind == "date":
        return _date(raw)
    text = str(raw).strip()
    allowed = [value for value, _ in question.choices]
    if kind in ("select_one", "yes_no"):
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of the form's choices ({', '.join(allowed)})")
        return text == "yes" if kind == "yes_no" else text
    if kind == "select_multiple":
        chosen = text.split()
        wrong = [v for v in chosen if v not in allowed]
        if wrong:
            raise ValueError(
                f"{', '.join(map(repr, wrong))} not among the form's choices ({', '.join(allowed)})"
            )
        return chosen
    if kind == "id_list":
        return [v for v in re.split(r"[\s,;]+", text) if v]
    if kind == "geopoint":
        return parse_odk_point(text)
    if kind == "geoshape":
        return parse_odk_shape(text)
    return text


def _integer(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    text = str(raw).strip()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return int(text.split(".")[0])
    raise ValueError(f"{raw!r} is not a whole number")


def _date(raw: Any) -> date:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw).strip()[:10])
    except ValueError:
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)") from None


# -- one submission -----------------------------------------------------------------------------


@dataclass
class _Planned:
    """One draft report to write for a submission."""

    record_type: str
    values: dict[str, Any]
    key: str
    record_id: str | None = None  # set for an update; allocated for a create
    link: tuple[str, int] | None = None  # (field, index of the planned record it names)


@dataclass
class _Submission:
    row: int
    uuid: str
    date_of_information: date | None = None
    planned: list[_Planned] = field(default_factory=list)
    problems: list[SubmissionProblem] = field(default_factory=list)
    submitted_at: str | None = None


class _Reader:
    """Turns the rows of one export into planned drafts, collecting problems per row."""

    def __init__(self, register: Register, form: FieldForm, export: Export):
        self.register = register
        self.form = form
        self.export = export
        self.entries = {
            name: _group_entries(export, frame) for name, frame in export.repeats.items()
        }

    def read(self) -> list[_Submission]:
        seen: dict[str, int] = {}
        found = []
        for index, cells in enumerate(self.export.main.to_dict("records")):
            sub = self._one(index + 1, {str(k): v for k, v in cells.items()}, seen)
            found.append(sub)
        return found

    def problem(self, sub: _Submission, name: str | None, reason: str) -> None:
        sub.problems.append(SubmissionProblem(self.export.file, sub.row, name, reason, sub.uuid))

    def _one(self, row: int, cells: dict[str, Any], seen: dict[str, int]) -> _Submission:
        uuid = _uuid(cells, self.export.flavour)
        sub = _Submission(row, uuid or f"row {row}")
        sub.submitted_at = (
            str(cells.get("_submission_time") or cells.get("SubmissionDate") or "") or None
        )
        if not uuid:
            self.problem(
                sub, "_uuid" if self.export.flavour == "kobo" else "KEY", "no submission uuid"
            )
        elif uuid in seen:
            self.problem(sub, None, f"the same submission as row {seen[uuid]}")
        else:
            seen[uuid] = row
        try:
            sub.date_of_information = _date(cells.get(DATE_OF_INFORMATION))
        except ValueError as exc:
            reason = "empty" if is_missing(cells.get(DATE_OF_INFORMATION)) else str(exc)
            self.problem(sub, DATE_OF_INFORMATION, reason)
        values = self._answers(sub, self.form.questions, cells, None)
        entries = self._repeat_entries(sub, cells)
        self._plan(sub, cells, values, entries)
        return sub

    def _answers(
        self,
        sub: _Submission,
        questions: tuple[Question, ...],
        cells: dict[str, Any],
        where: str | None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for q in questions:
            if q.name in (DATE_OF_INFORMATION, RECORD_ID):
                continue
            raw = cells.get(q.name)
            if is_missing(raw):
                continue
            try:
                value = convert(q, raw)
            except ValueError as exc:
                self.problem(sub, _at(where, q.name), str(exc))
                continue
            if q.kind == "beneficiary":
                values.setdefault(q.field, {})[q.group_key] = value
            else:
                values[q.field] = value
        return values

    def _repeat_entries(
        self, sub: _Submission, cells: dict[str, Any]
    ) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for repeat in self.form.repeats:
            rows = self.entries.get(repeat.name, {}).get(
                _parent_key(cells, self.export.flavour), []
            )
            expected_raw = cells.get(repeat.count_name)
            try:
                expected = None if is_missing(expected_raw) else _integer(expected_raw)
            except ValueError:
                expected = None
            if expected is None and repeat.name not in self.export.repeats:
                self.problem(
                    sub,
                    repeat.name,
                    "the export has no table for this repeat group and no "
                    f"{repeat.count_name} column, so its entries cannot be checked",
                )
            elif expected is not None and expected != len(rows):
                self.problem(
                    sub, repeat.name, _missing_entries(repeat, expected, len(rows), self.export)
                )
            if len(rows) < repeat.min_count:
                self.problem(sub, repeat.name, f"at least {repeat.min_count} entry needed")
            found[repeat.name] = [
                self._answers(sub, repeat.questions, entry, f"{repeat.name}[{i + 1}]")
                for i, entry in enumerate(rows)
            ]
        return found

    def _plan(
        self,
        sub: _Submission,
        cells: dict[str, Any],
        values: dict[str, Any],
        entries: dict[str, list[dict[str, Any]]],
    ) -> None:
        form = self.form
        record_id = cells.get(RECORD_ID)
        main = _Planned(form.record_type, {**form.fixed, **values}, sub.uuid)
        if form.updates and not is_missing(record_id):
            main.record_id = str(record_id).strip()
            self._check_update(sub, main)
        for repeat in form.repeats:
            if repeat.mode == "into":
                main.values[repeat.target or repeat.name] = entries[repeat.name]
        if form.creates_main:
            sub.planned.append(main)
        for repeat in form.repeats:
            for i, entry in enumerate(entries[repeat.name]):
                key = f"{sub.uuid}/{repeat.name}[{i + 1}]"
                record_type = repeat.record_type
                if repeat.mode == "link":
                    planned = _Planned(record_type, entry, key, link=(repeat.target or "", 0))
                elif repeat.mode == "each":
                    planned = _Planned(record_type, {**form.fixed, **values, **entry}, key)
                else:
                    continue
                sub.planned.append(planned)
        for planned in sub.planned:
            self._validate(sub, planned)

    def _check_update(self, sub: _Submission, planned: _Planned) -> None:
        assert planned.record_id is not None
        with self.register.store.begin() as conn:
            try:
                found = self.register.record_type_of(conn, planned.record_id)
            except NotFound:
                self.problem(sub, RECORD_ID, f"no record {planned.record_id} in the register")
                return
        if found != planned.record_type:
            self.problem(
                sub, RECORD_ID, f"{planned.record_id} is a {found}, not a {planned.record_type}"
            )

    def _validate(self, sub: _Submission, planned: _Planned) -> None:
        """The record model's checks, as for a report drafted on the web."""
        where = None if planned.key == sub.uuid else planned.key.split("/", 1)[1]
        values = dict(planned.values)
        if planned.link:
            values[planned.link[0]] = "pending"
        try:
            if planned.record_id is not None:
                if not values:
                    self.problem(sub, None, "nothing to update: every answer is empty")
                json_changes(RECORD_TYPES[planned.record_type], values)
            else:
                build_record(planned.record_type, values)
        except ValidationFailed as exc:
            flagged = {p.field for p in sub.problems}
            for p in exc.problems:
                name = self._question_name(p, where)
                if name not in flagged:  # else the answer's own problem was given already
                    self.problem(sub, name, p.reason)

    def _question_name(self, problem: Problem, where: str | None) -> str | None:
        """A model field path (``processed.0.geometry``) as the form's question names."""
        if problem.field is None:
            return where
        parts = problem.field.split(".")
        repeat = next(
            (r for r in self.form.repeats if r.mode == "into" and r.target == parts[0]), None
        )
        if repeat is not None and len(parts) >= 3 and parts[1].isdigit():
            inner = _name_of(repeat.questions, parts[2])
            return f"{repeat.name}[{int(parts[1]) + 1}]/{inner}"
        if where is not None:
            repeat = self.form.repeat(where.split("[")[0])
            name = _name_of(repeat.questions, parts[0])
            if name == parts[0]:
                name = _name_of(self.form.questions, parts[0])
            return f"{where}/{name}"
        return _name_of(self.form.questions, parts[0])


def _name_of(questions: tuple[Question, ...], field_name: str) -> str:
    return next(
        (q.name for q in questions if q.field == field_name and q.kind != "beneficiary"), field_name
    )


def _at(where: str | None, name: str) -> str:
    return f"{where}/{name}" if where else name


def _missing_entries(repeat: Repeat, expected: int, found: int, export: Export) -> str:
    if repeat.name not in export.repeats:
        how = (
            "export as XLS(X) to include repeat groups"
            if export.flavour == "kobo"
            else "import the ZIP of all CSV files that ODK Central exports"
        )
        return f"the submission has {expected} entries but the export has no table for them: {how}"
    return f"the submission has {expected} entries but the export has {found}"


def _uuid(cells: dict[str, Any], flavour: Flavour) -> str | None:
    for column in ("_uuid", "instanceID") if flavour == "kobo" else ("KEY", "instanceID"):
        value = cells.get(column)
        if not is_missing(value):
            return str(value).strip().removeprefix("uuid:")
    return None


def _parent_key(cells: dict[str, Any], flavour: Flavour) -> str:
    return _key(cells.get("_uuid" if flavour == "kobo" else "KEY") or "")


def _group_entries(export: Export, frame: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Repeat rows by the key of their submission, in file order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    parents: dict[str, str] = {}  # KoboToolbox's _parent_index → the submission's _uuid
    if export.flavour == "odk":
        link = "PARENT_KEY"
    elif "_submission__uuid" in frame.columns:
        link = "_submission__uuid"
    else:
        link = "_parent_index"
        if "_index" in export.main.columns:
            parents = {
                _key(i): _key(u)
                for i, u in zip(export.main["_index"], export.main["_uuid"], strict=True)
            }
    if link not in frame.columns:
        raise _file_failed(
            export.file, f"a repeat table has no {link} column linking it to its submission"
        )
    for cells in frame.to_dict("records"):
        parent = _key(cells[link])
        grouped[parents.get(parent, parent) if parents else parent].append(
            {str(k): v for k, v in cells.items()}
        )
    return grouped


def _key(value: Any) -> str:
    """A link cell as text: 3, 3.0 and "3" are the same index."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _upstream_rejected(cells: dict[Any, Any]) -> bool:
    """Rejected by a reviewer on the collection server (ODK Central or KoboToolbox)."""
    return (
        str(cells.get("ReviewState") or "") == "rejected"
        or str(cells.get("_validation_status") or "") == "validation_status_not_approved"
    )


# -- importing ----------------------------------------------------------------------------------


def import_submissions(
    register: Register,
    form: FieldForm,
    path: Path,
    user: str,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    name: str | None = None,
    after_draft: Callable[[Connection, FieldImport], None] | None = None,
) -> FieldImport:
    """Draft a report for each new submission of an export; all or nothing.

    With invalid submissions and ``skip_invalid`` False, raise ImportFailed and write nothing.
    With ``skip_invalid``, draft the valid ones and, when ``rejects`` is given, write the
    rejected rows there with ``_row, _submission, _field, _reason``. ``name`` is the file's
    name in messages (an upload's); ``after_draft`` runs inside the drafting transaction
    (the web application's audit entry lands with the drafts).
    """
    export = read_export(path, form, name)
    source = f"{export.flavour}:{form.form_id}"
    result = FieldImport(form.name, source, export.file, submissions=len(export.main))
    if export.unknown_columns:
        result.notices.append(
            f"answers in columns that are not questions of form {form.name} (not imported): "
            + ", ".join(export.unknown_columns)
        )
    with register.store.begin() as conn:
        done = _imported_uuids(reports_by_source(conn, source))
    keep = [
        i for i, cells in enumerate(export.main.to_dict("records")) if not _upstream_rejected(cells)
    ]
    result.rejected_upstream = len(export.main) - len(keep)
    original = export.main
    export.main = original.iloc[keep].reset_index(drop=True)
    subs = _Reader(register, form, export).read()
    for sub, position in zip(subs, keep, strict=True):
        sub.row = position + 1
        for i, p in enumerate(sub.problems):
            sub.problems[i] = SubmissionProblem(p.file, sub.row, p.field, p.reason, p.submission)
    fresh = [s for s in subs if s.uuid not in done]
    result.already_imported = len(subs) - len(fresh)
    invalid = [s for s in fresh if s.problems]
    problems = [p for s in invalid for p in s.problems]
    if invalid and not skip_invalid:
        raise ImportFailed(list(problems))
    valid = [s for s in fresh if not s.problems]
    written = _write_rejects(original, invalid, rejects) if invalid and rejects else None
    # Set before drafting: ``after_draft`` (the audit entry) reads them.
    result.rejected = problems
    result.rejected_submissions = len(invalid)
    result.rejects_file = written
    try:
        _draft(register, form, export, valid, user, source, result, after_draft)
    except BaseException:
        if written is not None:
            written.unlink(missing_ok=True)
        raise
    return result


def _imported_uuids(existing: dict[str, str]) -> set[str]:
    return {key.split("/", 1)[0] for key in existing}


def _draft(
    register: Register,
    form: FieldForm,
    export: Export,
    subs: list[_Submission],
    user: str,
    source: str,
    result: FieldImport,
    after_draft: Callable[[Connection, FieldImport], None] | None,
) -> None:
    with register.store.begin() as conn:
        # Again inside the write transaction, one import of a source at a time (as the
        # importer's): another import may have landed meanwhile.
        register.store.one_at_a_time(conn, f"import {source}")
        done = _imported_uuids(reports_by_source(conn, source))
        todo = [s for s in subs if s.uuid not in done]
        result.already_imported += len(subs) - len(todo)
        country = str(register.store.settings(conn)["country"])
        new = [
            _id_prefix(country, p, sub) for sub in todo for p in sub.planned if p.record_id is None
        ]
        reserved = register.reserve_ids(conn, Counter(new))
        items: list[Submission] = []
        for sub in todo:
            assert sub.date_of_information is not None
            ids: list[str] = []
            for planned in sub.planned:
                if planned.record_id is None:
                    planned.record_id = next(reserved[_id_prefix(country, planned, sub)])
                    operation = Operation.CREATE
                else:
                    operation = Operation.UPDATE
                ids.append(planned.record_id)
                values = dict(planned.values)
                if planned.link is not None:
                    values[planned.link[0]] = ids[planned.link[1]]
                when = f", submitted {sub.submitted_at}" if sub.submitted_at else ""
                items.append(
                    Submission(
                        record_type=planned.record_type,
                        changes=values,
                        date_of_information=sub.date_of_information,
                        record_id=planned.record_id,
                        operation=operation,
                        reason=f"field form {form.name}: submission {sub.uuid} in "
                        f"{export.file} row {sub.row}{when}",
                        source=source,
                        source_key=planned.key,
                    )
                )
        reports = register.draft(user, items, conn=conn) if items else []
        result.drafted = len(todo)
        result.report_ids = [r.report_id for r in reports]
        result.record_ids = [r.record_id for r in reports]
        if after_draft is not None:
            after_draft(conn, result)


def _id_prefix(country: str, planned: _Planned, sub: _Submission) -> IdPrefix:
    assert sub.date_of_information is not None
    return country, RECORD_TYPES[planned.record_type].id_code, sub.date_of_information.year


def _write_rejects(main: pd.DataFrame, subs: list[_Submission], path: Path) -> Path:
    frame = main.iloc[[s.row - 1 for s in subs]].copy()
    frame.insert(0, "_row", [s.row for s in subs])
    frame["_submission"] = [s.uuid for s in subs]
    frame["_field"] = ["; ".join(p.field or "" for p in s.problems) for s in subs]
    frame["_reason"] = ["; ".join(p.reason for p in s.problems) for s in subs]
    try:
        frame.to_csv(path, index=False)
    except OSError as exc:
        reason = f"cannot write the rejects file {path}: {exc.strerror or exc}"
        raise ImportFailed([SubmissionProblem(path.name, None, None, reason)]) from None
    return path
