"""SQLAlchemy tables of the catalog. Changes here need an Alembic migration (a test compares the two)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 text of a stored time, in UTC (SQLite hands times back without their zone, PostgreSQL with it)."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Collection(Base):
    """A named set of images held under one legal basis."""

    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    legal_basis: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Images older than this many days (since they were indexed) are purged; None keeps them.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    # Faces whose quality score is below this are not indexed (counted, not stored); None indexes every face,
    # each marked with its quality and reasons.
    min_quality: Mapped[float | None] = mapped_column(Float)


class Image(Base):
    """One distinct content (by sha256) in a collection, whether it could be used or not."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("collection_id", "sha256", name="uq_images_collection_sha256"),
        Index("ix_images_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    sha256: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)
    source_page: Mapped[str | None] = mapped_column(Text)
    # When the picture says it was taken (EXIF), and the date its source gave (a manifest's ``date``).
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "video" for a video (its faces are tracks, see Face.frame_time); NULL for a picture.
    media: Mapped[str | None] = mapped_column(String(16))
    duration_s: Mapped[float | None] = mapped_column(Float)
    # Why this picture may be held, when its manifest said (the collection's legal basis applies otherwise).
    legal_basis: Mapped[str | None] = mapped_column(Text)
    # Its PDQ hash (32 bytes) and PDQ's quality of it, for finding the same picture again (search/provenance.py).
    pdq: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    # What the file claims about itself: camera, position (EXIF) and content credentials (a C2PA summary, JSON).
    camera: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    content_credentials: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    # "ok" (decoded; see scans for faces per pack) or "skipped" (could not be used; see error).
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImageFile(Base):
    """A path at which an image's content was found (duplicates of one content share the image)."""

    __tablename__ = "image_files"
    __table_args__ = (UniqueConstraint("collection_id", "path", name="uq_image_files_collection_path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)


class ImageScan(Base):
    """That an image went through a pack's detector, and how many faces it gave (resume relies on it)."""

    __tablename__ = "image_scans"
    __table_args__ = (UniqueConstraint("image_id", "pack", name="uq_image_scans_image_pack"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    pack: Mapped[str] = mapped_column(String(120))
    faces: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Subject(Base):
    """A person known by a label, with the faces enrolled under it."""

    __tablename__ = "subjects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Face(Base):
    """One detected face: where it is, how good it is, and its embedding under one pack.

    ``id`` is also the face's id in the vector index. The embedding is kept here as well so that the index
    can always be rebuilt from the catalog, which is the source of truth.
    """

    __tablename__ = "faces"
    # AUTOINCREMENT: a deleted face's id must never be reused, since it names a vector in the index.
    __table_args__ = (Index("ix_faces_pack_id", "pack", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    pack: Mapped[str] = mapped_column(String(120))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[str | None] = mapped_column(Text)
    detector_score: Mapped[float] = mapped_column(Float)
    quality: Mapped[float] = mapped_column(Float)
    quality_reasons: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="SET NULL"), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # A face of a video (a track): first and last second seen, and the second of the frame its box is on.
    time_start: Mapped[float | None] = mapped_column(Float)
    time_end: Mapped[float | None] = mapped_column(Float)
    frame_time: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Governance (see facesearch.governance) ---------------------------------------------------------------------


class FaceThumbnail(Base):
    """A face's crop as the workbench's grids show it (JPEG, 192 px), cut at ingest so that showing candidates
    reads a row instead of decoding each photo; deleted with its face."""

    __tablename__ = "face_thumbnails"
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)


class CatalogState(Base):
    """Named counters; ``generation`` moves on every change to faces or opt-outs, so that other processes
    (a server beside the CLI) know when to catch their in-memory index and opt-out list up."""

    __tablename__ = "catalog_state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class User(Base):
    """An account: a name and one role (admin, investigator, reviewer or auditor)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # False: only the collections granted in collection_grants.
    all_collections: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The argon2 hash of the user's password for the workbench (None: no password, sign-in impossible).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_set_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in workbench session: the sha256 of its cookie's token (the token itself is never kept), its
    user, the token its forms must carry (CSRF), and when it was last used and ends at the latest."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key of a user: a public id and the argon2 hash of its secret (the secret itself is never kept)."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CollectionGrant(Base):
    """That a user limited to granted collections may see one collection."""

    __tablename__ = "collection_grants"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)


class Case(Base):
    """A case that searches are made for; ``reference`` is the ``case_id`` a search names."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CaseMember(Base):
    """A user the case's owner (or an administrator) added to a case: they may read it, and search under it
    (investigators) or decide on its candidates (reviewers)."""

    __tablename__ = "case_members"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseCandidate(Base):
    """A face a search under a case returned (first time and best score): what reviewers of the case may read
    and decide on. Written in the same transaction as the search's audit record; erased with the face."""

    __tablename__ = "case_candidates"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True, index=True)
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    similarity: Mapped[float] = mapped_column(Float)


class Decision(Base):
    """A reviewer's decision on one candidate face of a case (erased with the face)."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRecord(Base):
    """One record of the hash-chained audit log (see facesearch.governance.audit for what is hashed).

    Every field that enters the hash is text or an integer, so that it reads back byte for byte the same
    from SQLite and PostgreSQL.
    """

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str | None] = mapped_column(String(100))
    case_ref: Mapped[str | None] = mapped_column(String(200))
    probe_sha256: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    seal: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (one row): its row lock serialises appends across processes."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class OptOut(Base):
    """A person who asked never to be indexed or found: no image is kept, only embeddings (below)."""

    __tablename__ = "optouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OptOutEmbedding(Base):
    """An opted-out face's embedding under one pack, and the similarity from which a face counts as theirs."""

    __tablename__ = "optout_embeddings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    optout_id: Mapped[int] = mapped_column(ForeignKey("optouts.id", ondelete="CASCADE"), index=True)
    pack: Mapped[str] = mapped_column(String(120), index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    threshold: Mapped[float] = mapped_column(Float)


class Job(Base):
    """A background job of the server (an ingest), with its progress."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    collection: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    faces: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Clusters (see facesearch.search.clustering) ----------------------------------------------------------------


class Clustering(Base):
    """How a pack's faces were last clustered: the similarity threshold (and the false-match rate it was read
    at), the neighbours per face and Leiden's resolution."""

    __tablename__ = "clusterings"
    pack: Mapped[str] = mapped_column(String(120), primary_key=True)
    threshold: Mapped[float] = mapped_column(Float)
    fmr: Mapped[float | None] = mapped_column(Float)
    neighbours: Mapped[int] = mapped_column(Integer)
    resolution: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Cluster(Base):
    """A group of faces the clustering (or a reviewer) holds to be one person, with how sure it is.

    ``reviewed``: a reviewer made or corrected it; its pinned faces stay in it and the algorithm never merges it
    with another reviewed cluster. ``subject_id``: the person it was named as. Ids are never reused (they name
    clusters in audit records and reviewers' notes)."""

    __tablename__ = "clusters"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pack: Mapped[str] = mapped_column(String(120), index=True)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id", ondelete="SET NULL"))
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    weakest_link: Mapped[float | None] = mapped_column(Float)
    mean_similarity: Mapped[float | None] = mapped_column(Float)
    mixed: Mapped[bool] = mapped_column(Boolean, default=False)
    mixed_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClusterFace(Base):
    """That a face is in a cluster; ``pinned`` when a reviewer put it (or confirmed it) there."""

    __tablename__ = "cluster_faces"
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class ClusterApart(Base):
    """That a reviewer said two clusters are not the same person (a cannot-link; ``cluster_a < cluster_b``)."""

    __tablename__ = "cluster_apart"
    cluster_a: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    cluster_b: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewItem(Base):
    """A decision waiting for a person: a cluster flagged as likely two people, a pair of faces from a
    cross-match, or a face whose best match falls just short of the threshold. ``key`` names what it is about
    (once per thing); the decision, its note, who made it and when are filled in when it is decided."""

    __tablename__ = "review_items"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    pack: Mapped[str] = mapped_column(String(120))
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    face_a: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    face_b: Mapped[int | None] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    similarity: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decision: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StandingCrossmatch(Base):
    """A cross-match that keeps running: faces that arrive in either collection are matched against the other
    and the pairs queued for review. ``seen_face_id``: the faces up to this id have been matched."""

    __tablename__ = "standing_crossmatches"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection: Mapped[str] = mapped_column(String(200))
    against: Mapped[str] = mapped_column(String(200))
    pack: Mapped[str] = mapped_column(String(120))
    top_k: Mapped[int] = mapped_column(Integer)
    min_similarity: Mapped[float | None] = mapped_column(Float)
    seen_face_id: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
