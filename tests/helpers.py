"""Small builders for register tests."""

from __future__ import annotations

from datetime import date
from typing import Any

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
