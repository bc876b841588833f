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
    # A face of a video is a track: when it was seen (seconds) and the time of its best frame (the box's).
    time_span: tuple[float, float] | None = None
    frame_time: float | None = None
    # The face's crop for a grid of candidates (JPEG, GRID_CROP_SIZE), cut where the picture was decoded.
    thumbnail: bytes | None = None


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
    source_date: datetime | None = None
    media: str = "image"  # or "video"
    duration_s: float | None = None
    legal_basis: str | None = None  # this file's, when its source gave one (the collection's applies otherwise)
    # The picture's fingerprint and its own claims (see facesearch.ingest.metadata).
    pdq: bytes | None = None
    pdq_quality: int | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    content_credentials: str | None = None


@dataclass
class RecordedFile:
    """How the catalog took a :class:`FileOutcome`: ``disposition`` is "indexed", "duplicate" or "skipped"."""

    path: str
    disposition: str
    face_ids: list[int]
    embeddings: list[np.ndarray]


# Governance records: what the stores hand back, plain and detached from any database session. ----------------


@dataclass(frozen=True)
class UserRecord:
    """An account: a name, one role, whether it sees every collection, and when it was disabled."""

    id: int
    name: str
    role: str
    all_collections: bool
    created_at: datetime | None
    disabled_at: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    """A signed-in workbench session (its id is the sha256 of the cookie's token)."""

    id: str
    user_id: int
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class KeyRecord:
    """An API key: its public id, its owner's id, the argon2 hash of the whole key, and when it was revoked."""

    key_id: str
    user_id: int
    secret_hash: str
    created_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditRow:
    """One audit record as stored (see facesearch.governance.audit for what is hashed)."""

    seq: int
    at: str
    actor: str
    action: str
    purpose: str | None
    case_ref: str | None
    probe_sha256: str | None
    details: str
    prev_hash: str
    hash: str
    seal: str


@dataclass(frozen=True)
class CaseRecord:
    """A case: its reference, title, owner and when it was opened and closed."""

    id: int
    reference: str
    title: str | None
    opened_by: str
    created_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class DecisionRecord:
    """A reviewer's decision on a candidate face of a case."""

    id: int
    face_id: int
    decision: str
    note: str | None
    decided_by: str
    audit_seq: int | None
    created_at: datetime | None


@dataclass(frozen=True)
class JobRecord:
    """A background job of the server and its progress."""

    id: int
    kind: str
    collection: str | None
    status: str
    files_total: int
    files_done: int
    faces: int
    result: str | None
    error: str | None
    created_by: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class OptOutRecord:
    """An opt-out: who made it, when, its note, and the packs it holds an embedding for."""

    id: int
    created_by: str
    note: str | None
    created_at: datetime | None
    packs: tuple[str, ...]


@dataclass
class ErasedRows:
    """What one erasure removed from the catalog: counts, and what must follow once it has committed."""

    images: int = 0
    faces: int = 0
    subjects: int = 0
    collections: int = 0
    # pack -> (dimension, face ids): vectors to take out of each pack's index
    removed_by_pack: dict[str, tuple[int, list[int]]] = field(default_factory=dict)
    # paths of the erased images (managed or not: the caller decides which files are its own)
    paths: list[str] = field(default_factory=list)
    # labels of the subjects removed (their folder names are redacted from kept paths)
    labels: list[str] = field(default_factory=list)
