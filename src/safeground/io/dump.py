"""Full dump and restore of a register as JSON Lines: simple, streamable and diffable.

The first line is a header (format name and version); each further line is one row of one
table: ``{"table": "report", "row": {...}}``. Only the source of truth is dumped (settings,
ID sequences, every report with its ids, statuses, timestamps, approval sequence, reasons,
sources and import batch, and blobs); ``restore`` loads it into an empty register and rebuilds
every current view from the reports. Reports' personal fields (victims' names, phones,
addresses) are left out unless ``include_personal`` is passed explicitly.

A path ending in ``.gz`` is written and read gzip-compressed (with a fixed timestamp, so that
the same register gives the same bytes).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, LargeBinary, Table, delete, func, select, text

from safeground.domain.errors import Problem, SafegroundError, ValidationFailed
from safeground.service.rebuild import rebuild_all
from safeground.service.register import Register
from safeground.storage.schema import (
    blob,
    id_sequence,
    record_tables,
    report,
    report_personal,
    risk_covariate,
)
from safeground.storage.schema import setting as setting_table
from safeground.storage.types import JsonValue, Timestamp

FORMAT = "safeground-dump"
VERSION = 1
# In restore order: a report's personal fields refer to the report.
TABLES: dict[str, Table] = {
    "setting": setting_table,
    "id_sequence": id_sequence,
    "report": report,
    "report_personal": report_personal,
    "blob": blob,
    # A user's covariate layers for risk maps are input, not derived: kept (after their bytes).
    "risk_covariate": risk_covariate,
}
BATCH = 2000


class RestoreRefused(SafegroundError):
    """The target register is not empty, or the file is not a dump this version can read."""


def dump(register: Register, out: Path, include_personal: bool = False) -> int:
    """Write the whole register to ``out``; returns the number of rows written."""
    tables = [n for n in TABLES if include_personal or n != "report_personal"]
    header = {"format": FORMAT, "version": VERSION, "personal": include_personal, "tables": tables}
    count = 0
    with register.store.read() as conn, _open(Path(out), "w") as f:
        f.write(_line(header))
        for name in tables:
            table = TABLES[name]
            query = select(table).order_by(*table.primary_key.columns)
            for row in conn.execute(query):
                values = {c.name: _encode(getattr(row, c.name), c.type) for c in table.c}
                f.write(_line({"table": name, "row": values}))
                count += 1
    return count


def restore(register: Register, path: Path, conn: Connection | None = None) -> int:
    """Load a dump into an empty register and rebuild its views; returns the rows loaded."""
    if conn is None:
        with register.store.begin() as conn:
            return restore(register, path, conn)
    path = Path(path)
    count = 0
    with _open(path, "r") as f:
        _header(path, f.readline())
        _refuse_non_empty(register, conn)
        conn.execute(delete(setting_table))
        pending: dict[str, list[dict[str, Any]]] = {}
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            name, values = _row(path, number, line)
            pending.setdefault(name, []).append(values)
            if len(pending[name]) >= BATCH:
                _flush(conn, pending)
            count += 1
        _flush(conn, pending)
        _advance_sequences(conn)
        rebuild_all(register, conn)
    return count


def is_dump(path: Path) -> bool:
    """Whether ``path`` is a Safeground dump (reads only its first line)."""
    try:
        with _open(Path(path), "r") as f:
            data = json.loads(f.readline(1 << 16))
    except (OSError, UnicodeDecodeError, ValueError, EOFError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


# -- encoding -----------------------------------------------------------------------------------


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def _encode(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, LargeBinary):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _decode(value: Any, kind: Any) -> Any:
    if value is None or isinstance(kind, JsonValue):
        return value
    if isinstance(kind, LargeBinary):
        return base64.b64decode(value)
    if isinstance(kind, Timestamp):
        return datetime.fromisoformat(value)
    if kind.python_type is date:
        return date.fromisoformat(value)
    return value


def _header(path: Path, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RestoreRefused(f"{path} is not a Safeground dump (no {FORMAT} header line)")
    if data.get("version") != VERSION:
        raise RestoreRefused(
            f"{path} is a version {data.get('version')} dump; this Safeground reads version "
            f"{VERSION}"
        )
    return data


def _row(path: Path, number: int, line: str) -> tuple[str, dict[str, Any]]:
    try:
        data = json.loads(line)
        name, row = data["table"], data["row"]
        table = TABLES[name]
        unknown = set(row) - set(table.c.keys())
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        return name, {c.name: _decode(row.get(c.name), c.type) for c in table.c}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(
            [Problem(f"line {number}", f"not a dump row: {exc}", str(path))]
        ) from None


def _flush(conn: Connection, pending: dict[str, list[dict[str, Any]]]) -> None:
    for name in TABLES:  # restore order: reports before their personal fields
        rows = pending.pop(name, None)
        if rows:
            conn.execute(TABLES[name].insert(), rows)


def _refuse_non_empty(register: Register, conn: Connection) -> None:
    found = {
        name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for name, table in {
            "report": report,
            "id_sequence": id_sequence,
            "blob": blob,
            **record_tables,
        }.items()
    }
    used = {name: n for name, n in found.items() if n}
    if used:
        what = ", ".join(f"{n} {name} rows" for name, n in used.items())
        raise RestoreRefused(
            f"restore needs an empty register, but {register.store.location} has {what}: "
            "create a new register (safeground init) and restore into it"
        )


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL keeps a sequence behind report_id: move it past the restored ids."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('report', 'report_id'), "
                "COALESCE((SELECT max(report_id) FROM report), 0) + 1, false)"
            )
        )


@contextmanager
def _open(path: Path, mode: str) -> Iterator[IO[str]]:
    """Text file, gzip-compressed when the name ends in .gz (mtime 0: same bytes each time)."""
    if path.suffix != ".gz":
        with path.open(mode, encoding="utf-8", newline="\n") as f:
            yield f
        return
    with path.open(mode + "b") as raw:
        zipped = gzip.GzipFile(filename="", mode=mode + "b", fileobj=raw, mtime=0)
        with zipped, io.TextIOWrapper(zipped, encoding="utf-8", newline="\n") as f:
            yield f
