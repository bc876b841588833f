"""What an ingest hands to the catalog and gets back: plain records, importable without SQL.

Ingest workers build these; keeping them apart from the store spares every worker process the import of
SQLAlchemy and Alembic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass
class NewFace:
    """A face to store: geometry, quality, embedding and, optionally, the subject it is enrolled under."""

    bbox: tuple[float, float, float, float]
    landmarks: list[list[float]] | None
    detector_score: float
    quality: float
    quality_reasons: Sequence[str]
    embedding: np.ndarray
    subject: str | None = None


@dataclass
class FileOutcome:
    """What became of one file of an ingest: decoded with faces, or skipped with a reason."""

    path: str
    file_size: int | None
    mtime: float | None
    sha256: str | None
    status: str  # "ok" or "skipped"
    width: int | None = None
    height: int | None = None
    error: str | None = None
    error_detail: str | None = None
    faces: list[NewFace] = field(default_factory=list)
    source_url: str | None = None
    source_page: str | None = None
    captured_at: datetime | None = None


@dataclass
class RecordedFile:
    """How the catalog took a :class:`FileOutcome`: ``disposition`` is "indexed", "duplicate" or "skipped"."""

    path: str
    disposition: str
    face_ids: list[int]
    embeddings: list[np.ndarray]
