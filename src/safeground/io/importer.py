"""Mapped imports: every row validated first, then everything filed in one transaction.

An import is atomic: all rows of all files go into one ``Register.file`` call inside one
transaction, so either everything valid lands or nothing does. Rows are checked before anything
is written and every problem is collected, named by file, row, field and reason. Nothing is
repaired: coordinates outside the declared region, invalid polygons and unknown codes are
reported, and a flipped sign is pointed out but not flipped back.

Re-running an import adds nothing (each report keeps its source and source key), and rows that
are identical in every mapped value are imported as distinct records (two victims of one blast
look identical) and listed in the report, never silently dropped.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from safeground.domain.errors import Problem, RuleViolation, ValidationFailed
from safeground.domain.geometry import geometries_acceptable
from safeground.domain.records import RECORD_TYPES, Record, to_payloads
from safeground.domain.reports import Operation, build_record
from safeground.io.mapping import Mapping, Region, code_key, is_missing, placed, spec_value
from safeground.io.readers import InputTable, ReadFailed, missing_columns_reason, read_input
from safeground.service.register import Register, Submission
from safeground.storage.reportlog import reports_by_source

SHOWN_PROBLEMS = 20
SHOWN_EXAMPLES = 5


@dataclass(frozen=True)
class RowProblem:
    """Why one row (or a whole file, when ``row`` is None) cannot be imported."""

    file: str
    row: int | None
    field: str | None
    reason: str

    def where(self) -> str:
        return self.file if self.row is None else f"{self.file} row {self.row}"

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did; ``summary()`` says it in a few lines for a person."""

    source: str
    mapping: str
    files: list[str]
    import_batch: str | None = None
    rows_read: int = 0
    imported: int = 0
    already_imported: int = 0
    duplicate_groups: int = 0
    duplicate_rows: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    rejected_rows: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    rejects_files: list[Path] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        files = self.files[0] if len(self.files) == 1 else f"{len(self.files)} files"
        lines = [f"Import of {files} with mapping {self.mapping} (source {self.source})"]
        if self.import_batch:
            lines.append(f"  batch {self.import_batch}")
        lines.append(f"  {counted(self.rows_read, 'row')} read")
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(self.by_type.items()))
        lines.append(f"  {self.imported} imported" + (f" ({kinds})" if kinds else ""))
        lines.append(f"  {self.already_imported} already imported (skipped)")
        if self.duplicate_groups:
            lines.append(
                f"  {self.duplicate_rows} rows in {self.duplicate_groups} groups of identical rows "
                f"({self.duplicate_rows - self.duplicate_groups} beyond the first of each group), "
                "imported as separate records; for example:"
            )
            lines += [f"    {example}" for example in self.duplicate_examples]
        else:
            lines.append("  no identical rows")
        if self.rejected_rows:
            where = ", ".join(str(p) for p in self.rejects_files)
            lines.append(
                f"  {counted(self.rejected_rows, 'row')} rejected "
                f"({counted(len(self.rejected), 'problem')})"
                + (f", written to {where}" if where else "")
                + ":"
            )
            lines += shown_problems(self.rejected, "    ")
        else:
            lines.append("  no rows rejected")
        return "\n".join(lines)


class ImportFailed(ValidationFailed):
    """Rows (or files) that cannot be imported; nothing was written."""

    def __init__(self, problems: list[RowProblem], report: ImportReport | None = None):
        self.row_problems = problems
        self.report = report
        super().__init__([_as_problem(p) for p in problems])
        rows = {(p.file, p.row) for p in problems if p.row is not None}
        head = "nothing was imported:"
        if rows:
            head = (
                f"{counted(len(rows), 'row')} cannot be imported "
                f"({counted(len(problems), 'problem')}); nothing was imported "
                "(use skip_invalid / --skip-invalid to import the rest):"
            )
        self.args = ("\n".join([head, *shown_problems(problems, "  ")]),)


def counted(n: int, noun: str) -> str:
    """``1 row``, ``2 rows``: a count with its noun, for summaries."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def shown_problems(problems: Sequence[RowProblem], indent: str) -> list[str]:
    """The first SHOWN_PROBLEMS problems, a line each, and how many more there are."""
    lines = [f"{indent}{p}" for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"{indent}... and {len(problems) - SHOWN_PROBLEMS} more")
    return lines


def _as_problem(p: RowProblem) -> Problem:
    where = p.file if p.row is None else f"{p.file} row {p.row}"
    return Problem(p.field, p.reason, where)


@dataclass
class _Row:
    """One input row on its way in."""

    table: InputTable
    index: int  # 0-based position in the file
    key: str
    record_type: str | None = None
    date_of_information: date | None = None
    values: dict[str, Any] = field(default_factory=dict)
    signature: tuple[Any, ...] = ()
    record: Record | None = None
    # A row of a clean combination: the record the combination validated (before the row's
    # geometry), and the fields the row's geometry went to, so the payload is encoded in bulk.
    template: Record | None = None
    placed: dict[str, BaseGeometry] = field(default_factory=dict)
    record_id: str | None = None
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.index + 1

    def problem(self, field_name: str | None, reason: str) -> None:
        self.problems.append(RowProblem(self.table.name, self.number, field_name, reason))


def import_file(
    register: Register,
    path: Path,
    mapping: Mapping,
    user: str,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
) -> ImportReport:
    """Import one file; see ``import_many``."""
    return import_many(register, [path], mapping, user, skip_invalid=skip_invalid, rejects=rejects)


def import_many(
    register: Register,
    paths: list[Path],
    mapping: Mapping,
    user: str,
    *,
    skip_invalid: bool = False,
    rejects: Path | None = None,
    after_import: Callable[[Connection, ImportReport], None] | None = None,
) -> ImportReport:
    """Import files as one atomic batch: everything valid lands, or nothing does.

    With invalid rows and ``skip_invalid`` False, raise ImportFailed and write nothing. With
    ``skip_invalid``, write the rejected rows with their reasons to ``rejects`` (default: a
    ``<name>.rejects.csv`` next to each input) and import the rest. ``after_import`` runs
    inside the filing transaction with the finished report (the command line's audit entry
    lands with the rows).
    """
    with _collections_paused():
        return _import(register, paths, mapping, user, skip_invalid, rejects, after_import)


@contextmanager
def _collections_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the length of one import.

    A bulk import creates hundreds of thousands of small long-lived objects (rows, records,
    reports), and each full collection walks all of them again: a third of the import's time
    on the Colombian files. The objects are freed as usual by reference counting; cycles wait
    for the end of the import.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import(
    register: Register,
    paths: list[Path],
    mapping: Mapping,
    user: str,
    skip_invalid: bool,
    rejects: Path | None,
    after_import: Callable[[Connection, ImportReport], None] | None,
) -> ImportReport:
    tables = [_read(Path(p), mapping) for p in paths]
    report = ImportReport(mapping.source, mapping.name, [t.name for t in tables])
    report.rows_read = sum(len(t) for t in tables)
    with register.store.begin() as conn:
        existing = reports_by_source(conn, mapping.source)
    rows = _prepare(tables, mapping, existing, report)
    invalid = [r for r in rows if r.problems]
    if invalid and not skip_invalid:
        raise ImportFailed([p for r in invalid for p in r.problems], report)
    valid = [r for r in rows if not r.problems]
    _find_duplicates(valid, report)
    written: list[Path] = []
    try:
        while True:
            written = _write_rejects(invalid, rejects, written)
            report.rejected_rows = len(invalid)
            report.rejected = [p for r in invalid for p in r.problems]
            report.rejects_files = written
            try:
                _file(register, valid, mapping, user, report, after_import)
                break
            except (RuleViolation, ValidationFailed) as exc:
                # The register's rules refused rows (a reference to a missing record...): say
                # which; with skip_invalid, reject them too and file the rest in a new attempt.
                refused, other = _refused_rows(exc, valid)
                if other or not skip_invalid:
                    problems = [p for r in refused for p in r.problems] + other
                    raise ImportFailed(problems, report) from None
                invalid += refused
                valid = [r for r in valid if not r.problems]
                _find_duplicates(valid, report)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return report


def _read(path: Path, mapping: Mapping) -> InputTable:
    try:
        table = read_input(path, mapping.format)
    except ReadFailed as exc:
        raise ImportFailed([RowProblem(exc.file, None, None, exc.reason)]) from None
    missing = [c for c in mapping.columns() if c not in table.frame.columns]
    if missing:
        reason = missing_columns_reason(missing, table.frame)
        raise ImportFailed([RowProblem(table.name, None, None, reason)])
    return table


# -- checking rows ------------------------------------------------------------------------------


def _prepare(
    tables: list[InputTable], mapping: Mapping, existing: dict[str, str], report: ImportReport
) -> list[_Row]:
    """Map and validate every row not imported before; problems stay on each row.

    Column by column: each distinct combination of the mapped columns' values is mapped and
    validated once (``_Combination``), and geometries are checked in vectorised calls. A row
    that any of this finds fault with is checked again on its own by ``_check_row``, whose
    messages name the file, row, field and reason.
    """
    rows: list[_Row] = []
    seen: dict[str, _Row] = {}
    # Identical rows (thousands in real data) are validated once: records are immutable.
    checked: dict[tuple[Any, ...], tuple[Record | None, list[Problem]]] = {}
    combinations: dict[tuple[Any, ...], _Combination] = {}
    for table in tables:
        outside = _outside_region(table, mapping.region)
        # Geometries as WKB in one vectorised call: part of each row's duplicate signature.
        geoms = np.array(table.geometry, dtype=object)
        wkb = shapely.to_wkb(geoms).tolist()
        keys = _key_cells(mapping, table)
        combination_of = _combinations(mapping, table, combinations)
        acceptable = _acceptable(geoms, combination_of)
        slow: list[_Row] = []
        for index in range(len(table)):
            row = _Row(table, index, "")
            row.key = _source_key(mapping, row, keys[index])
            if row.key in existing:
                report.already_imported += 1
                continue
            first = seen.get(row.key)
            if first is not None:
                row.problem(
                    "key",
                    f"source key {row.key!r} repeats {first.table.name} row {first.number}",
                )
            else:
                seen[row.key] = row
            combination = combination_of[index]
            geometry = table.geometry[index]
            fast = (
                not row.problems
                and acceptable[index]
                and index not in outside
                and index not in table.geometry_problems
                and combination.record_for(geometry) is not None
            )
            if fast:
                combination.fill(row, geometry, None if geometry is None else wkb[index])
            else:
                slow.append(row)
            rows.append(row)
        cells = _cells(table, [r.index for r in slow])
        for row in slow:
            _check_row(mapping, row, cells[row.index], outside, checked, wkb[row.index])
    return rows


class _Combination:
    """One distinct combination of a file's mapped values (all but key and geometry).

    Mapped and validated once for every row that has it; each row then adds its geometry,
    already checked in a vectorised call. Only the record's geometry checks depend on the
    geometry's coordinates, so one validation with a geometry that passes them holds for all.
    """

    def __init__(self, mapping: Mapping, cells: dict[str, Any]):
        self.record_type = mapping.choose_type(cells)[0]
        self.clean = self.record_type is not None
        self.target: str | None = None
        self.date: date | None = None
        self.values: dict[str, Any] = {}
        self.signature: tuple[Any, ...] = ()
        self._records: dict[bool, Record | None] = {}
        self._placement: tuple[str, bool] | None = None
        if self.record_type is None:
            return
        self._placement = mapping.geometry_placement(self.record_type)
        try:
            self.date = _as_date(spec_value(mapping.date_of_information, cells))
        except ValueError:
            self.clean = False
            return
        self.values, problems = mapping.map_row(self.record_type, cells, None)
        self.clean = not problems
        self.target = mapping.geometry_field(self.record_type)
        self.signature = tuple(sorted((k, _hashable(v)) for k, v in self.values.items()))

    def record_for(self, geometry: BaseGeometry | None) -> Record | None:
        """The validated record for a row with (a checked) or without a geometry, or None."""
        if not self.clean or self.record_type is None:
            return None
        present = geometry is not None and self.target is not None
        if present not in self._records:
            values = dict(self.values)
            if present:
                values.update(placed(self._placement, geometry))
            try:
                self._records[present] = build_record(self.record_type, values)
            except ValidationFailed:
                self._records[present] = None
        return self._records[present]

    def fill(self, row: _Row, geometry: BaseGeometry | None, wkb: bytes | None) -> None:
        record = self.record_for(geometry)
        assert record is not None
        row.values, row.template = self.values, record
        if geometry is not None and self.target is not None:
            row.placed = placed(self._placement, geometry)
            record = record.model_copy(update=row.placed)
            row.values = {**self.values, **row.placed}
        row.record_type, row.date_of_information, row.record = self.record_type, self.date, record
        row.signature = (self.record_type, self.date, self.signature, wkb)


def _combinations(
    mapping: Mapping, table: InputTable, known: dict[tuple[Any, ...], _Combination]
) -> list[_Combination]:
    """Each row's combination of mapped values, built once per distinct combination."""
    columns = mapping.value_columns()
    if not columns:
        if () not in known:
            known[()] = _Combination(mapping, {})
        return [known[()]] * len(table)
    if not len(table):
        return []
    # One code per distinct combination, folded in column by column (and kept below the row
    # count, so it never overflows): a 1-D np.unique, much cheaper than one over rows.
    combined = np.zeros(len(table), dtype=np.int64)
    for column in columns:
        codes = _distinct_codes(table.frame[column])
        combined = pd.factorize(combined * (int(codes.max()) + 1) + codes)[0]
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    picked = table.frame[columns].iloc[first]
    names = [str(c) for c in columns]
    found = []
    for values in zip(*(picked[c].tolist() for c in columns), strict=True):
        cells = dict(zip(names, values, strict=True))
        key = tuple(_cell_key(v) for v in values)
        try:
            combination: _Combination | None = known.get(key)
            if combination is None:
                combination = known[key] = _Combination(mapping, cells)
        except TypeError:  # an unhashable cell (a list from JSON): not shared with other files
            combination = _Combination(mapping, cells)
        found.append(combination)
    return [found[i] for i in inverse.ravel()]


def _cell_key(value: Any) -> tuple[Any, ...]:
    """A cell as a dictionary key: equal only for the same value of the same type.

    Floats go by their text, so that -0.0 and 0.0 stay apart and every NaN is one value.
    """
    return (type(value), repr(value) if isinstance(value, float) else value)


def _distinct_codes(column: pd.Series) -> np.ndarray:
    """A code per row, equal only for cells with the same value of the same type."""
    if column.dtype.kind == "f":
        # By bit pattern: -0.0 and 0.0 stay apart, and NaN is one value.
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.factorize(values.view(np.int64))[0]
    if column.dtype == object:
        keyed = [_cell_key(v) for v in column]
        try:
            return pd.factorize(pd.Series(keyed, dtype=object), use_na_sentinel=False)[0]
        except TypeError:  # unhashable cells (lists from JSON): every row on its own
            return np.arange(len(column))
    return pd.factorize(column, use_na_sentinel=False)[0]


def _acceptable(geoms: np.ndarray, combinations: list[_Combination]) -> np.ndarray:
    """Rows whose geometry (if any) passes the record's geometry checks, in vectorised calls."""
    expected = [_expected_types(c) for c in combinations]
    ok = np.ones(len(geoms), dtype=bool)
    for kinds in {e for e in expected if e is not None}:
        rows = np.array([e == kinds for e in expected], dtype=bool) & ~shapely.is_missing(geoms)
        ok[rows] = geometries_acceptable(geoms[rows], kinds)
    return ok


def _expected_types(combination: _Combination) -> tuple[str, ...] | None:
    """The geometry types the record accepts where the input geometry goes (as it checks)."""
    if combination.record_type is None or combination.target is None:
        return None
    if combination.target == "geometry":
        return RECORD_TYPES[combination.record_type].geometry_types
    return ("Point",)


def _key_cells(mapping: Mapping, table: InputTable) -> list[dict[str, Any]]:
    if not mapping.key:
        return [{}] * len(table)
    return [{str(k): v for k, v in r.items()} for r in table.frame[mapping.key].to_dict("records")]


def _cells(table: InputTable, indices: list[int]) -> dict[int, dict[str, Any]]:
    """Rows' cells by column name, as ``_check_row`` reads them."""
    if not indices:
        return {}
    records = table.frame.iloc[indices].to_dict("records")
    return {i: {str(k): v for k, v in r.items()} for i, r in zip(indices, records, strict=True)}


def _outside_region(table: InputTable, region: Region | None) -> set[int]:
    """Rows whose lon/lat geometry leaves the region (all rows checked at once)."""
    if region is None or not table.geometry:
        return set()
    geoms = np.array(table.geometry, dtype=object)
    present = np.array([g is not None and not g.is_empty for g in table.geometry], dtype=bool)
    bounds = np.full((len(geoms), 4), np.nan)
    if present.any():
        bounds[present] = shapely.bounds(geoms[present].tolist())
    minx, miny, maxx, maxy = bounds.T
    lon_lat = (minx >= -180) & (maxx <= 180) & (miny >= -90) & (maxy <= 90)
    bx0, by0, bx1, by1 = region.bbox
    inside = (minx >= bx0) & (maxx <= bx1) & (miny >= by0) & (maxy <= by1)
    return {int(i) for i in np.flatnonzero(present & lon_lat & ~inside)}


def _source_key(mapping: Mapping, row: _Row, cells: dict[Any, Any]) -> str:
    """Key columns' values joined by "|", or file name and row number (the default)."""
    if not mapping.key:
        return f"{row.table.name}#{row.number}"
    parts = []
    for column in mapping.key:
        value = cells.get(column)
        if is_missing(value):
            row.problem("key", f"key column {column} is empty")
            return f"{row.table.name}#{row.number}"
        parts.append(code_key(value))
    return "|".join(parts)


def _check_row(
    mapping: Mapping,
    row: _Row,
    cells: dict[str, Any],
    outside: set[int],
    checked: dict[tuple[Any, ...], tuple[Record | None, list[Problem]]],
    wkb: bytes | None,
) -> None:
    record_type, why = mapping.choose_type(cells)
    if record_type is None:
        row.problem("record_type", why or "no record type")
        return
    row.record_type = record_type
    try:
        row.date_of_information = _as_date(spec_value(mapping.date_of_information, cells))
    except ValueError as exc:
        row.problem("date_of_information", str(exc))
    target = mapping.geometry_field(record_type) or "geometry"
    geometry = row.table.geometry[row.index]
    coordinate_problem = row.table.geometry_problems.get(row.index)
    if coordinate_problem is not None:
        row.problem(target, coordinate_problem)
        geometry = None
    elif row.index in outside and mapping.region is not None and geometry is not None:
        row.problem(target, region_problem(mapping.region, geometry) or "outside the region")
    values, problems = mapping.map_row(record_type, cells, geometry)
    row.values = values
    for name, reason in problems:
        row.problem(name, reason)
    row.signature = _signature(row, None if geometry is None else wkb)
    if row.signature not in checked:
        try:
            checked[row.signature] = (build_record(record_type, values), [])
        except ValidationFailed as exc:
            checked[row.signature] = (None, exc.problems)
    row.record, invalid = checked[row.signature]
    flagged = {p.field for p in row.problems}
    for p in invalid:
        top = (p.field or "").split(".")[0]
        if top in flagged or (top == "geometry" and target in flagged):
            continue  # already said why, in the mapping's terms
        row.problem(p.field, p.reason + _column_hint(mapping, record_type, top, cells))


def _signature(row: _Row, wkb: bytes | None) -> tuple[Any, ...]:
    """Everything mapped from a row: equal signatures mean identical rows.

    The input geometry counts by its WKB; the fields it went to are fixed by the mapping.
    """
    values = tuple(
        sorted((k, _hashable(v)) for k, v in row.values.items() if not isinstance(v, BaseGeometry))
    )
    return (row.record_type, row.date_of_information, values, wkb)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if value is None:
        raise ValueError("empty: every report needs a date of information")
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{value!r} is not a date") from None


def _column_hint(mapping: Mapping, record_type: str, name: str, cells: dict[str, Any]) -> str:
    spec = mapping.records[record_type].get(name)
    if spec is None or spec.column is None:
        return ""
    value = cells.get(spec.column)
    if is_missing(value):
        return f" (column {spec.column} is empty)"
    return f" (column {spec.column} = {value!r})"


_FLIPS = (
    ("probably a flipped sign of the longitude", lambda x, y: (-x, y)),
    ("probably a flipped sign of the latitude", lambda x, y: (x, -y)),
    ("probably flipped signs of both coordinates", lambda x, y: (-x, -y)),
    ("probably longitude and latitude swapped", lambda x, y: (y, x)),
)


def region_problem(region: Region, geom: BaseGeometry) -> str | None:
    """Why ``geom`` is not where the data must lie, with a hint when a sign looks flipped."""
    if geom.is_empty or region.contains(geom):
        return None
    outside = f"{_describe(geom)} lies outside the region {region.name} {list(region.bbox)}"
    for hint, flip in _FLIPS:
        moved = shapely.transform(geom, lambda xy, f=flip: _apply(f, xy))
        if region.contains(moved):
            return f"{outside}: {hint} ({_describe(moved)} would be inside); not changed"
    return outside


def _apply(flip: Any, xy: Any) -> Any:
    x, y = flip(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def _describe(geom: BaseGeometry) -> str:
    if geom.geom_type == "Point":
        return f"point ({geom.x:.10g}, {geom.y:.10g})"
    minx, miny, maxx, maxy = geom.bounds
    return f"{geom.geom_type} with bounds ({minx:.8g}, {miny:.8g}, {maxx:.8g}, {maxy:.8g})"


def _find_duplicates(rows: list[_Row], report: ImportReport) -> None:
    """Groups of rows identical in every mapped value and geometry (all are imported)."""
    groups: dict[tuple[Any, ...], list[_Row]] = defaultdict(list)
    for row in rows:
        groups[row.signature].append(row)
    found = [g for g in groups.values() if len(g) > 1]
    report.duplicate_groups = len(found)
    report.duplicate_rows = sum(len(g) for g in found)
    report.duplicate_examples = [_rows_text(g) for g in found[:SHOWN_EXAMPLES]]


def _hashable(value: Any) -> Any:
    if isinstance(value, BaseGeometry):
        return value.wkb
    if isinstance(value, str | int | float | date):
        return value
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def _rows_text(rows: list[_Row], shown: int = 8) -> str:
    by_file: dict[str, list[str]] = defaultdict(list)
    for row in rows[:shown]:
        by_file[row.table.name].append(str(row.number))
    text = "; ".join(
        f"{name} row{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"
        for name, numbers in by_file.items()
    )
    return text + (f" (and {len(rows) - shown} more)" if len(rows) > shown else "")


# -- writing ------------------------------------------------------------------------------------


def _file(
    register: Register,
    rows: list[_Row],
    mapping: Mapping,
    user: str,
    report: ImportReport,
    after_import: Callable[[Connection, ImportReport], None] | None,
) -> None:
    """File every row in one transaction: one Register.file call, or nothing at all."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    batch = f"{mapping.source}/{stamp}/{uuid.uuid4().hex[:8]}"
    with register.store.begin() as conn:
        # Again inside the write transaction: another import may have landed meanwhile. And
        # one import of a source at a time: on PostgreSQL, the same file imported twice at once
        # would otherwise find nothing of the other's, and land twice.
        register.store.one_at_a_time(conn, f"import {mapping.source}")
        existing = reports_by_source(conn, mapping.source)
        todo = [r for r in rows if r.key not in existing]
        if todo:
            ids = _allocate_ids(register, conn, todo)
            for row, record_id in zip(todo, ids, strict=True):
                row.record_id = record_id
            name, source = mapping.name, mapping.source  # pydantic attributes: read once
            payloads = _payloads(todo)
            items = [_submission(r, name, source, p) for r, p in zip(todo, payloads, strict=True)]
            files = ", ".join(report.files[:3]) + (" ..." if len(report.files) > 3 else "")
            approval = register.file(
                user,
                items,
                reason=f"import of {len(items)} rows from {files} with mapping {mapping.name}",
                import_batch=batch,
                conn=conn,
            )
            report.import_batch = batch
            report.notices = approval.notices
        report.already_imported += len(rows) - len(todo)
        report.imported = len(todo)
        report.record_ids = [str(r.record_id) for r in todo]
        counts: dict[str, int] = defaultdict(int)
        for r in todo:
            counts[str(r.record_type)] += 1
        report.by_type = dict(counts)
        if after_import is not None:
            after_import(conn, report)


def _allocate_ids(register: Register, conn: Connection, rows: list[_Row]) -> list[str]:
    """Record IDs reserved in one statement per (type, year), not one per row."""
    country = str(register.store.settings(conn)["country"])
    prefixes = []
    for row in rows:
        assert row.record_type is not None and row.date_of_information is not None
        code = RECORD_TYPES[row.record_type].id_code
        prefixes.append((country, code, row.date_of_information.year))
    reserved = register.reserve_ids(conn, Counter(prefixes))
    return [next(reserved[prefix]) for prefix in prefixes]


def _payloads(rows: list[_Row]) -> list[dict[str, Any] | None]:
    """Each row's report payload (``to_payloads`` of its record): its combination's record
    encoded once, all of them in one bulk call, with the row's geometry put in; None for a row
    checked on its own (the register encodes its record).

    Encoding the 30,865 records of the Colombian files one by one in bulk cost three times as
    much as encoding their 7,926 combinations; one call per combination cost as much again.
    """
    templates = {id(r.template): r.template for r in rows if r.template is not None}
    encoded = dict(zip(templates, to_payloads(list(templates.values())), strict=True))
    payloads = [None if r.template is None else encoded[id(r.template)] for r in rows]
    placed = [(i, name, g) for i, r in enumerate(rows) for name, g in r.placed.items()]
    geometries = np.empty(len(placed), dtype=object)
    geometries[:] = [g for _, _, g in placed]
    for (i, name, _), hex_wkb in zip(placed, shapely.to_wkb(geometries, hex=True), strict=True):
        payload = payloads[i]
        assert payload is not None
        payloads[i] = {**payload, name: hex_wkb}
    return payloads


def _submission(
    row: _Row, mapping_name: str, source: str, payload: dict[str, Any] | None
) -> Submission:
    assert row.record is not None and row.record_type is not None
    assert row.date_of_information is not None
    return Submission(
        record_type=row.record_type,
        changes=row.values,
        date_of_information=row.date_of_information,
        record_id=row.record_id,
        operation=Operation.CREATE,
        reason=f"imported from {row.table.name} row {row.number} (mapping {mapping_name})",
        source=source,
        source_key=row.key,
        record=row.record,
        payload=payload,
    )


def _refused_rows(exc: ValidationFailed, rows: list[_Row]) -> tuple[list[_Row], list[RowProblem]]:
    """Rows named by the register's refusal (each given its reason), and unplaced problems."""
    by_id = {r.record_id: r for r in rows if r.record_id}
    refused: dict[int, _Row] = {}
    other: list[RowProblem] = []
    for p in exc.problems:
        row = by_id.get(p.record or "")
        if row is None:
            other.append(RowProblem("register", None, p.field, f"{p.record}: {p.reason}"))
            continue
        row.problem(p.field, f"refused by the register: {p.reason}")
        refused[id(row)] = row
    return list(refused.values()), other


def _write_rejects(rows: list[_Row], rejects: Path | None, previous: list[Path]) -> list[Path]:
    """Rejected rows with their original columns and ``_file, _row, _field, _reason``."""
    for path in previous:
        path.unlink(missing_ok=True)
    if not rows:
        return []
    by_table: dict[int, list[_Row]] = defaultdict(list)
    tables: dict[int, InputTable] = {}
    for row in rows:
        by_table[id(row.table)].append(row)
        tables[id(row.table)] = row.table
    frames = {key: _rejects_frame(tables[key], found) for key, found in by_table.items()}
    if rejects is not None:
        targets = {rejects: pd.concat(list(frames.values()), ignore_index=True)}
    else:
        targets = {
            tables[key].path.with_name(f"{tables[key].path.stem}.rejects.csv"): frame
            for key, frame in frames.items()
        }
    written: list[Path] = []
    for path, frame in targets.items():
        try:
            frame.to_csv(path, index=False)
        except OSError as exc:
            for done in written:
                done.unlink(missing_ok=True)
            reason = f"cannot write the rejects file {path}: {exc.strerror or exc}"
            raise ImportFailed([RowProblem(path.name, None, None, reason)]) from None
        written.append(path)
    return written


def _rejects_frame(table: InputTable, rows: list[_Row]) -> pd.DataFrame:
    frame = table.frame.iloc[[r.index for r in rows]].copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(_cell_text)
    if table.original_geometry is not None:
        frame["_geometry"] = [
            None if g is None else g.wkt for g in (table.original_geometry[r.index] for r in rows)
        ]
    frame["_file"] = table.name
    frame["_row"] = [r.number for r in rows]
    frame["_field"] = ["; ".join(str(p.field or "") for p in r.problems) for r in rows]
    frame["_reason"] = ["; ".join(p.reason for p in r.problems) for r in rows]
    return frame.reset_index(drop=True)


def _cell_text(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value
