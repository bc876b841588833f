"""Shared fixtures: real photos (scikit-image's public-domain astronaut, ../shared when present) and homes."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.milvus_server import MilvusServer, milvus_server

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared"))
SHARED_MODELS = SHARED / "models"
LFW = SHARED / "data" / "lfw-dev" / "images"
GROUP_PHOTOS = SHARED / "data" / "group-photos"


def require_shared(path: Path) -> Path:
    """Skip the test with a clear message when a ../shared resource is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside the repository)")
    return path


def copy_lfw_people(count: int, to: Path) -> list[Path]:
    """The photos of the first ``count`` lfw-dev people (by name), copied into ``to/<person>/``; sorted."""
    for person in sorted(p for p in require_shared(LFW).iterdir() if p.is_dir())[:count]:
        shutil.copytree(person, to / person.name)
    return sorted(to.rglob("*.jpg"))


@pytest.fixture(scope="session")
def converted_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding dlib's ResNet converted to ONNX once per test process (as set-up leaves it in a models
    folder), so that each test's fresh data folder does not convert it again."""
    from facesearch.vision.dlib_resnet_onnx import ConversionError, convert

    folder = tmp_path_factory.mktemp("converted-models")
    # On failure the packs fall back to dlib-bin, and tests/test_dlib_resnet_onnx.py says what failed.
    with contextlib.suppress(ConversionError):
        convert(folder)
    return folder


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, converted_models: Path) -> None:
    """Tests never see the developer's own data folder or settings."""
    for name in ("FACESEARCH_HOME", "FACESEARCH_MODELS", "FACESEARCH_PACK", "FACESEARCH_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    folders = [SHARED_MODELS, converted_models] if SHARED_MODELS.exists() else [converted_models]
    monkeypatch.setenv("FACESEARCH_MODEL_DIRS", os.pathsep.join(map(str, folders)))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, NASA, public domain): one frontal face, RGB uint8."""
    from skimage import data

    return np.asarray(data.astronaut())


@pytest.fixture()
def photo_folder(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """A small folder of real photos: the astronaut in three variants, a face-less photo, and bad files."""
    return write_photo_folder(tmp_path / "photos", astronaut)


def write_photo_folder(root: Path, astronaut: np.ndarray) -> Path:
    """The photos of :func:`photo_folder`, written into ``root``."""
    from skimage import data

    (root / "Eileen_Collins").mkdir(parents=True)
    (root / "other").mkdir()
    Image.fromarray(astronaut).save(root / "Eileen_Collins" / "portrait.jpg", quality=92)
    Image.fromarray(astronaut[20:420, 60:460]).resize((300, 300)).save(root / "Eileen_Collins" / "crop.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(root / "Eileen_Collins" / "mirror.webp")
    Image.fromarray(np.asarray(data.coffee())).save(root / "other" / "coffee.jpg")
    (root / "other" / "empty.jpg").write_bytes(b"")
    (root / "other" / "report.jpg").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n")
    (root / "other" / "notes.txt").write_text("not a photo")
    return root


class IndexedFolders:
    """Data folders indexed once per test process (dlib pack, SQLite catalog) and handed out as copies.

    Indexing the same photos again in every test that only needs them indexed is most of those tests' time;
    a copy of the data folder (catalog, vector files, audit key) takes milliseconds. The photos they were
    indexed from are shared by every copy: read them, never change them.
    """

    def __init__(self, root: Path, astronaut: np.ndarray) -> None:
        self.root = root
        self.photos = write_photo_folder(root / "photos", astronaut)
        self._built: dict[tuple[tuple[str, str, bool], ...], Path] = {}

    def copy(self, to: Path, *collections: tuple[str, str, bool]) -> tuple[Path, Path]:
        """(a fresh data folder at ``to``, the photos) with each (subfolder, collection, subject_from_folder)
        indexed in turn, as ``facesearch --pack dlib index PHOTOS/SUBFOLDER -c COLLECTION`` would."""
        import shutil

        from facesearch.config import Settings
        from facesearch.engine import FaceSearch

        recipe = tuple(collections) or (("", "demo", True),)
        template = self._built.get(recipe)
        if template is None:
            template = self.root / f"home-{len(self._built)}"
            url = f"sqlite:///{template / 'catalog.sqlite3'}"
            with FaceSearch(Settings.load(template, pack="dlib", catalog_url=url, workers=1)) as engine:
                for subfolder, collection, from_folder in recipe:
                    folder = self.photos / subfolder if subfolder else self.photos
                    engine.index([folder], collection=collection, subject_from_folder=from_folder, workers=1)
            self._built[recipe] = template
        shutil.copytree(template, to)
        return to, self.photos


@pytest.fixture(scope="session")
def indexed_folders(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> IndexedFolders:
    """Data folders indexed once per test process, copied for each test (see :class:`IndexedFolders`)."""
    return IndexedFolders(tmp_path_factory.mktemp("indexed"), astronaut)


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    """An empty data folder."""
    path = tmp_path / "home"
    yield path


# Catalog databases ---------------------------------------------------------------------------------------------

POSTGRES_URLS = (
    # FACESEARCH_TEST_POSTGRES_URL points the tests at another server; otherwise the local one, as either user.
    *filter(None, [os.environ.get("FACESEARCH_TEST_POSTGRES_URL")]),
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _postgres_admin_url() -> str | None:
    """The first PostgreSQL URL that accepts a connection (and can create schemas), or None."""
    from sqlalchemy import create_engine, text

    for url in POSTGRES_URLS:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url
        except Exception:  # any failure means "not usable here"; the next candidate is tried
            continue
        finally:
            engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A reachable PostgreSQL server's URL, or a skip saying why there is none."""
    url = _postgres_admin_url()
    if url is None:
        pytest.skip(
            "PostgreSQL is not reachable at 127.0.0.1:5432 (database test, user postgres or root); "
            "set FACESEARCH_TEST_POSTGRES_URL to run the PostgreSQL catalog tests"
        )
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty catalog database URL: an SQLite file, or a PostgreSQL schema of its own.

    The PostgreSQL variant creates a uniquely named schema in the server's ``test`` database, points the
    URL's ``search_path`` at it (so parallel tests never see each other's tables) and drops it afterwards.
    It skips with a clear message when the server is unreachable.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = request.getfixturevalue("postgres_admin_url")
    schema = f"fs_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        # application_name tags this test's connections, so that only they are ended before the drop.
        yield f"{admin_url}?options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.connect() as connection:
            # Connections a test forgot to close would block the drop; they belong to this test alone.
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND application_name = :name"
                ),
                {"name": schema},
            )
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _no_index_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests pick their vector index backend explicitly, never from the developer's environment."""
    monkeypatch.delenv("FACESEARCH_INDEX_URL", raising=False)


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """A real Milvus standalone server (2.3.5, from PyPI's ``milvus`` package), one per test module (servers of
    different modules, on different test workers, run side by side)."""
    pytest.importorskip("pymilvus", reason="pymilvus (the 'cluster' extra) is not installed")
    try:
        with milvus_server(tmp_path_factory.mktemp("milvus")) as server:
            yield server
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
