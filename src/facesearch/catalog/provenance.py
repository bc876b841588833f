"""The pictures' side of provenance: their PDQ hashes (for the hash index), and what is known of each picture
(where it came from, when, what it claims about itself)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import func, select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.schema import Collection, Face, Image, iso_utc


class HashedPictures(NamedTuple):
    """A run of hashed pictures: their ids, their collections' ids and their PDQ hashes (n x 32 bytes)."""

    ids: np.ndarray
    collection_ids: np.ndarray
    codes: np.ndarray


@dataclass(frozen=True)
class PictureRecord:
    """What is known of a stored picture: where it is and came from, and its dates and claims.

    ``first_known`` is its earliest date by the order a fact-checker trusts: the capture date the file gives
    (EXIF), else the date its source gave (a manifest), else when it was ingested; ``first_known_from`` says
    which (``captured``, ``source`` or ``ingested``).
    """

    id: int
    path: str
    collection: str
    source_url: str | None
    source_page: str | None
    captured_at: str | None
    source_date: str | None
    legal_basis: str | None
    ingested_at: str | None
    camera: str | None
    latitude: float | None
    longitude: float | None
    content_credentials: dict[str, Any] | None
    width: int | None
    height: int | None
    pdq: bytes | None

    @property
    def first_known(self) -> str | None:
        """The picture's first-known date (ISO 8601; see the class's note)."""
        return self.captured_at or self.source_date or self.ingested_at

    @property
    def first_known_from(self) -> str:
        """Where :attr:`first_known` comes from: ``captured``, ``source`` or ``ingested``."""
        return "captured" if self.captured_at else "source" if self.source_date else "ingested"


def _batches(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_HASHED = (Image.pdq.is_not(None), Image.status == "ok")


class ProvenanceStore(Store):
    """Reads of the pictures' hashes and provenance."""

    def hashed_count(self) -> int:
        """How many usable pictures have a PDQ hash."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count(Image.id)).where(*_HASHED)) or 0)

    def hashes_after(self, after_id: int, limit: int = 100_000) -> HashedPictures:
        """The next ``limit`` hashed pictures with an id above ``after_id``, ascending."""
        with self._sessions() as session:
            rows = session.execute(
                select(Image.id, Image.collection_id, Image.pdq)
                .where(Image.id > after_id, *_HASHED)
                .order_by(Image.id)
                .limit(limit)
            ).all()
        codes = np.frombuffer(b"".join(bytes(r[2] or b"") for r in rows), dtype=np.uint8).reshape(len(rows), 32)
        return HashedPictures(
            np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64), codes
        )

    def pictures(self, image_ids: Sequence[int], tx: Transaction | None = None) -> dict[int, PictureRecord]:
        """What is known of each picture named (those erased meanwhile left out)."""
        found: dict[int, PictureRecord] = {}
        with self._reading(tx) as session:
            for part in _batches(sorted({int(i) for i in image_ids})):
                for image, collection in session.execute(
                    select(Image, Collection.name)
                    .join(Collection, Collection.id == Image.collection_id)
                    .where(Image.id.in_(part))
                ):
                    found[image.id] = _record(image, collection)
        return found

    def images_of_faces(self, face_ids: Sequence[int]) -> dict[int, int]:
        """The picture each face was found in, by face id."""
        found: dict[int, int] = {}
        with self._sessions() as session:
            for part in _batches(sorted({int(i) for i in face_ids})):
                rows = session.execute(select(Face.id, Face.image_id).where(Face.id.in_(part)))
                found.update((int(face_id), int(image_id)) for face_id, image_id in rows)
        return found

    def unhashed(self, limit: int = 1000, after_id: int = 0) -> list[tuple[int, str]]:
        """Usable pictures (not videos) stored before hashing existed: (id, path), ascending after ``after_id``."""
        with self._sessions() as session:
            return list(
                session.execute(
                    select(Image.id, Image.path)
                    .where(Image.pdq.is_(None), Image.status == "ok", Image.media.is_(None), Image.id > after_id)
                    .order_by(Image.id)
                    .limit(limit)
                ).tuples()
            )

    def set_descriptions(self, tx: Transaction, rows: Sequence[dict[str, Any]]) -> None:
        """Store hashes and claims computed later for pictures (``id`` and the columns to set, per row)."""
        if rows:
            tx.execute(update(Image), list(rows))


def _record(image: Image, collection: str) -> PictureRecord:
    credentials = None
    if image.content_credentials:
        try:
            credentials = json.loads(image.content_credentials)
        except ValueError:
            credentials = {"validation": "unreadable"}
    return PictureRecord(
        id=image.id,
        path=image.path,
        collection=collection,
        source_url=image.source_url,
        source_page=image.source_page,
        captured_at=iso_utc(image.captured_at),
        source_date=iso_utc(image.source_date),
        legal_basis=image.legal_basis,
        ingested_at=iso_utc(image.created_at),
        camera=image.camera,
        latitude=image.latitude,
        longitude=image.longitude,
        content_credentials=credentials,
        width=image.width,
        height=image.height,
        pdq=image.pdq,
    )
