"""The workbench: a browser interface for caseworkers, reviewers, administrators and auditors.

A third interface beside the CLI and the API: its pages call the same services (which check every rule and
write every audit record) and never touch storage. Served by ``facesearch serve`` under ``/`` (the API stays
under ``/v1``), rendered on the server from Jinja2 templates, with one style sheet and one small script from
the package: nothing from a CDN, no build step, works offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from facesearch.web.i18n import N_
from facesearch.web.pages import PAGE_CSP, PageRefused, SignInRequired, page
from facesearch.web.routes import (
    accounts,
    audit,
    cases,
    clusters,
    collections,
    forget,
    people,
    provenance,
    searching,
    signin,
)

STATIC_DIR = Path(__file__).parent / "static"

API_PREFIXES = ("/v1/", "/health", "/docs", "/openapi.json", "/jobs/", "/faces/")
"""Paths of the API (JSON answers, errors included); every other path is the workbench's."""

STATUS_TITLES = {
    400: N_("The request could not be read"),
    401: N_("Sign in first"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed here"),
    409: N_("Not done: it conflicts with what is there"),
    413: N_("Too large"),
    415: N_("Not a picture we can read"),
    422: N_("Not done"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Not available"),
}


class CachedStaticFiles(StaticFiles):
    """The workbench's style sheet and script: the same for everyone, named with the version they belong to
    (``?v=``), so browsers may keep them for a day (every other answer is ``no-store``)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """The file, marked cacheable."""
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "public, max-age=86400"
        return response


def is_web_path(path: str) -> bool:
    """Whether ``path`` belongs to the workbench (HTML) rather than the API (JSON)."""
    return not path.startswith(API_PREFIXES) and path != "/v1"


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a workbench page (the API keeps its JSON errors)."""
    current = page(request)
    title = current.gettext(STATUS_TITLES.get(status, "Not done"))
    return current.render("error.html", status=status, title=title, message=message)


def install_web(app: FastAPI) -> None:
    """Serve the workbench from ``app``: its pages, its static files, and HTML errors on its paths."""
    for module in (signin, searching, provenance, cases, collections, people, clusters, forget, audit, accounts):
        app.include_router(module.router)
    app.mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(_request: Request, error: SignInRequired) -> Response:
        response = RedirectResponse(f"/login?next={quote(error.next_path, safe='/')}", status_code=303)
        response.headers["content-security-policy"] = PAGE_CSP
        return response

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, error: PageRefused) -> Response:
        return error_page(request, error.status, error.message)

    # The API's handlers answer JSON; on the workbench's paths the same errors become pages.
    for kind, handler in list(app.exception_handlers.items()):
        if kind in (SignInRequired, PageRefused):
            continue
        app.exception_handlers[kind] = _html_on_web_paths(handler)


def _html_on_web_paths(handler: Any) -> Any:
    async def handle(request: Request, error: Exception) -> Response:
        response: Response = await handler(request, error)
        if not is_web_path(request.url.path) or isinstance(response, HTMLResponse):
            return response
        if request.url.path.startswith("/static/") or request.url.path.endswith("/progress"):
            return response
        message = _message_of(response, error)
        return error_page(request, response.status_code, message)

    return handle


def _message_of(response: Response, error: Exception) -> str:
    """The message of the API's JSON answer to ``error`` (what the error page says)."""
    try:
        body = json.loads(bytes(response.body))
        return str(body.get("message") or "")
    except (ValueError, AttributeError):
        return str(error) if not isinstance(error, StarletteHTTPException) else ""
