"""Shared support for the server tests (no tests here): catalogs on both databases, homes, a real server.

Everything is real: photos (scikit-image's astronaut, LFW when ../shared is present), the dlib pack, an
SQLite file or a PostgreSQL schema of its own, and ``facesearch serve`` started as a separate process.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from facesearch.config import Settings
from facesearch.engine import FaceSearch

ROLES = ("admin", "investigator", "reviewer", "auditor")
PURPOSE = {"purpose": "humanitarian", "case_id": "CASE-1"}


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (public domain)."""
    from skimage import data

    return np.asarray(data.astronaut())


def write_photos(root: Path) -> Path:
    """A folder of real photos: the astronaut three ways (enrolled as Eileen_Collins) and a face-less one."""
    from skimage import data

    person = root / "Eileen_Collins"
    person.mkdir(parents=True)
    (root / "other").mkdir()
    rgb = astronaut()
    Image.fromarray(rgb).save(person / "portrait.jpg", quality=92)
    Image.fromarray(rgb[20:420, 60:460]).resize((300, 300)).save(person / "crop.png")
    Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(person / "mirror.webp")
    Image.fromarray(np.asarray(data.coffee())).save(root / "other" / "coffee.jpg")
    return root


def probe_bytes(fmt: str = "PNG") -> bytes:
    """A probe: a crop of the astronaut (not byte-identical to anything indexed)."""
    buffer = io.BytesIO()
    Image.fromarray(astronaut()[10:430, 50:470]).save(buffer, fmt)
    return buffer.getvalue()


@contextlib.contextmanager
def catalog_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh catalog: an SQLite file in ``folder``, or a PostgreSQL schema of its own (skips if none)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'catalog.sqlite3'}"
        return
    from sqlalchemy import create_engine, text

    from tests.conftest import _postgres_admin_url

    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (database test); PostgreSQL variant skipped")
    schema = f"fs_api_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{admin_url}?options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND application_name = :name"
                ),
                {"name": schema},
            )
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def settings(home: Path, url: str, **overrides: object) -> Settings:
    """Settings of a test data folder on catalog ``url`` with the dlib pack."""

    return Settings.load(home, pack="dlib", catalog_url=url, workers=1).with_changes(**overrides)


def make_users(engine: FaceSearch) -> dict[str, str]:
    """One user per role (named after it) with a key; returns role -> key."""
    keys = {}
    for role in ROLES:
        engine.accounts.add_user(engine.operator, role, role)
        keys[role] = engine.accounts.create_key(engine.operator, role)[1]
    return keys


def auth(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command(home: Path, url: str, *args: str, pack: str | None = "dlib") -> list[str]:
    """The facesearch command line for a data folder and catalog (run as a separate process); ``pack=None``:
    the pack the data folder remembers."""
    chosen = ["--pack", pack] if pack else []
    return [sys.executable, "-m", "facesearch.cli", "--home", str(home), *chosen, "--catalog-url", url, *args]


def run_cli(home: Path, url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI in its own process (as scripts do) and return what it did."""
    result = subprocess.run(cli_command(home, url, *args), capture_output=True, text=True, env=_env(), timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"facesearch {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("FACESEARCH_WORKERS", "1")
    return env


@contextlib.contextmanager
def server(home: Path, url: str, *extra: str, pack: str | None = "dlib") -> Iterator[str]:
    """``facesearch --home H serve --host 127.0.0.1 --port P`` as a real process; yields its base URL."""
    port = free_port()
    log = (home.parent / f"server-{port}.log").open("w")
    process = subprocess.Popen(
        cli_command(
            home, url, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra, pack=pack
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {(home.parent / f'server-{port}.log').read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not answer /health in time")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
