"""``safeground serve``, ``safeground user ...`` and ``safeground token create``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from safeground.cli.common import StoreOption, acting_user, migrated_register, run
from safeground.cli.output import table
from safeground.service import accounts

user_app = typer.Typer(help="Accounts of the web application.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for scripts.", no_args_is_help=True)
PasswordStdinOption = Annotated[bool, typer.Option(help="Read the password from standard input")]


def _new_password(from_stdin: bool) -> tuple[str, bool]:
    """(the password, whether it was generated): read from standard input, or generated."""
    given = sys.stdin.readline().rstrip("\r\n") if from_stdin else None
    return (given, False) if given else (accounts.generate_password(), True)


def serve(
    store: StoreOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Serve the register in the browser and as an API (until Ctrl-C)."""
    import uvicorn

    from safeground.web.app import create_app
    from safeground.web.settings import Settings

    settings = Settings.from_env(store=store)
    app = run(lambda: create_app(settings))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"Safeground is serving {settings.store} at http://{shown}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="public, data_entry, reviewer, im_officer or admin")],
    organisation: Annotated[
        str | None, typer.Option(help="Organisation record ID (data entry must have one)")
    ] = None,
    password_stdin: PasswordStdinOption = False,
    store: StoreOption = None,
) -> None:
    """Add an account; without --password-stdin a password is generated and printed."""
    chosen, generated = _new_password(password_stdin)
    register = migrated_register(store)
    with register.store.begin() as conn:
        run(
            lambda: accounts.add_account(
                conn, username, role, chosen, organisation, by=acting_user(None)
            )
        )
    typer.echo(f"added {username} ({role})")
    if generated:
        typer.echo(f"password: {chosen}")


@user_app.command("role")
def user_role(
    username: str,
    role: str,
    organisation: Annotated[str | None, typer.Option(help="Move to this organisation")] = None,
    store: StoreOption = None,
) -> None:
    """Change an account's role; it takes effect on the account's next request."""
    register = migrated_register(store)
    with register.store.begin() as conn:
        changed = run(
            lambda: accounts.set_role(conn, username, role, organisation, by=acting_user(None))
        )
    typer.echo(f"{changed.username} is now {changed.role}")


@user_app.command("password")
def user_password(
    username: str,
    password_stdin: PasswordStdinOption = False,
    store: StoreOption = None,
) -> None:
    """Set a new password (generated and printed unless --password-stdin); sessions end."""
    chosen, generated = _new_password(password_stdin)
    register = migrated_register(store)
    with register.store.begin() as conn:
        run(lambda: accounts.set_password(conn, username, chosen, by=acting_user(None)))
    typer.echo(f"new password for {username}" + (f": {chosen}" if generated else ""))


@user_app.command("disable")
def user_disable(username: str, store: StoreOption = None) -> None:
    """Shut an account out at once: its sessions end and its API tokens stop working."""
    register = migrated_register(store)
    with register.store.begin() as conn:
        run(lambda: accounts.disable_account(conn, username, by=acting_user(None)))
    typer.echo(f"{username} is disabled")


@user_app.command("list")
def user_list(store: StoreOption = None) -> None:
    """Accounts with their role and organisation."""
    register = migrated_register(store)
    with register.store.read() as conn:
        found = accounts.list_accounts(conn)
    rows = [
        [
            a.username,
            a.role,
            a.organisation_id or "",
            a.created_at.date().isoformat(),
            "disabled" if a.disabled_at else "",
        ]
        for a in found
    ]
    typer.echo(table(["username", "role", "organisation", "created", ""], rows))


@token_app.command("create")
def token_create(
    username: str,
    label: Annotated[str | None, typer.Option(help="What the token is for")] = None,
    store: StoreOption = None,
) -> None:
    """Create an API token for an account; it is printed once (send as Authorization: Bearer)."""
    register = migrated_register(store)
    with register.store.begin() as conn:
        token_id, secret = run(
            lambda: accounts.create_token(conn, username, label, by=acting_user(None))
        )
    typer.echo(f"token {token_id} for {username}: {secret}")
