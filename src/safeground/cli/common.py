"""Options and helpers every ``safeground`` sub-command shares (kept apart from ``main`` so that
the sub-command modules it mounts can use them without a circular import)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from safeground.cli.output import fail
from safeground.domain.errors import SafegroundError
from safeground.service.register import Register

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Register: a GeoPackage path or a postgresql:// URL "
        "[default: $SAFEGROUND_STORE or ./safeground.gpkg]",
    ),
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Who acts [default: $SAFEGROUND_USER or login name]")
]

T = TypeVar("T")


def acting_user(user: str | None) -> str:
    return user or os.environ.get("SAFEGROUND_USER") or getpass.getuser()


def open_register(store: str | None) -> Register:
    return run(lambda: Register.open(store))


def migrated_register(store: str | None) -> Register:
    """The register at the newest schema: a register made before the audit log and the account
    tables gets them now, so that a command's write lands with its audit entry."""
    register = open_register(store)
    run(register.store.migrate)
    return register


def run(action: Callable[[], T]) -> T:
    """Run a service call; a user error is printed (one problem a line) and exits 1."""
    try:
        return action()
    except SafegroundError as error:
        fail(error)
