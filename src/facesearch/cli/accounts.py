"""Accounts and keys: users add|list|revoke|grant, keys create|revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, fail, out, print_json, state
from facesearch.errors import AccountError, AuditError

users_app = typer.Typer(
    help="Accounts: users with a role (admin, investigator, reviewer, auditor).", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)


@users_app.command("add")
def users_add_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="admin, investigator, reviewer or auditor.")],
    collections: Annotated[
        list[str] | None,
        typer.Option("--collection", help="Limit the user to this collection (repeat); default: every one."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Add a user with a role."""
    with state.engine() as engine:
        try:
            user = engine.accounts.add_user(engine.operator, name, role, collections=collections or None)
        except (AccountError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    if json_output:
        print_json(user)
    else:
        out.print(f"user {name} added with role {user['role']}; create a key with `facesearch keys create {name}`")


@users_app.command("list")
def users_list_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """List users, their roles, collections and keys."""
    with state.engine() as engine:
        users = engine.accounts.users(engine.operator)
    if json_output:
        print_json(users)
        return
    rows = [
        {
            **user,
            "collections": user["collections"] or ["all"],
            "keys": [k["key_id"] + ("" if k["active"] else " (revoked)") for k in user["keys"]],
        }
        for user in users
    ]
    columns = ("name", "role", "active", "collections", "keys")
    typer.echo(render.listing(rows, columns, as_json=False, as_csv_=csv_output, empty="no user yet"))


@users_app.command("passwd")
def users_passwd_command(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Set a user's password for the workbench (the browser UI); every session of theirs ends.

    On a terminal it is asked twice, unseen; otherwise it is read from standard input (its first line), so
    that a script can run ``printf '%s\\n' "$PASSWORD" | facesearch users passwd NAME``.
    """
    import sys

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise fail("the two passwords differ; nothing changed", code=FAILED)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    with state.engine() as engine:
        try:
            engine.accounts.set_password(engine.operator, name, password)
        except (AccountError, LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"password of {name} set; they sign in to the workbench at the server's address", markup=False)


@users_app.command("revoke")
def users_revoke_command(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Disable a user and revoke all their keys (effective on the server's next request)."""
    with state.engine() as engine:
        try:
            engine.accounts.revoke_user(engine.operator, name)
        except (AccountError, LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"user {name} revoked, with every key they held")


@users_app.command("grant")
def users_grant_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    collection: Annotated[str, typer.Argument(help="Collection to grant.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the collection away instead.")] = False,
) -> None:
    """Grant a user one collection (a user with grants sees only their granted collections)."""
    with state.engine() as engine:
        try:
            user = (engine.accounts.ungrant if remove else engine.accounts.grant)(engine.operator, name, collection)
        except (AccountError, LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"user {name} sees: {', '.join(user['collections'] or []) or 'no collection'}")


@keys_app.command("create")
def keys_create_command(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Create an API key for a user; the key is printed alone on the last line, once."""
    with state.engine() as engine:
        try:
            key_id, key = engine.accounts.create_key(engine.operator, name)
        except (AccountError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    typer.echo(f"key {key_id} for {name} (shown once; send it as 'Authorization: Bearer KEY'):")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke_command(key_id: Annotated[str, typer.Argument(help="The key's id (fsk_<id>_...).")]) -> None:
    """Revoke one key (effective on the server's next request)."""

    with state.engine() as engine:
        try:
            engine.accounts.revoke_key(engine.operator, key_id)
        except (LookupError, AuditError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"key {key_id} revoked")
