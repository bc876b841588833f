"""Shared support for the workbench's tests (no tests here): a data folder with one user per role, each with
a password, and browser-like clients that sign in and send forms with their CSRF token."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

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


LFW_IMAGES = (
    Path(os.environ.get("FACESEARCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    / "data"
    / "lfw-dev"
    / "images"
)


@dataclass
class WorkbenchData:
    """A data folder served to a browser: people enrolled, strangers beside them, probes kept out."""

    home: Path
    catalog_url: str
    probes: list[Path]
    people: list[str]


def build_data_folder(
    root: Path, *, people: int = 8, per_person: int = 4, strangers: int = 40, lfw: bool = True
) -> WorkbenchData:
    """Index real photos into ``root/home`` with the dlib pack, one user per role with a password.

    lfw-dev's people when ``../shared`` is there (``people`` of those with more than ``per_person`` photos,
    enrolled from ``per_person`` each, one more photo of each kept as a probe, and ``strangers`` people with
    one photo); scikit-image's public-domain astronaut otherwise, or when ``lfw`` is false (pictures that may
    be published: the screenshots). Photos are linked, never copied.
    """
    from facesearch.config import Settings

    home = root / "home"
    photos = root / "photos"
    photos.mkdir(parents=True)
    probes: list[Path] = []
    names: list[str] = []
    if lfw and LFW_IMAGES.is_dir():
        folders = sorted(p for p in LFW_IMAGES.iterdir() if p.is_dir())
        enrolled = [f for f in folders if len(list(f.iterdir())) > per_person][:people]
        for folder in enrolled:
            files = sorted(folder.iterdir())
            (photos / folder.name).mkdir()
            for file in files[:per_person]:
                (photos / folder.name / file.name).symlink_to(file)
            probes.append(files[per_person])
            names.append(folder.name)
        (photos / "unlabelled").mkdir()
        for folder in [f for f in folders if f not in enrolled][:strangers]:
            first = sorted(folder.iterdir())[0]
            (photos / "unlabelled" / first.name).symlink_to(first)
    else:
        from tests.test_api_support import probe_bytes, write_photos

        write_photos(photos)
        probe = root / "probe.png"
        probe.write_bytes(probe_bytes())
        probes.append(probe)
        names.append("Eileen_Collins")
    url = f"sqlite:///{home / 'catalog.sqlite3'}"
    settings = Settings.load(home, pack="dlib", catalog_url=url, workers=1)
    with FaceSearch(settings) as engine:
        engine.collections.create(engine.operator, "registry", legal_basis="consent of the people registered")
        engine.index([photos / name for name in names], collection="registry", subject_from_folder=True, workers=1)
        others = [p for p in photos.iterdir() if p.name not in names]
        if others:
            engine.index(others, collection="registry", workers=1)
        add_users(engine)
    return WorkbenchData(home, url, probes, names)
