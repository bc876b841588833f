"""Signing in and out, and the home page that sends each role to its work.

``POST /login`` takes ``username`` and ``password`` as a form (scripts rely on these names) and answers with a
new session cookie and a redirect; a wrong password gets the form again with status 401. Failures are counted
per address and per user name, as wrong API keys are, and refused past the budget before any hash is computed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from facesearch.api.auth import FailedAuthLimiter
from facesearch.web.pages import SESSION_COOKIE, Page, PageRefused, check_origin, page, safe_next, signed_in

router = APIRouter(include_in_schema=False)

HOME_OF_ROLE = {"investigator": "/search", "reviewer": "/cases", "admin": "/collections", "auditor": "/audit"}


@router.get("/")
def home(current: Annotated[Page, Depends(signed_in())]) -> Response:
    """Each role starts where its work is."""
    return current.redirect(HOME_OF_ROLE.get(current.principal.role.value, "/cases"))


@router.get("/login")
def login_form(current: Annotated[Page, Depends(page)], next: str | None = None) -> Response:
    """The sign-in form (a signed-in user goes on to where they were going)."""
    if current.signed_in is not None:
        return current.redirect(safe_next(next))
    return current.render("login.html", next=safe_next(next), error=None, username="")


@router.post("/login")
def login(
    request: Request,
    current: Annotated[Page, Depends(page)],
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    """Sign in: a new session (never the one the browser came with), its cookie, and on to ``next``."""
    check_origin(request)
    failures: FailedAuthLimiter = request.app.state.auth_failures
    client = request.client.host if request.client else "unknown"
    name_key = f"user:{username.strip().lower()}"

    def refuse_when_spent(_name: str) -> None:
        if failures.refusal(client, name_key):
            raise PageRefused(429, current.gettext("Too many failed sign-ins. Wait a minute and try again."))

    if current.signed_in is not None:
        current.engine.sessions.sign_out(current.signed_in)  # a session is never carried into another sign-in
    session = current.engine.sessions.sign_in(username.strip(), password, before_hash=refuse_when_spent)
    if session is None:
        failures.failed(client, name_key)
        error = current.gettext("The user name or password is not right.")
        response = current.render("login.html", status=401, next=safe_next(next), error=error, username=username)
        response.delete_cookie(SESSION_COOKIE)
        return response
    current.signed_in = session
    current.cookies.append(
        (
            SESSION_COOKIE,
            session.token,
            {
                "httponly": True,
                "samesite": "strict",
                "secure": request.url.scheme == "https",
                "max_age": current.engine.settings.session_max_hours * 3600,
                "path": "/",
            },
        )
    )
    return current.redirect(safe_next(next))


@router.post("/logout")
def logout(current: Annotated[Page, Depends(signed_in())], csrf: Annotated[str, Form()] = "") -> Response:
    """Sign out: the session ends on the server, and its cookie is cleared."""
    current.check_form(csrf)
    assert current.signed_in is not None
    current.engine.sessions.sign_out(current.signed_in)
    current.signed_in = None
    response = current.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
