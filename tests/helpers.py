"""Small builders for register tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from safeground.domain.reports import Operation
from safeground.service.register import Register, Submission


def add(register: Register, record_type: str, on: date, user: str = "im", **fields: Any) -> str:
    """File and approve a record; return its ID."""
    return register.file(user, [Submission(record_type, fields, on)]).record_ids[0]


def update(register: Register, record_id: str, record_type: str, on: date, **fields: Any) -> None:
    register.file("im", [Submission(record_type, fields, on, record_id=record_id)])


def retire(register: Register, record_type: str, record_id: str, on: date) -> None:
    """File and approve a report retiring the record."""
    retiring = Submission(
        record_type, {}, on, record_id=record_id, operation=Operation.RETIRE, reason="duplicate"
    )
    register.file("im", [retiring])


def at_once(
    register: Register,
    first: Callable[[Connection], Any],
    second: Callable[[], Any],
    refused: type[Exception],
) -> tuple[Any, Any]:
    """Run ``first`` in a transaction and, once it has done its work but not committed,
    ``second`` in another thread, which must wait for that transaction (on PostgreSQL: a
    GeoPackage has one writer at a time). ``first``'s result, and ``second``'s or the message
    of the ``refused`` it raised."""
    if register.store.dialect != "postgresql":
        pytest.skip("a GeoPackage has one writer at a time")
    first_done, outcome = threading.Event(), {}

    def run_second() -> None:
        first_done.wait()
        try:
            outcome["second"] = second()
        except refused as exc:
            outcome["second"] = str(exc)

    racer = threading.Thread(target=run_second)
    racer.start()
    with register.store.begin() as conn:
        result = first(conn)
        first_done.set()
        racer.join(timeout=1.0)
        assert racer.is_alive()  # waiting for this transaction, not running alongside it
    racer.join(timeout=10)
    return result, outcome["second"]


def keep_one_score(register: Register, folder: Path, hazard_id: str) -> None:
    """A risk map's scores kept for one hazardous area (what a write of risk scores does to
    the views), without drawing the map."""
    from safeground.risk.attach import Score, ScoredMap, keep_scores  # seconds to import

    scored = ScoredMap(
        folder / "risk.tif",
        "0" * 64,
        "test",
        date(2022, 1, 1),
        [Score(hazard_id, "hazardous_area", 0.5, 0.9, 4)],
    )
    with register.store.begin() as conn:
        keep_scores(register, conn, scored, "im")
