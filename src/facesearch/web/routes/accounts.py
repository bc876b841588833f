"""Accounts, for administrators: users with their roles and grants; add a user, grant and take back a
collection, set a password, revoke a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from facesearch.governance.access import Role
from facesearch.web.pages import EXPECTED_ERRORS, Page, error_status, signed_in

router = APIRouter(include_in_schema=False)


def _page(current: Page, *, status: int = 200, error: str | None = None, notice: str | None = None) -> Response:
    principal = current.principal
    return current.render(
        "accounts.html",
        status=status,
        users=current.engine.accounts.users(principal),
        roles=[role.value for role in Role],
        collections=current.engine.collections.names(principal),
        error=error,
        notice=notice,
    )


@router.get("/accounts")
def accounts(current: Annotated[Page, Depends(signed_in("accounts"))]) -> Response:
    """Users, roles, grants and the forms that change them."""
    return _page(current)


@router.post("/accounts")
def change(
    current: Annotated[Page, Depends(signed_in("accounts"))],
    action: Annotated[str, Form(max_length=20)],
    name: Annotated[str, Form(max_length=100)],
    csrf: Annotated[str, Form()] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    collection: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """``add`` a user (``role``, optionally limited to ``collection``), ``grant`` / ``ungrant`` a collection,
    set a ``password``, or ``revoke`` the user."""
    current.check_form(csrf)
    accounts = current.engine.accounts
    principal = current.principal
    name = name.strip()
    try:
        if action == "add":
            accounts.add_user(principal, name, role, collections=[collection] if collection else None)
            if password:
                accounts.set_password(principal, name, password)
        elif action == "grant":
            accounts.grant(principal, name, collection)
        elif action == "ungrant":
            accounts.ungrant(principal, name, collection)
        elif action == "password":
            accounts.set_password(principal, name, password)
        elif action == "revoke":
            accounts.revoke_user(principal, name)
        else:
            return _page(current, status=422, error=current.gettext("Unknown action."))
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _page(current, status=status, error=message)
    return current.redirect("/accounts")
