"""Shared fixtures: real photos (scikit-image's public-domain astronaut, ../shared when present) and homes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own data folder or settings."""
    for name in ("FACESEARCH_HOME", "FACESEARCH_MODELS", "FACESEARCH_PACK", "FACESEARCH_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    if SHARED_MODELS.exists():
        monkeypatch.setenv("FACESEARCH_MODEL_DIRS", str(SHARED_MODELS))
    else:
        monkeypatch.delenv("FACESEARCH_MODEL_DIRS", raising=False)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, NASA, public domain): one frontal face, RGB uint8."""
    from skimage import data

    return np.asarray(data.astronaut())


@pytest.fixture()
def photo_folder(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """A small folder of real photos: the astronaut in three variants, a face-less photo, and bad files."""
    from skimage import data

    root = tmp_path / "photos"
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


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    """An empty data folder."""
    path = tmp_path / "home"
    yield path
