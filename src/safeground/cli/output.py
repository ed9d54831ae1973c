"""Plain-text tables and error output for the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

from safeground.domain.errors import SafegroundError, ValidationFailed


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align_right: set[int] | None = None
) -> str:
    """Align columns; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    right = (
        align_right
        if align_right is not None
        else {
            i
            for i in range(len(headers))
            if rows and all(isinstance(r[i], int | float) for r in rows)
        }
    )

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fail(error: SafegroundError) -> NoReturn:
    """Print a user error, one problem a line, and exit 1."""
    if isinstance(error, ValidationFailed) and error.problems:
        typer.secho(f"error: {type(error).__name__}", fg="red", err=True)
        for problem in error.problems:
            typer.echo(f"  {problem}", err=True)
    else:
        typer.secho(f"error: {error}", fg="red", err=True)
    sys.exit(1)
