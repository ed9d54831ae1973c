"""Mapped imports: every row validated, everything filed in one transaction.

An import is atomic: the rows of all files are filed in one transaction (``Filing``), so either
everything valid lands or nothing does. Every problem is collected, named by file, row, field
and reason, and with any problem (unless skipped) nothing is written. Nothing is repaired:
coordinates outside the declared region, invalid polygons and unknown codes are reported, and a
flipped sign is pointed out but not flipped back.

Each file is prepared (read, mapped, validated) into a ``_Part``; with several files a forked
worker prepares files while this process files each part as it comes (``_prepared``).

Re-running an import adds nothing (each report keeps its source and source key), and rows that
are identical in every mapped value are imported as distinct records (two victims of one blast
look identical) and listed in the report, never silently dropped.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import queue
import sys
import threading
import traceback
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
from safeground.service.register import (
    Filing,
    NewRecords,
    Register,
    Submission,
    filed_in_columns,
    submission_positions,
)
from safeground.storage.reportlog import reports_by_source
from safeground.storage.rows import record_columns

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
    # Everything mapped from the row but its geometry (record type, date, sorted values), and
    # its input geometry's WKB: rows equal in both are identical.
    head: tuple[Any, ...] = ()
    wkb: bytes | None = None
    record: Record | None = None
    # A row of a clean combination: the record the combination validated (before the row's
    # geometry), and the field the row's geometry goes to, so the record is made, and its
    # payload encoded, only from these (``built``, ``_new_records``).
    template: Record | None = None
    placed: dict[str, BaseGeometry] = field(default_factory=dict)
    record_id: str | None = None
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.index + 1

    def base(self) -> Record:
        """The record the row's own is made from: its combination's, or its own."""
        found = self.template if self.record is None else self.record
        assert found is not None
        return found

    def built(self) -> Record:
        """The row's record: checked on its own, or its combination's with its geometry."""
        if self.record is None:
            self.record = self.base().model_copy(update=self.placed)
        return self.record

    def changes(self) -> dict[str, Any]:
        return {**self.values, **self.placed} if self.placed else self.values

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
    parallel: bool | None = None,
) -> ImportReport:
    """Import files as one atomic batch: everything valid lands, or nothing does.

    With invalid rows and ``skip_invalid`` False, raise ImportFailed and write nothing. With
    ``skip_invalid``, write the rejected rows with their reasons to ``rejects`` (default: a
    ``<name>.rejects.csv`` next to each input) and import the rest. ``after_import`` runs
    inside the filing transaction with the finished report (the command line's audit entry
    lands with the rows). ``parallel``: whether a second process prepares the files while this
    one writes them (by default, for several files when this process can fork safely).
    """
    worker = _worker_wanted(len(paths), parallel)
    refused: dict[tuple[int, int], list[tuple[str | None, str]]] = {}
    with _collections_paused():
        while True:
            try:
                return _import(
                    register,
                    [Path(p) for p in paths],
                    mapping,
                    user,
                    _Options(skip_invalid, rejects, after_import, worker),
                    refused,
                )
            except _Refused as exc:
                # The register's rules refused rows (a reference to a missing record...): they
                # are rejected too, and the rest imported in a new attempt.
                refused.update(exc.rows)


@dataclass(frozen=True)
class _Options:
    skip_invalid: bool
    rejects: Path | None
    after_import: Callable[[Connection, ImportReport], None] | None
    worker: bool


class _Refused(Exception):
    """Rows the register refused, by (file index, row number), in an import skipping them."""

    def __init__(self, rows: dict[tuple[int, int], list[tuple[str | None, str]]]):
        super().__init__(f"{len(rows)} rows refused by the register")
        self.rows = rows


def _worker_wanted(files: int, parallel: bool | None) -> bool:
    """Whether to prepare the files in a forked process: only on Linux (macOS offers fork but
    its system libraries are not safe across it; Windows has none), with no other thread
    running, and with a second core to run on."""
    if parallel is None:
        parallel = files > 1
    return (
        parallel
        and sys.platform == "linux"
        and threading.active_count() == 1
        and len(os.sched_getaffinity(0)) > 1
    )


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
    options: _Options,
    refused: dict[tuple[int, int], list[tuple[str | None, str]]],
) -> ImportReport:
    """One attempt: prepare each file and file its valid rows, all in one transaction."""
    names = [p.name for p in paths]
    report = ImportReport(mapping.source, mapping.name, names)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    batch = f"{mapping.source}/{stamp}/{uuid.uuid4().hex[:8]}"
    files = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    reason = f"import from {files} with mapping {mapping.name}"
    written: list[Path] = []
    try:
        with register.store.begin() as conn:
            # One import of a source at a time: on PostgreSQL, the same file imported twice at
            # once would otherwise find nothing of the other's, and land twice.
            register.store.one_at_a_time(conn, f"import {mapping.source}")
            existing = set(reports_by_source(conn, mapping.source))
            preparer = _Preparer(mapping, existing, refused)
            filing = Filing(register, conn, user, reason, batch)
            tally = _Tally()
            parts = _file_parts(register, conn, filing, paths, preparer, options, report, tally)
            problems = [p for part in parts for p in part.problems]
            if problems and not options.skip_invalid:
                raise ImportFailed(problems, report)
            filed = [part for part in parts if part.numbers]
            if filed:
                try:
                    report.notices = filing.finish().notices
                except (RuleViolation, ValidationFailed) as exc:
                    raise _refusal(exc, parts, options.skip_invalid, report) from None
                report.import_batch = batch
            tally.report(parts, report)
            written = _write_rejects(parts, options.rejects)
            report.rejects_files = written
            if options.after_import is not None:
                options.after_import(conn, report)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return report


def _file_parts(
    register: Register,
    conn: Connection,
    filing: Filing,
    paths: list[Path],
    preparer: _Preparer,
    options: _Options,
    report: ImportReport,
    tally: _Tally,
) -> list[_Part]:
    """Prepare every file (in a second process with ``options.worker``), filing each one's
    valid rows as it comes; once a row is invalid and not to be skipped, file no more but go
    on collecting every problem.

    On a GeoPackage each file is filed as it comes, while the next is prepared. On PostgreSQL
    the rows wait for the last file: their record IDs are reserved first, all at once, since
    each filing takes the approval counter after the counters of its IDs (see ``Filing``).
    """
    parts: list[_Part] = []
    waiting: list[_Part] = []
    valid_only = True
    one_writer = register.store.dialect == "sqlite"
    country = str(register.store.settings(conn)["country"])
    with _prepared(paths, preparer, options.worker) as prepared:
        for part in prepared:
            parts.append(part)
            report.rows_read += part.rows_read
            report.already_imported += part.already_imported
            valid_only = valid_only and not part.problems
            if not (valid_only or options.skip_invalid):
                continue
            waiting.append(part)
            if one_writer:
                _file_waiting(register, conn, filing, waiting, country)
                waiting = []
            tally.add(part)
    if valid_only or options.skip_invalid:
        _file_waiting(register, conn, filing, waiting, country)
    return parts


def _file_waiting(
    register: Register, conn: Connection, filing: Filing, parts: list[_Part], country: str
) -> None:
    """Give the parts' rows their record IDs (reserved in one statement per prefix), then
    file them."""
    wanted = Counter((country, code, year) for part in parts for code, year in part.prefixes)
    reserved = register.reserve_ids(conn, wanted)
    for part in parts:
        if part.numbers:
            part.give_ids([next(reserved[country, code, year]) for code, year in part.prefixes])
            filing.add(part.items, part.created)


def _refusal(
    exc: ValidationFailed, parts: list[_Part], skip_invalid: bool, report: ImportReport
) -> Exception:
    """The rows the register refused, as the error to raise: ImportFailed, or with
    ``skip_invalid`` (and every problem placed on a row) _Refused, to import the rest."""
    by_id = {
        record_id: (part, number)
        for part in parts
        for record_id, number in zip(part.record_ids, part.numbers, strict=True)
    }
    refused: dict[tuple[int, int], list[tuple[str | None, str]]] = defaultdict(list)
    problems: list[RowProblem] = []
    other: list[RowProblem] = []
    for p in exc.problems:
        found = by_id.get(p.record or "")
        if found is None:
            other.append(RowProblem("register", None, p.field, f"{p.record}: {p.reason}"))
            continue
        part, number = found
        reason = f"refused by the register: {p.reason}"
        refused[part.index, number].append((p.field, reason))
        problems.append(RowProblem(part.path.name, number, p.field, reason))
    if other or not skip_invalid:
        return ImportFailed(problems + other, report)
    return _Refused(dict(refused))


class _Tally:
    """What the report says of the valid rows, gathered part by part (this process does it
    while the worker prepares the next part, not after the last)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.groups: dict[tuple[int, bytes | None], list[tuple[str, int]]] = defaultdict(list)
        self.heads: dict[tuple[Any, ...], int] = {}  # the same in every part, wherever prepared

    def add(self, part: _Part) -> None:
        for record_type in part.record_types:
            self.counts[record_type] += 1
        ids = [self.heads.setdefault(head, len(self.heads)) for head in part.heads]
        groups, name = self.groups, part.path.name
        for head, wkb, number in zip(part.row_heads, part.wkbs, part.numbers, strict=True):
            groups[ids[head], wkb].append((name, number))

    def report(self, parts: list[_Part], report: ImportReport) -> None:
        report.imported = sum(len(part.numbers) for part in parts)
        report.record_ids = [i for part in parts for i in part.record_ids]
        report.by_type = dict(self.counts)
        found = [g for g in self.groups.values() if len(g) > 1]
        report.duplicate_groups = len(found)
        report.duplicate_rows = sum(len(g) for g in found)
        report.duplicate_examples = [_rows_text(g) for g in found[:SHOWN_EXAMPLES]]
        report.rejected = [p for part in parts for p in part.problems]
        report.rejected_rows = sum(part.invalid_rows for part in parts)


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


class _Preparer:
    """Maps and validates files one after the other, remembering across them what an import
    must: source keys seen, identical rows, combinations of values validated already."""

    def __init__(
        self,
        mapping: Mapping,
        existing: set[str],
        refused: dict[tuple[int, int], list[tuple[str | None, str]]],
    ):
        self.mapping, self.existing, self.refused = mapping, existing, refused
        # Identical rows (thousands in real data) are validated once: records are immutable.
        self.checked: dict[tuple[Any, ...], tuple[Record | None, list[Problem]]] = {}
        self.combinations: dict[tuple[Any, ...], _Combination] = {}

    def prepare(self, index: int, path: Path, seen: dict[str, tuple[str, int]]) -> _Part:
        """The file's part. ``seen``: source keys of the rows before (file name and row number
        of the first), to which the file's are added."""
        table = _read(path, self.mapping)
        rows, already = self._rows(table, seen)
        for row in rows:
            for field_name, reason in self.refused.get((index, row.number), []):
                row.problem(field_name, reason)
        return self._part(index, table, rows, already)

    def _rows(self, table: InputTable, seen: dict[str, tuple[str, int]]) -> tuple[list[_Row], int]:
        """Map and validate every row not imported before; problems stay on each row. Also
        returns how many rows were imported before.

        Column by column: each distinct combination of the mapped columns' values is mapped and
        validated once (``_Combination``), and geometries are checked in vectorised calls. A
        row that any of this finds fault with is checked again on its own by ``_check_row``,
        whose messages name the file, row, field and reason.
        """
        mapping = self.mapping
        rows: list[_Row] = []
        already = 0
        outside = _outside_region(table, mapping.region)
        # Geometries as WKB in one vectorised call: what, with its head, makes a row identical.
        geoms = np.array(table.geometry, dtype=object)
        wkb = shapely.to_wkb(geoms).tolist()
        keys = _key_cells(mapping, table)
        combination_of = _combinations(mapping, table, self.combinations)
        acceptable = _acceptable(geoms, combination_of)
        slow: list[_Row] = []
        for index in range(len(table)):
            row = _Row(table, index, "")
            row.key = _source_key(mapping, row, keys[index])
            if row.key in self.existing:
                already += 1
                continue
            first = seen.get(row.key)
            if first is not None:
                row.problem("key", f"source key {row.key!r} repeats {first[0]} row {first[1]}")
            else:
                seen[row.key] = (table.name, row.number)
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
            _check_row(mapping, row, cells[row.index], outside, self.checked, wkb[row.index])
        return rows, already

    def _part(self, index: int, table: InputTable, rows: list[_Row], already: int) -> _Part:
        """The rows as a ``_Part``: new records of most types column by column, the rest as
        submissions."""
        valid = [r for r in rows if not r.problems]
        invalid = [r for r in rows if r.problems]
        part = _Part(index, table.path, len(table), already)
        part.problems = [p for r in invalid for p in r.problems]
        part.invalid_rows = len(invalid)
        part.rejects = _rejects_frame(table, invalid) if invalid else None
        part.keys = [(r.key, r.number) for r in rows]
        part.numbers = [r.number for r in valid]
        heads: dict[int, int] = {}  # by identity: rows of one combination share their head
        for r in valid:
            if id(r.head) not in heads:
                heads[id(r.head)] = len(part.heads)
                part.heads.append(r.head)
        part.row_heads = [heads[id(r.head)] for r in valid]
        part.wkbs = [r.wkb for r in valid]
        part.record_types = [str(r.record_type) for r in valid]
        part.prefixes = [
            (RECORD_TYPES[str(r.record_type)].id_code, _date_of(r).year) for r in valid
        ]
        by_type: dict[str, list[int]] = defaultdict(list)
        items: list[_Row] = []
        for position, row in enumerate(valid):
            record_type = str(row.record_type)
            if filed_in_columns(record_type) and set(row.placed) <= {"geometry"}:
                by_type[record_type].append(position)
            else:
                items.append(row)
        name, source = self.mapping.name, self.mapping.source  # pydantic attributes: read once
        part.created = [
            _new_records(record_type, [valid[p] for p in positions], positions, name, source)
            for record_type, positions in by_type.items()
        ]
        part.items = _submissions(items, name, source)
        return part


@dataclass
class _Part:
    """One file's rows, mapped and validated: what the process preparing files sends back.

    Columns and plain values: sending a record object per row back from a second process cost
    more than preparing it (pickling the records of 28,897 rows took 0.42 s, and 0.36 s to load).
    """

    index: int  # the file's place among the import's
    path: Path
    rows_read: int
    already_imported: int
    problems: list[RowProblem] = field(default_factory=list)  # of the invalid rows, in order
    invalid_rows: int = 0
    rejects: pd.DataFrame | None = None  # the invalid rows as the rejects file shows them
    keys: list[tuple[str, int]] = field(default_factory=list)  # every row's, with its number
    # The valid rows, in file order: number, what makes rows identical (the row's head, one of
    # ``heads``, and its geometry's WKB), record type, record ID type code and year, and ID
    # (``give_ids``).
    numbers: list[int] = field(default_factory=list)
    heads: list[tuple[Any, ...]] = field(default_factory=list)
    row_heads: list[int] = field(default_factory=list)
    wkbs: list[bytes | None] = field(default_factory=list)
    record_types: list[str] = field(default_factory=list)
    prefixes: list[tuple[str, int]] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    # The same rows to file: by type in columns, and those of other types as submissions.
    created: list[NewRecords] = field(default_factory=list)
    items: list[Submission] = field(default_factory=list)

    def give_ids(self, record_ids: list[str]) -> None:
        self.record_ids = record_ids
        for c in self.created:
            c.record_ids = [record_ids[p] for p in c.positions]
        places = submission_positions(len(record_ids), self.created)
        for item, place in zip(self.items, places, strict=True):
            item.record_id = record_ids[place]

    def packed(self) -> _Part:
        """Ready to be pickled: geometries as WKB (one vectorised call, not one per object)."""
        for c in self.created:
            if "geometry" in c.columns:
                c.columns["geometry"] = _wkb_list(c.columns["geometry"])
        return self

    def unpacked(self) -> _Part:
        for c in self.created:
            if "geometry" in c.columns:
                wkb = np.array(c.columns["geometry"], dtype=object)
                c.columns["geometry"] = shapely.from_wkb(wkb).tolist()
        return self


def _wkb_list(geometries: list[BaseGeometry | None]) -> list[bytes | None]:
    array = np.empty(len(geometries), dtype=object)
    array[:] = geometries
    return list(shapely.to_wkb(array).tolist())


def _date_of(row: _Row) -> date:
    assert row.date_of_information is not None
    return row.date_of_information


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
        self.head: tuple[Any, ...] = ()
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
        signature = tuple(sorted((k, _hashable(v)) for k, v in self.values.items()))
        self.head = (self.record_type, self.date, signature)

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
        """Give the row this combination's record, values and head, and its geometry's
        place (its own record is made only if needed: ``_Row.built``)."""
        row.template = self.record_for(geometry)
        row.values = self.values
        if geometry is not None and self.target is not None:
            row.placed = placed(self._placement, geometry)
        row.record_type, row.date_of_information = self.record_type, self.date
        row.head, row.wkb = self.head, wkb


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
    row.head, row.wkb = _head(row), None if geometry is None else wkb
    signature = (row.head, row.wkb)
    if signature not in checked:
        try:
            checked[signature] = (build_record(record_type, values), [])
        except ValidationFailed as exc:
            checked[signature] = (None, exc.problems)
    row.record, invalid = checked[signature]
    flagged = {p.field for p in row.problems}
    for p in invalid:
        top = (p.field or "").split(".")[0]
        if top in flagged or (top == "geometry" and target in flagged):
            continue  # already said why, in the mapping's terms
        row.problem(p.field, p.reason + _column_hint(mapping, record_type, top, cells))


def _head(row: _Row) -> tuple[Any, ...]:
    """Everything mapped from a row but its geometry: with the input geometry's WKB (the
    fields it goes to are fixed by the mapping), what makes rows identical."""
    values = tuple(
        sorted((k, _hashable(v)) for k, v in row.values.items() if not isinstance(v, BaseGeometry))
    )
    return (row.record_type, row.date_of_information, values)


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


def _rows_text(rows: list[tuple[str, int]], shown: int = 8) -> str:
    """Rows (file name, row number) as a person reads them: ``a.csv rows 1, 2; b.csv row 3``."""
    by_file: dict[str, list[str]] = defaultdict(list)
    for name, number in rows[:shown]:
        by_file[name].append(str(number))
    text = "; ".join(
        f"{name} row{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"
        for name, numbers in by_file.items()
    )
    return text + (f" (and {len(rows) - shown} more)" if len(rows) > shown else "")


# -- writing ------------------------------------------------------------------------------------


def _new_records(
    record_type: str, rows: list[_Row], positions: list[int], mapping_name: str, source: str
) -> NewRecords:
    """Rows of one record type as ``NewRecords``: each distinct record (a combination's, or a
    row's own) made columns once, then each row's geometry put in its place (copying a record
    per row cost as much as encoding one per row)."""
    bases = [row.base() for row in rows]
    distinct = {id(base): base for base in bases}
    slots = {key: slot for slot, key in enumerate(distinct)}
    stored = record_columns(record_type, list(distinct.values()))
    order = [slots[id(base)] for base in bases]
    columns = {name: [values[slot] for slot in order] for name, values in stored.items()}
    for i, row in enumerate(rows):
        if row.placed:
            columns["geometry"][i] = row.placed["geometry"]
    return NewRecords(
        record_type=record_type,
        positions=positions,
        record_ids=[],
        dates=[_date_of(row) for row in rows],
        reasons=[_reason(row, mapping_name) for row in rows],
        source=source,
        source_keys=[row.key for row in rows],
        changes=_payloads(rows),
        columns=columns,
    )


def _submissions(rows: list[_Row], mapping_name: str, source: str) -> list[Submission]:
    """Rows as submissions, their IDs to come (``_Part.give_ids``)."""
    return [
        Submission(
            record_type=str(row.record_type),
            changes=row.changes(),
            date_of_information=_date_of(row),
            operation=Operation.CREATE,
            reason=_reason(row, mapping_name),
            source=source,
            source_key=row.key,
            record=row.built(),
            payload=payload,
        )
        for row, payload in zip(rows, _payloads(rows), strict=True)
    ]


def _reason(row: _Row, mapping_name: str) -> str:
    return f"imported from {row.table.name} row {row.number} (mapping {mapping_name})"


def _payloads(rows: list[_Row]) -> list[dict[str, Any]]:
    """Each row's report payload (``to_payloads`` of its record): each distinct record (a
    combination's, or a row's own) encoded once, all in one bulk call, with the row's geometry
    put in.

    Encoding the 30,865 records of the Colombian files one by one cost three times as much as
    encoding their 7,926 combinations; one call per combination cost as much again.
    """
    records = [r.base() for r in rows]
    bases = {id(record): record for record in records}
    encoded = dict(zip(bases, to_payloads(list(bases.values())), strict=True))
    payloads = [encoded[id(record)] for record in records]
    placed = [(i, name, g) for i, r in enumerate(rows) for name, g in r.placed.items()]
    geometries = np.empty(len(placed), dtype=object)
    geometries[:] = [g for _, _, g in placed]
    for (i, name, _), hex_wkb in zip(placed, shapely.to_wkb(geometries, hex=True), strict=True):
        payloads[i] = {**payloads[i], name: hex_wkb}
    return payloads


# -- preparing in a second process ----------------------------------------------------------------


@contextmanager
def _prepared(paths: list[Path], preparer: _Preparer, worker: bool) -> Iterator[Iterator[_Part]]:
    """The files' parts, in order: prepared here, or with ``worker`` by a forked process and
    this one together, while this one files the parts before (see ``_in_order``).

    Forked, so that the worker starts with everything this process has loaded and read (the
    mapping, the source keys imported before) and nothing is pickled on the way there; only
    the parts come back. The worker writes nothing: it never touches the transaction's
    connection, which it inherits.
    """
    if not worker:
        seen: dict[str, tuple[str, int]] = {}
        yield (preparer.prepare(index, path, seen) for index, path in enumerate(paths))
        return
    context = multiprocessing.get_context("fork")
    claims = _Claims(context, len(paths))
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_prepare_claimed, args=(preparer, paths, claims, sender), daemon=True
    )
    process.start()
    sender.close()
    try:
        yield _in_order(paths, preparer, claims, receiver)
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()  # this process stopped first (a failure): the parts are unwanted
        process.join()


class _Claims:
    """Files nobody prepares yet, taken in order by the worker and, whenever it has nothing
    to file, by this process."""

    def __init__(self, context: Any, count: int):
        self.next = context.Value("i", 0)
        self.count = count

    def take(self) -> int | None:
        with self.next.get_lock():
            index = int(self.next.value)
            if index >= self.count:
                return None
            self.next.value = index + 1
            return index


def _prepare_claimed(preparer: _Preparer, paths: list[Path], claims: _Claims, sender: Any) -> None:
    """The worker: the parts of the files it claims, until none is left or one fails.

    A part is sent by a thread of its own: a send waits until the other process reads it all
    (a part is larger than the pipe holds), and that process reads only between its writes.
    """
    outbox: queue.Queue[tuple[str, int | None, Any] | None] = queue.Queue()
    thread = threading.Thread(target=_send_all, args=(outbox, sender))
    thread.start()
    index = None
    try:
        while (index := claims.take()) is not None:
            part = preparer.prepare(index, paths[index], {})
            outbox.put(("part", index, part.packed()))
    except ImportFailed as exc:
        outbox.put(("failed", index, exc.row_problems))
    except BaseException:
        outbox.put(("error", index, traceback.format_exc()))
    finally:
        outbox.put(None)
        thread.join()
        sender.close()


def _send_all(outbox: queue.Queue[tuple[str, int | None, Any] | None], sender: Any) -> None:
    while (message := outbox.get()) is not None:
        sender.send(message)


def _in_order(
    paths: list[Path], preparer: _Preparer, claims: _Claims, receiver: Any
) -> Iterator[_Part]:
    """Each file's part in order: the worker's as they come and, while the next is not there,
    one this process prepares, the next file nobody has taken. Each process thus takes files
    as it has time: filing a file took this process about half as long as preparing it took
    the worker (the Colombian files), and a part prepared here is filed as soon as those before
    it are, so neither waits long for the other.

    Each file was prepared with only its own source keys in view; one that repeats a key of
    an earlier file is prepared again here, with the earlier keys, to say which row it repeats.
    """
    ready: dict[int, _Part | ImportFailed] = {}
    seen: dict[str, tuple[str, int]] = {}
    for index, path in enumerate(paths):
        while index not in ready:
            claimed = None if receiver.poll() else claims.take()
            if claimed is None:
                _receive(receiver, ready)
                continue
            try:
                ready[claimed] = preparer.prepare(claimed, paths[claimed], {})
            except ImportFailed as exc:  # raised in its turn, after the files before it
                ready[claimed] = exc
        found = ready.pop(index)
        if isinstance(found, ImportFailed):
            raise found
        if any(key in seen for key, _ in found.keys):
            found = preparer.prepare(index, path, seen)
        else:
            for key, number in found.keys:
                seen.setdefault(key, (path.name, number))
        yield found


def _receive(receiver: Any, ready: dict[int, _Part | ImportFailed]) -> None:
    try:
        kind, index, value = receiver.recv()
    except EOFError:
        raise RuntimeError("the process preparing the files stopped unexpectedly") from None
    if kind == "part":
        ready[index] = value.unpacked()
    elif kind == "failed":
        ready[index] = ImportFailed(value)
    else:
        raise RuntimeError(f"preparing file {index} failed in the worker process:\n{value}")


def _write_rejects(parts: list[_Part], rejects: Path | None) -> list[Path]:
    """Rejected rows with their original columns and ``_file, _row, _field, _reason``."""
    frames = {part.path: part.rejects for part in parts if part.rejects is not None}
    if not frames:
        return []
    if rejects is not None:
        targets = {rejects: pd.concat(list(frames.values()), ignore_index=True)}
    else:
        targets = {
            path.with_name(f"{path.stem}.rejects.csv"): frame for path, frame in frames.items()
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
