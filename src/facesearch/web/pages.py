"""Rendering a workbench page: the request's user, language and CSRF token, the templates, and the answers
every page shares (sign in first, not for your role, the form expired).

Pages are Jinja2 templates rendered on the server; the browser gets HTML and two static files (a style sheet
and a small script that only enhances: every page works without it). The content security policy allows no
inline script or style, so nothing a user typed can run as code even where escaping were forgotten.
"""

from __future__ import annotations

import base64
import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from facesearch import __version__
from facesearch.api.errors import SOURCE_STATUS, ApiError
from facesearch.engine import FaceSearch
from facesearch.errors import AccessDenied, CaseError, FacesearchError, NotVisible, SourceRefused
from facesearch.governance.access import Principal
from facesearch.governance.sessions import SignedIn
from facesearch.search.clusters import ClusterError
from facesearch.vision.image import ImageRejected
from facesearch.web import i18n, meaning
from facesearch.web.i18n import N_, Language

SESSION_COOKIE = "facesearch_session"
LANGUAGE_COOKIE = "facesearch_lang"

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The workbench's content security policy: its own script and styles only, images inline or its own, forms
to itself, never framed (clickjacking)."""


@dataclass(frozen=True)
class NavItem:
    """A link of the top navigation, shown to roles holding any of ``permissions`` (and with ``every_collection``
    only to users who see every collection: the page's work crosses collections)."""

    path: str
    label: str
    permissions: tuple[str, ...]
    every_collection: bool = False


NAV = (
    NavItem("/search", N_("Search"), ("search",)),
    NavItem("/verify", N_("Verify"), ("verify",)),
    NavItem("/provenance", N_("Provenance"), ("search",)),
    NavItem("/cases", N_("Cases"), ("cases.read", "cases.manage")),
    NavItem("/collections", N_("Collections"), ("collections.manage",)),
    NavItem("/people", N_("People"), ("subjects.read",)),
    NavItem("/clusters", N_("Clusters"), ("clusters",), every_collection=True),
    NavItem("/forget", N_("Forget and opt-out"), ("erase", "optout")),
    NavItem("/audit", N_("Audit"), ("audit",)),
    NavItem("/accounts", N_("Accounts"), ("accounts",)),
)


class SignInRequired(Exception):
    """The page needs a signed-in user: answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageRefused(Exception):
    """The page or form is refused (role, expired form, foreign origin): answered with an error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@functools.cache
def environment(language: str) -> jinja2.Environment:
    """The templates, with gettext of ``language`` (one environment per language: gettext is global to one)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("facesearch.web", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["rate"] = meaning.rate
    env.filters["number"] = meaning.number
    env.filters["data_url"] = data_url
    env.filters["when"] = meaning.when
    env.filters["urlquote"] = lambda value: quote(str(value), safe="")
    env.filters["web_address"] = web_address
    env.globals["version"] = __version__
    return env


def web_address(url: object) -> bool:
    """Whether ``url`` is an http(s) address, safe to link to (a manifest may hold anything)."""
    return isinstance(url, str) and urlsplit(url).scheme.lower() in ("http", "https")


def data_url(data: bytes | None, media_type: str = "image/jpeg") -> str:
    """Bytes as a data: URL (crops are sent inside the page: no URL that could be fetched again later)."""
    if not data:
        return ""
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def language_of(request: Request, engine: FaceSearch) -> Language:
    """The request's language (see :func:`facesearch.web.i18n.choose`)."""
    code = i18n.choose(
        request.query_params.get("lang"),
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
        engine.settings.language,
    )
    return Language(code)


@dataclass
class Page:
    """One request to the workbench: the engine, the signed-in user (if any) and the language."""

    request: Request
    engine: FaceSearch
    signed_in: SignedIn | None
    language: Language
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        """Who acts (only on pages that required a signed-in user)."""
        if self.signed_in is None:
            raise SignInRequired(self.request.url.path)
        return self.signed_in.principal

    def gettext(self, message: str, **values: object) -> str:
        """``message`` in the page's language."""
        return self.language.gettext(message, **values)

    def may(self, *permissions: str) -> bool:
        """Whether the signed-in user's role holds any of ``permissions``."""
        return self.signed_in is not None and any(self.signed_in.principal.can(p) for p in permissions)

    def nav(self) -> list[NavItem]:
        """The navigation links this user may follow."""
        return [
            item
            for item in NAV
            if self.may(*item.permissions)
            and (not item.every_collection or (self.signed_in is not None and self.signed_in.principal.unlimited))
        ]

    def check_form(self, csrf: str | None) -> None:
        """Refuse a form without this session's CSRF token or sent from another site."""
        check_origin(self.request)
        expected = self.signed_in.csrf if self.signed_in else ""
        if not expected or not csrf or not hmac.compare_digest(expected, csrf):
            raise PageRefused(
                403,
                self.gettext(
                    "This form has expired or did not come from this workbench. Reload the page and try again."
                ),
            )

    def render(self, template: str, *, status: int = 200, **context: Any) -> Response:
        """The page ``template`` as HTML, with the headers every workbench page carries."""
        env = environment(self.language.code)
        html = env.get_template(template).render(
            page=self,
            user=self.signed_in.principal if self.signed_in else None,
            csrf=self.signed_in.csrf if self.signed_in else "",
            lang=self.language.code,
            languages=i18n.NAMES,
            path=self.request.url.path,
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status))

    def redirect(self, to: str) -> Response:
        """See Other: after a form, the browser loads ``to`` (a reload does not send the form again)."""
        return self.finish(RedirectResponse(to, status_code=303))

    def finish(self, response: Response) -> Response:
        """Add the page's headers and cookies to ``response``."""
        response.headers["content-security-policy"] = PAGE_CSP
        if self.request.query_params.get("lang") == self.language.code:
            response.set_cookie(LANGUAGE_COOKIE, self.language.code, max_age=365 * 86400, samesite="strict")
        for name, value, options in self.cookies:
            response.set_cookie(name, value, **options)
        return response


def check_origin(request: Request) -> None:
    """Refuse a state-changing request whose Origin (or Referer) names another site than this server."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return  # no header to compare (scripts): the CSRF token or the SameSite cookie carries the check
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise PageRefused(403, "this form was sent from another site")


def engine_of(request: Request) -> FaceSearch:
    """The server's engine."""
    engine: FaceSearch = request.app.state.engine
    return engine


def page(request: Request) -> Page:
    """A page that anyone may see (the sign-in page): the user if signed in."""
    engine = engine_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    signed_in = engine.sessions.resolve(token) if token else None
    return Page(request, engine, signed_in, language_of(request, engine))


def signed_in(*permissions: str) -> Callable[[Request], Page]:
    """A dependency: the page of a signed-in user whose role holds any of ``permissions`` (none: any role)."""

    def dependency(request: Request) -> Page:
        current = page(request)
        if current.signed_in is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target if request.method == "GET" else request.url.path)
        if permissions and not current.may(*permissions):
            raise PageRefused(403, current.gettext("Your role may not use this page."))
        return current

    return dependency


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


EXPECTED_ERRORS = (FacesearchError, ApiError, ImageRejected)
"""What a form may run into and show the user: a refused upload, a rule of a service, an unreadable photo."""


def error_status(error: Exception) -> tuple[int, str]:
    """The status and message of an error a form shows (the same statuses the API answers with)."""
    if isinstance(error, ApiError):
        return error.status, error.message
    if isinstance(error, AccessDenied):
        return 403, str(error)
    if isinstance(error, NotVisible):
        return 404, str(error)
    if isinstance(error, SourceRefused):
        return SOURCE_STATUS.get(error.code, 422), str(error)
    if isinstance(error, CaseError) and "is closed" in str(error):
        return 409, str(error)
    if isinstance(error, ClusterError):
        return error.status, str(error)
    return 422, str(error)


def jpeg_answer(current: Page, read: Callable[[], bytes]) -> Response:
    """A picture a service read for the page (an audited read), or the error page of its refusal."""
    try:
        data = read()
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        raise PageRefused(status, message) from error
    return current.finish(Response(data, media_type="image/jpeg"))
