"""Shared support for the workbench's tests (no tests here): a data folder with one user per role, each with
a password, and browser-like clients that sign in and send forms with their CSRF token."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from facesearch.engine import FaceSearch

ROLES = ("admin", "investigator", "reviewer", "auditor")


def password_of(role: str) -> str:
    """The test password of the user named after ``role``."""
    return f"{role}-pass-phrase"


def add_users(engine: FaceSearch, *, limited: dict[str, list[str]] | None = None) -> None:
    """One user per role, named after it, with a password (``limited``: name -> the collections they see)."""
    for role in ROLES:
        engine.accounts.add_user(engine.operator, role, role, collections=(limited or {}).get(role))
        engine.accounts.set_password(engine.operator, role, password_of(role))


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Browser:
    """A client that keeps cookies like a browser, signed in as one user (or not)."""

    client: TestClient

    def sign_in(self, name: str, password: str | None = None) -> httpx.Response:
        """Post the sign-in form; returns the answer (303 when it worked)."""
        return self.client.post(
            "/login", data={"username": name, "password": password or password_of(name)}, follow_redirects=False
        )

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        """GET a page without following redirects."""
        return self.client.get(path, follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def token(self, path: str = "/") -> str:
        """The CSRF token of this session (from any of its pages)."""
        return csrf_of(self.client.get(path).text)

    def post(
        self, path: str, data: dict[str, object], *, files: object = None, token_from: str = "/"
    ) -> httpx.Response:
        """POST a form with this session's CSRF token, as the browser would."""
        return self.client.post(
            path,
            data={"csrf": self.token(token_from), **data},
            files=files,  # type: ignore[arg-type]
            follow_redirects=False,
        )


def browser(app: FastAPI, name: str | None = None) -> Browser:
    """A new browser on ``app`` (its lifespan already running), signed in as ``name`` when given."""
    opened = Browser(TestClient(app, base_url="http://testserver"))
    if name is not None:
        answer = opened.sign_in(name)
        assert answer.status_code == 303, answer.text
    return opened
