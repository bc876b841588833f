"""The catalog store: every read and write of the SQL catalog goes through :class:`Catalog`."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import bindparam, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from facesearch.catalog.accounts import AccountStore
from facesearch.catalog.audit_log import AuditStore
from facesearch.catalog.base import Transaction
from facesearch.catalog.cases import CaseStore
from facesearch.catalog.clusters import ClusterStore
from facesearch.catalog.erasure import ErasureStore
from facesearch.catalog.jobs import JobStore
from facesearch.catalog.optouts import OptOutStore
from facesearch.catalog.provenance import ProvenanceStore
from facesearch.catalog.records import FileOutcome, NewFace, RecordedFile
from facesearch.catalog.review import ReviewStore, StandingStore
from facesearch.catalog.schema import (
    CatalogState,
    Collection,
    Face,
    FaceThumbnail,
    Image,
    ImageFile,
    ImageScan,
    Subject,
    iso_utc,
)
from facesearch.catalog.sessions import SessionStore
from facesearch.catalog.subjects import SubjectStore

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

__all__ = ["Catalog", "FileOutcome", "NewFace", "RecordedFile"]


@dataclass
class FaceDetails:
    """Everything a search result shows about a stored face."""

    face_id: int
    image_id: int
    image_path: str
    collection: str
    subject: str | None
    source_url: str | None
    bbox: tuple[float, float, float, float]
    quality: float
    pack: str
    source_page: str | None = None
    captured_at: str | None = None  # ISO 8601, when the source says when the photo was taken
    media: str = "image"  # or "video": the face is a track, seen during time_span, its box on frame_time's frame
    time_span: tuple[float, float] | None = None
    frame_time: float | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets searches read while an ingest writes; NORMAL sync is durable at each checkpoint and safe in WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten with zeros, so that an erased face's embedding and a subject's label do not
    # stay readable in the file's free space (erasure then checkpoints the WAL, see Catalog.forget_deleted).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def normalise_catalog_url(url: str) -> str:
    """The URL with PostgreSQL routed to the installed driver (psycopg 3).

    ``postgresql://`` and ``postgres://`` (as servers and platforms usually print them) would otherwise make
    SQLAlchemy look for psycopg2, which facesearch does not install.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def create_catalog_engine(url: str) -> Engine:
    """An SQLAlchemy engine for a catalog URL (SQLite file or PostgreSQL), with SQLite tuned for concurrency."""
    url = normalise_catalog_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade_schema(engine: Engine) -> None:
    """Bring the catalog's schema to the newest migration (creates it on an empty database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


_FACE_DETAILS = (
    select(
        Face.id,
        Face.image_id,
        Image.path,
        Collection.name,
        Subject.label,
        Image.source_url,
        Face.x,
        Face.y,
        Face.w,
        Face.h,
        Face.quality,
        Face.pack,
        Image.source_page,
        Image.captured_at,
        Image.media,
        Face.time_start,
        Face.time_end,
        Face.frame_time,
    )
    .join(Image, Image.id == Face.image_id)
    .join(Collection, Collection.id == Image.collection_id)
    .outerjoin(Subject, Subject.id == Face.subject_id)
    .where(Face.id.in_(bindparam("ids", expanding=True)))
)


_THUMBNAILS = select(FaceThumbnail.face_id, FaceThumbnail.jpeg).where(
    FaceThumbnail.face_id.in_(bindparam("ids", expanding=True))
)


FaceFilter = Callable[[Transaction, str, Sequence[FileOutcome]], list[FileOutcome]]
"""Called with (transaction, pack key, outcomes) inside an ingest batch's transaction; returns the outcomes
with the faces that must not be stored taken out."""

GENERATION = "generation"
_GENERATION = select(CatalogState.value).where(CatalogState.key == GENERATION)


SNAPSHOT_WAIT_S = 30.0
"""How long an erasure waits for older transactions to end before rewriting PostgreSQL's tables."""

_OLDER_SNAPSHOTS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() "
    "AND ((backend_xmin IS NOT NULL AND age(backend_xmin) >= age(CAST(:horizon AS xid))) "
    "OR (backend_xid IS NOT NULL AND age(backend_xid) >= age(CAST(:horizon AS xid))))"
)


def _wait_for_older_snapshots(connection: Any, wait_s: float = SNAPSHOT_WAIT_S) -> None:
    """Wait until no other transaction of the database began before now (at most ``wait_s``).

    A rewrite (``VACUUM FULL``) copies deleted rows that an older transaction might still read: while a
    search or an ingest that began before the erasure is open, the erased rows would survive into the new
    files. Such transactions last milliseconds; one left open longer is logged, and its rows go at the next
    rewrite.
    """
    horizon = connection.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar_one()
    horizon = str(int(horizon) % 2**32)
    deadline = time.monotonic() + wait_s
    while connection.execute(_OLDER_SNAPSHOTS, {"horizon": horizon}).scalar_one():
        if time.monotonic() > deadline:
            log.warning("an erasure rewrites tables while an older transaction is open: its rows may remain")
            return
        time.sleep(0.1)


def bump_generation(session: Session) -> None:
    """Move the catalog's generation on, inside the caller's transaction.

    Every write that adds or removes faces, pictures or opt-outs calls it, so that another process holding an index
    in memory (a server beside the CLI) sees on its next request that it must catch up with the catalog.
    """
    session.execute(update(CatalogState).where(CatalogState.key == GENERATION).values(value=CatalogState.value + 1))


def _batches(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """Slices of at most ``size`` values, to keep IN (...) lists within every database's limits."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _insert_returning_ids(session: Session, table: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` in one bulk statement; their new ids, in the order of ``rows``."""
    if not rows:
        return []
    statement = insert(table).returning(table.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


class Catalog:
    """Collections, images, faces and subjects in SQL (SQLite by default, PostgreSQL for servers)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = create_catalog_engine(url)
        if migrate:
            upgrade_schema(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # (collection id, pack) -> (catalog generation, face ids): see collection_face_ids.
        self._collection_faces: dict[tuple[int, str], tuple[int, np.ndarray]] = {}
        # The stores of the other aggregates: every query of the catalog lives in this package.
        self.accounts = AccountStore(self._sessions)
        self.audit_log = AuditStore(self._sessions)
        self.cases = CaseStore(self._sessions)
        self.jobs = JobStore(self._sessions)
        self.optouts = OptOutStore(self._sessions)
        self.subjects = SubjectStore(self._sessions)
        self.clusters = ClusterStore(self._sessions)
        self.provenance = ProvenanceStore(self._sessions)
        self.review = ReviewStore(self._sessions)
        self.standing = StandingStore(self._sessions)
        self.erasure = ErasureStore(self._sessions)
        self.sessions = SessionStore(self._sessions)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def session(self) -> Session:
        """A new ORM session (use as a context manager); for the catalog's own stores and tests."""
        return self._sessions()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A transaction that commits when the block ends and rolls back if it raises: what services hand to
        the store methods that must commit together (a change and its audit record)."""
        with self._sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def rehearsal(self) -> Iterator[Transaction]:
        """A transaction that is always rolled back: to see what a change would do (an erasure's dry run)."""
        with self._sessions() as session:
            session.begin()
            try:
                yield session
            finally:
                session.rollback()

    # Tables that hold personal data and lose rows on erasure (PostgreSQL vacuums them after one).
    _ERASED_TABLES = (
        "face_thumbnails",
        "faces",
        "subjects",
        "images",
        "image_files",
        "image_scans",
        "decisions",
        "case_candidates",
        "cluster_faces",
        "clusters",
        "review_items",
    )

    def forget_deleted(self, *, rewrite: bool = True) -> None:
        """Make the storage forget rows deleted so far (after an erasure has committed).

        SQLite already overwrote them with zeros (``secure_delete``) in pages that reach the main file at the
        next checkpoint; the write-ahead log still holds copies of the pages from before, so it is checkpointed
        now and truncated to zero bytes. PostgreSQL leaves deleted rows in its pages: a plain vacuum frees the
        space but does not overwrite it, so with ``rewrite`` the tables that lose rows on erasure are rewritten
        (``VACUUM FULL``: new files, the old ones unlinked), which locks each table while it is copied; without,
        they are only vacuumed. Old row versions may still sit in PostgreSQL's own WAL and backups, which its
        administrator's retention governs (docs/server.md).
        """
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        if self.engine.dialect.name == "postgresql":
            command = "VACUUM FULL" if rewrite else "VACUUM"
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                _wait_for_older_snapshots(connection)
                for table in self._ERASED_TABLES:
                    connection.exec_driver_sql(f"{command} {table}")

    # Collections -------------------------------------------------------------------------------------------

    def ensure_collection(
        self,
        name: str,
        *,
        description: str | None = None,
        legal_basis: str | None = None,
        source: str | None = None,
        min_quality: float | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> int:
        """The id of collection ``name``, creating it if needed; given fields update an existing one.

        ``min_quality`` sets the collection's quality policy: faces scoring below it are not indexed from now
        on; 0 goes back to indexing every face (each marked with its quality). ``also(session)`` runs in the
        same transaction (the audit record of what is about to be done).
        """
        with self.session() as session, session.begin():
            collection = session.scalar(select(Collection).where(Collection.name == name))
            if collection is None:
                collection = Collection(name=name, description=description, legal_basis=legal_basis, source=source)
                session.add(collection)
                session.flush()
            else:
                for attribute, value in (
                    ("description", description),
                    ("legal_basis", legal_basis),
                    ("source", source),
                ):
                    if value is not None:
                        setattr(collection, attribute, value)
            if min_quality is not None:
                collection.min_quality = min_quality if min_quality > 0 else None
            if also is not None:
                also(session)
            return collection.id

    def collection_min_quality(self, collection_id: int) -> float | None:
        """The quality below which collection ``collection_id`` does not index faces, or ``None`` (index all)."""
        with self.session() as session:
            return session.scalar(select(Collection.min_quality).where(Collection.id == collection_id))

    def collection_id(self, name: str) -> int | None:
        """The id of collection ``name``, or ``None``."""
        with self.session() as session:
            return session.scalar(select(Collection.id).where(Collection.name == name))

    def collection_names(self) -> list[str]:
        """Every collection's name, sorted (no counts: cheap at any size)."""
        with self.session() as session:
            return list(session.scalars(select(Collection.name).order_by(Collection.name)))

    def collections(self) -> list[dict[str, Any]]:
        """Every collection with its image, skipped-file and face counts."""
        with self.session() as session:
            images = dict(
                session.execute(
                    select(Image.collection_id, func.count()).where(Image.status == "ok").group_by(Image.collection_id)
                ).all()
            )
            skipped = dict(
                session.execute(
                    select(Image.collection_id, func.count())
                    .where(Image.status == "skipped")
                    .group_by(Image.collection_id)
                ).all()
            )
            faces = dict(
                session.execute(
                    select(Image.collection_id, func.count(Face.id))
                    .join(Face, Face.image_id == Image.id)
                    .group_by(Image.collection_id)
                ).all()
            )
            return [
                {
                    "name": c.name,
                    "description": c.description,
                    "legal_basis": c.legal_basis,
                    "source": c.source,
                    "created_at": c.created_at.isoformat() if c.created_at else None,
                    "min_quality": c.min_quality,
                    "retention_days": c.retention_days,
                    "images": images.get(c.id, 0),
                    "skipped": skipped.get(c.id, 0),
                    "faces": faces.get(c.id, 0),
                }
                for c in session.scalars(select(Collection).order_by(Collection.name))
            ]

    # Ingest ------------------------------------------------------------------------------------------------

    def done_paths(self, collection_id: int, pack: str) -> dict[str, tuple[int | None, float | None]]:
        """Paths of this collection that need no more work for ``pack``: path -> (size, mtime) when recorded.

        A path is done when its content was skipped as unusable or was scanned by the pack; a changed size
        or modification time makes the caller look at it again.
        """
        with self.session() as session:
            scanned = select(ImageScan.image_id).where(ImageScan.pack == pack)
            rows = session.execute(
                select(ImageFile.path, ImageFile.file_size, ImageFile.mtime)
                .join(Image, Image.id == ImageFile.image_id)
                .where(ImageFile.collection_id == collection_id)
                .where((Image.status == "skipped") | Image.id.in_(scanned))
            ).all()
            return {path: (size, mtime) for path, size, mtime in rows}

    def record_files(
        self,
        collection_id: int,
        pack: str,
        outcomes: Sequence[FileOutcome],
        *,
        keep: FaceFilter | None = None,
    ) -> list[RecordedFile]:
        """Store a batch of ingest outcomes in one transaction; returns the new faces' ids and vectors.

        The same content (sha256) in the same collection is stored once: a second path is remembered as
        another location of the first image, and its faces are not stored again (unless the image was never
        scanned by this pack, as when a collection is indexed again with another pack). Existing rows are
        looked up once per batch and new rows go in as bulk inserts (one statement per table, ids returned in
        order), so a batch costs a handful of statements, not several per file. ``keep(tx, pack, outcomes)``
        runs first, in the same transaction, and may drop faces (the opt-out list's, see
        :func:`facesearch.governance.optout.opted_out_filter`): what it drops is never stored.
        """
        with self.session() as session, session.begin():
            if keep is not None:
                outcomes = keep(session, pack, outcomes)
            shas = sorted({o.sha256 for o in outcomes if o.sha256 is not None})
            known: dict[str, tuple[int, str]] = {}  # sha256 -> (image id, status)
            for part in _batches(shas):
                for image_id, sha256, status in session.execute(
                    select(Image.id, Image.sha256, Image.status).where(
                        Image.collection_id == collection_id, Image.sha256.in_(part)
                    )
                ):
                    known[sha256 or ""] = (image_id, status)
            scanned: set[int] = set()
            for part in _batches([image_id for image_id, _ in known.values()]):
                scanned.update(
                    session.scalars(
                        select(ImageScan.image_id).where(ImageScan.pack == pack, ImageScan.image_id.in_(part))
                    )
                )
            locations: dict[str, int] = {}  # path -> image_files.id
            for part in _batches(sorted({o.path for o in outcomes})):
                for location_id, path in session.execute(
                    select(ImageFile.id, ImageFile.path).where(
                        ImageFile.collection_id == collection_id, ImageFile.path.in_(part)
                    )
                ):
                    locations[path] = location_id

            # An image is either known (its id) or new in this batch (a negative slot: -1 - position in
            # new_images), resolved to its id once the batch's images are inserted.
            new_images: list[dict[str, Any]] = []
            first_in_batch: dict[str, int] = {}
            plans: list[tuple[FileOutcome, int, str, bool]] = []  # outcome, image ref, disposition, add faces
            for outcome in outcomes:
                sha = outcome.sha256
                if sha is not None and sha in first_in_batch:
                    plans.append((outcome, first_in_batch[sha], "duplicate", False))
                    continue
                if sha is None or sha not in known:
                    new_images.append(self._new_image_row(collection_id, outcome))
                    ref = -len(new_images)
                    if sha is not None:
                        first_in_batch[sha] = ref
                    indexed = outcome.status == "ok"
                    plans.append((outcome, ref, "indexed" if indexed else "skipped", indexed))
                    continue
                image_id, status = known[sha]
                if status == "ok" and outcome.status == "ok" and image_id not in scanned:
                    scanned.add(image_id)
                    plans.append((outcome, image_id, "indexed", True))
                else:
                    plans.append((outcome, image_id, "duplicate", False))
            new_ids = _insert_returning_ids(session, Image, new_images)

            def image_id_of(ref: int) -> int:
                return ref if ref >= 0 else new_ids[-1 - ref]

            subjects = self._subject_ids(session, {f.subject for o, _, _, add in plans if add for f in o.faces})
            face_rows: list[dict[str, Any]] = []
            face_thumbnails: list[bytes | None] = []
            scan_rows: list[dict[str, Any]] = []
            new_locations: list[dict[str, Any]] = []
            moved_locations: list[dict[str, Any]] = []
            for outcome, ref, _, add in plans:
                image_id = image_id_of(ref)
                if add:
                    face_rows.extend(self._face_row(image_id, pack, f, subjects) for f in outcome.faces)
                    face_thumbnails.extend(f.thumbnail for f in outcome.faces)
                    scan_rows.append({"image_id": image_id, "pack": pack, "faces": len(outcome.faces)})
                location = {"image_id": image_id, "file_size": outcome.file_size, "mtime": outcome.mtime}
                if outcome.path in locations:
                    moved_locations.append({"id": locations[outcome.path], **location})
                else:
                    new_locations.append({"collection_id": collection_id, "path": outcome.path, **location})
                    locations[outcome.path] = 0  # a path repeated within the batch is stored once
            face_ids = _insert_returning_ids(session, Face, face_rows)
            thumbnails = [
                {"face_id": face_id, "jpeg": thumbnail}
                for face_id, thumbnail in zip(face_ids, face_thumbnails, strict=True)
                if thumbnail
            ]
            if thumbnails:
                session.execute(insert(FaceThumbnail), thumbnails)
            if scan_rows:
                session.execute(insert(ImageScan), scan_rows)
            if new_locations:
                session.execute(insert(ImageFile), new_locations)
            moved_locations = [row for row in moved_locations if row["id"]]
            if moved_locations:
                session.execute(update(ImageFile), moved_locations)
            if face_ids or new_ids:  # new pictures too: a server's provenance lookup must see them
                bump_generation(session)
            recorded: list[RecordedFile] = []
            next_face = 0
            for outcome, _, disposition, add in plans:
                count = len(outcome.faces) if add else 0
                recorded.append(
                    RecordedFile(
                        path=outcome.path,
                        disposition=disposition,
                        face_ids=face_ids[next_face : next_face + count],
                        embeddings=[np.asarray(f.embedding, dtype=np.float32) for f in outcome.faces] if add else [],
                    )
                )
                next_face += count
            return recorded

    @staticmethod
    def _new_image_row(collection_id: int, outcome: FileOutcome) -> dict[str, Any]:
        return {
            "collection_id": collection_id,
            "sha256": outcome.sha256,
            "path": outcome.path,
            "source_url": outcome.source_url,
            "source_page": outcome.source_page,
            "captured_at": outcome.captured_at,
            "source_date": outcome.source_date,
            "legal_basis": outcome.legal_basis,
            "media": outcome.media if outcome.media != "image" else None,
            "duration_s": outcome.duration_s,
            "pdq": outcome.pdq,
            "pdq_quality": outcome.pdq_quality,
            "camera": outcome.camera,
            "latitude": outcome.latitude,
            "longitude": outcome.longitude,
            "content_credentials": outcome.content_credentials,
            "width": outcome.width,
            "height": outcome.height,
            "file_size": outcome.file_size,
            "status": outcome.status,
            "error": outcome.error,
            "error_detail": outcome.error_detail,
        }

    @staticmethod
    def _face_row(image_id: int, pack: str, face: NewFace, subjects: dict[str, int]) -> dict[str, Any]:
        return {
            "image_id": image_id,
            "pack": pack,
            "x": float(face.bbox[0]),
            "y": float(face.bbox[1]),
            "w": float(face.bbox[2]),
            "h": float(face.bbox[3]),
            "landmarks": json.dumps(face.landmarks) if face.landmarks is not None else None,
            "detector_score": float(face.detector_score),
            "quality": float(face.quality),
            "quality_reasons": json.dumps(list(face.quality_reasons)),
            "subject_id": subjects[face.subject] if face.subject else None,
            "embedding": np.asarray(face.embedding, dtype=np.float32).tobytes(),
            "time_start": face.time_span[0] if face.time_span else None,
            "time_end": face.time_span[1] if face.time_span else None,
            "frame_time": face.frame_time,
        }

    @staticmethod
    def _subject_ids(session: Session, labels: set[str | None]) -> dict[str, int]:
        """Ids of subjects by label, creating the missing ones."""
        wanted = sorted(label for label in labels if label)
        found: dict[str, int] = {}
        for part in _batches(wanted):
            found.update(
                (label, subject_id)
                for label, subject_id in session.execute(
                    select(Subject.label, Subject.id).where(Subject.label.in_(part))
                )
            )
        missing = [Subject(label=label) for label in wanted if label not in found]
        if missing:
            session.add_all(missing)
            session.flush()
            found.update((subject.label, subject.id) for subject in missing)
        return found

    # Faces and vectors -------------------------------------------------------------------------------------

    def generation(self) -> int:
        """The catalog's generation: it moves whenever faces or opt-outs are added or removed (one cheap read)."""
        with self.engine.connect() as connection:
            return int(connection.execute(_GENERATION).scalar() or 0)

    def face_ids(self, pack: str) -> np.ndarray:
        """Ids of every face stored for ``pack``, ascending, as int64."""
        with self.session() as session:
            ids = session.scalars(select(Face.id).where(Face.pack == pack).order_by(Face.id)).all()
            return np.array(ids, dtype=np.int64)

    def face_count(self, pack: str) -> int:
        """How many faces are stored for ``pack``."""
        with self.session() as session:
            return int(session.scalar(select(func.count(Face.id)).where(Face.pack == pack)) or 0)

    def iter_embeddings(
        self, pack: str, ids: Sequence[int] | None = None, *, chunk: int = 50_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids, vectors)`` chunks of stored embeddings for ``pack`` (all, or only ``ids``)."""
        with self.session() as session:
            if ids is not None:
                wanted = list(ids)
                for start in range(0, len(wanted), 900):
                    rows = session.execute(
                        select(Face.id, Face.embedding).where(Face.id.in_(wanted[start : start + 900]))
                    ).all()
                    if rows:
                        yield self._to_arrays(rows)
                return
            # Ranges of ids, not "id > last ORDER BY id LIMIT n": without fresh statistics (after a bulk load)
            # PostgreSQL answers that with a scan of every row above ``last`` and a sort, for every chunk
            # (measured: 29 s per chunk at 10M faces). A bounded range is cheap whatever the plan.
            low, high = session.execute(select(func.min(Face.id), func.max(Face.id)).where(Face.pack == pack)).one()
            if low is None:
                return
            start = int(low)
            while start <= high:
                rows = session.execute(
                    select(Face.id, Face.embedding)
                    .where(Face.pack == pack, Face.id >= start, Face.id < start + chunk)
                    .order_by(Face.id)
                ).all()
                if rows:
                    yield self._to_arrays(rows)
                start += chunk

    def subject_embeddings(self, labels: Sequence[str], pack: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The faces enrolled under each of ``labels`` for ``pack``: label -> (face ids, vectors)."""
        found: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        with self.session() as session:
            for part in _batches(sorted(set(labels))):
                rows = session.execute(
                    select(Subject.label, Face.id, Face.embedding)
                    .join(Face, Face.subject_id == Subject.id)
                    .where(Subject.label.in_(part), Face.pack == pack)
                    .order_by(Face.id)
                ).all()
                for label, face_id, blob in rows:
                    ids, vectors = found.setdefault(label, ([], []))
                    ids.append(int(face_id))
                    vectors.append(np.frombuffer(blob, dtype=np.float32))
        return {label: (np.array(ids, dtype=np.int64), np.stack(vectors)) for label, (ids, vectors) in found.items()}

    @staticmethod
    def _to_arrays(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        return ids, vectors

    def thumbnails(self, face_ids: Sequence[int]) -> dict[int, bytes]:
        """The grid crops cut at ingest of the faces named (faces without one left out), in one round trip."""
        if not face_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(_THUMBNAILS, {"ids": [int(i) for i in face_ids]}).all()
        return {int(face_id): bytes(jpeg) for face_id, jpeg in rows}

    def face_details(self, face_ids: Sequence[int]) -> dict[int, FaceDetails]:
        """Metadata of the given faces in one round trip: image, collection, subject, source, box."""
        if not face_ids:
            return {}
        # One prepared statement with an expanding IN: building the query anew costs more than running it.
        with self.engine.connect() as connection:
            rows = connection.execute(_FACE_DETAILS, {"ids": [int(i) for i in face_ids]}).all()
        return {
            row[0]: FaceDetails(
                face_id=row[0],
                image_id=row[1],
                image_path=row[2],
                collection=row[3],
                subject=row[4],
                source_url=row[5],
                bbox=(row[6], row[7], row[8], row[9]),
                quality=row[10],
                pack=row[11],
                source_page=row[12],
                captured_at=iso_utc(row[13]),
                media=row[14] or "image",
                time_span=(row[15], row[16]) if row[15] is not None else None,
                frame_time=row[17],
            )
            for row in rows
        }

    def collection_face_ids(self, collection_id: int, pack: str) -> np.ndarray:
        """Ids of the faces of one collection under ``pack``.

        Kept until the catalog's generation moves (any face added or removed): every search restricted to a
        collection asks for them, and at 10M faces reading a 100,000-face collection takes 0.25 s on SQLite
        and 2.8 s on PostgreSQL, against one small read of the generation.
        """
        generation = self.generation()
        cached = self._collection_faces.get((collection_id, pack))
        if cached is not None and cached[0] == generation:
            return cached[1]
        ids = self._read_collection_face_ids(collection_id, pack)
        ids.setflags(write=False)  # shared by every caller until the catalog changes
        self._collection_faces[(collection_id, pack)] = (generation, ids)
        return ids

    def _read_collection_face_ids(self, collection_id: int, pack: str) -> np.ndarray:
        with self.session() as session:
            # "pack || ''" keeps SQLite from walking every face of the pack by ix_faces_pack_id when it has no
            # statistics (it then read all 10M faces to find a 100k-face collection: 5.5 s); the collection's
            # images, then their faces by image_id, is the plan at any size (8 ms for 3,000 of 300,000 faces).
            ids = session.scalars(
                select(Face.id)
                .join(Image, Image.id == Face.image_id)
                .where(Image.collection_id == collection_id, Face.pack.concat("") == pack)
            ).all()
            return np.array(ids, dtype=np.int64)

    def pack_face_ids(self, pack: str) -> np.ndarray:
        """Ids of every face stored under ``pack``."""
        with self.session() as session:
            return np.array(session.scalars(select(Face.id).where(Face.pack == pack)).all(), dtype=np.int64)

    def face_qualities(self, face_ids: Sequence[int]) -> dict[int, float]:
        """face id -> its quality score (0-1)."""
        found: dict[int, float] = {}
        with self.session() as session:
            for batch in _batches([int(i) for i in face_ids], 5000):
                found.update(
                    {
                        int(i): float(q)
                        for i, q in session.execute(select(Face.id, Face.quality).where(Face.id.in_(batch)))
                    }
                )
        return found

    def face_paths(self, face_ids: Sequence[int]) -> dict[int, str]:
        """face id -> the path of its image, in batches (cheaper than :meth:`face_details` for many faces)."""
        found: dict[int, str] = {}
        with self.session() as session:
            for batch in _batches([int(i) for i in face_ids], 5000):
                query = select(Face.id, Image.path).join(Image, Image.id == Face.image_id).where(Face.id.in_(batch))
                found.update({int(i): str(p) for i, p in session.execute(query)})
        return found

    Box = tuple[float, float, float, float]

    def face_boxes(self, tx: Transaction, face_ids: Sequence[int]) -> list[tuple[int, int, Box]]:
        """(face id, image id, box) of the given faces that exist."""
        found: list[tuple[int, int, Catalog.Box]] = []
        for part in _batches(sorted(set(face_ids))):
            for face_id, image_id, x, y, w, h in tx.execute(
                select(Face.id, Face.image_id, Face.x, Face.y, Face.w, Face.h).where(Face.id.in_(part))
            ):
                found.append((int(face_id), int(image_id), (x, y, w, h)))
        return found

    def faces_in_images(
        self, tx: Transaction, image_ids: Sequence[int], *, packs_other_than: Sequence[str]
    ) -> list[tuple[int, int, Box]]:
        """(face id, image id, box) of the faces of other packs than ``packs_other_than`` in these images."""
        found: list[tuple[int, int, Catalog.Box]] = []
        for part in _batches(sorted(set(image_ids))):
            for face_id, image_id, x, y, w, h in tx.execute(
                select(Face.id, Face.image_id, Face.x, Face.y, Face.w, Face.h).where(
                    Face.image_id.in_(part), Face.pack.not_in(sorted(packs_other_than))
                )
            ):
                found.append((int(face_id), int(image_id), (x, y, w, h)))
        return found

    # Reporting ---------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts for ``facesearch status``: images used, faces, files skipped (by reason), packs."""
        with self.session() as session:
            images = session.scalar(select(func.count(Image.id)).where(Image.status == "ok")) or 0
            skipped = session.scalar(select(func.count(Image.id)).where(Image.status == "skipped")) or 0
            faces = session.scalar(select(func.count(Face.id))) or 0
            by_reason = dict(
                session.execute(
                    select(Image.error, func.count()).where(Image.status == "skipped").group_by(Image.error)
                ).all()
            )
            packs = dict(session.execute(select(Face.pack, func.count()).group_by(Face.pack)).all())
            subjects = session.scalar(select(func.count(Subject.id))) or 0
        return {
            "images": int(images),
            "faces": int(faces),
            "skipped": int(skipped),
            "skipped_by_reason": {str(k): int(v) for k, v in by_reason.items()},
            "packs": {str(k): int(v) for k, v in packs.items()},
            "subjects": int(subjects),
        }

    def subject_count(self, *, collections: Sequence[str] | None = None) -> int:
        """How many subjects have faces (in ``collections`` when given)."""
        query = select(func.count(func.distinct(Face.subject_id))).where(Face.subject_id.is_not(None))
        if collections is not None:
            query = (
                query.join(Image, Image.id == Face.image_id)
                .join(Collection, Collection.id == Image.collection_id)
                .where(Collection.name.in_(sorted(collections)))
            )
        with self.session() as session:
            return int(session.scalar(query) or 0)

    # Collections as governed: creation, policies, retention --------------------------------------------------

    def collection_exists(self, name: str, tx: Transaction | None = None) -> bool:
        """True when a collection called ``name`` exists."""
        if tx is not None:
            return tx.scalar(select(Collection.id).where(Collection.name == name)) is not None
        return self.collection_id(name) is not None

    def create_collection(
        self,
        tx: Transaction,
        name: str,
        *,
        description: str | None,
        legal_basis: str | None,
        source: str | None,
        retention_days: int | None,
        min_quality: float | None,
    ) -> None:
        """A new collection (the caller made sure the name is free)."""
        tx.add(
            Collection(
                name=name,
                description=description,
                legal_basis=legal_basis,
                source=source,
                retention_days=retention_days,
                min_quality=min_quality,
            )
        )
        tx.flush()

    def update_collection(self, tx: Transaction, name: str, **values: Any) -> bool:
        """Set fields of a collection (retention_days, min_quality...); False when there is no such collection."""
        changed = tx.execute(update(Collection).where(Collection.name == name).values(**values))
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    def retention_policies(self) -> dict[str, int]:
        """Collection name -> maximum age in days, for the collections that have one."""
        with self.session() as session:
            rows = session.execute(
                select(Collection.name, Collection.retention_days).where(Collection.retention_days.is_not(None))
            ).all()
        return {name: int(days) for name, days in rows if days is not None}

    def images_older_than(self, cutoffs: dict[str, datetime]) -> dict[str, list[int]]:
        """Ids of the images indexed before each collection's cutoff, by collection name (collections with none
        are left out)."""
        found: dict[str, list[int]] = {}
        with self.session() as session:
            for name, cutoff in cutoffs.items():
                ids = session.scalars(
                    select(Image.id)
                    .join(Collection, Collection.id == Image.collection_id)
                    .where(Collection.name == name, Image.created_at < cutoff)
                ).all()
                if ids:
                    found[name] = [int(i) for i in ids]
        return found

    # Reads for evaluations --------------------------------------------------------------------------------

    def enrolled_faces_by_path(
        self, collection_id: int, pack: str
    ) -> list[tuple[str, int, str, bytes, float, str | None]]:
        """(path, face id, label, embedding bytes, quality, quality reasons as JSON) of every enrolled face of
        one collection and pack, by face id (a path appears once per face of its content)."""
        with self.session() as session:
            rows = session.execute(
                select(ImageFile.path, Face.id, Subject.label, Face.embedding, Face.quality, Face.quality_reasons)
                .join(Face, Face.image_id == ImageFile.image_id)
                .join(Subject, Subject.id == Face.subject_id)
                .where(ImageFile.collection_id == collection_id, Face.pack == pack)
                .order_by(Face.id)
            ).all()
        return [(str(p), int(i), str(label), bytes(blob), float(q), r) for p, i, label, blob, q, r in rows]

    def scan_counts_by_path(self, collection_id: int, pack: str) -> dict[str, int]:
        """Ingested path -> how many faces the pack found in it (photos that were not decoded are absent)."""
        with self.session() as session:
            rows = session.execute(
                select(ImageFile.path, ImageScan.faces)
                .join(ImageScan, ImageScan.image_id == ImageFile.image_id)
                .where(ImageFile.collection_id == collection_id, ImageScan.pack == pack)
            ).all()
        return {str(path): int(count) for path, count in rows}

    def skipped_files(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Files that could not be used, with the reason, newest first."""
        with self.session() as session:
            rows = session.execute(
                select(Image.path, Image.error, Image.error_detail)
                .where(Image.status == "skipped")
                .order_by(Image.id.desc())
                .limit(limit)
            ).all()
        return [{"path": p, "reason": e, "detail": d} for p, e, d in rows]
