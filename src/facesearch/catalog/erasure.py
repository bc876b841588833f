"""The erasure store: what an erasure target covers, and the deletion of its rows (in the caller's transaction).

What goes: images, their file locations and scans, faces with their embeddings, reviewers' decisions and
case candidates on those faces, subjects left without faces, collections. Paths in which a folder bears an
erased subject's label are replaced (the caller says by what). ``scope`` limits every step to those collections.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from collections.abc import Collection as Names
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import ErasedRows
from facesearch.catalog.schema import (
    CaseCandidate,
    Collection,
    Decision,
    Face,
    FaceThumbnail,
    Image,
    ImageFile,
    ImageScan,
    Subject,
)

MAX_ID = 2**62  # ids are 63-bit integers in every database


@dataclass
class ErasureTargets:
    """The rows an erasure covers directly (faces of the images, orphaned subjects follow from these)."""

    image_ids: list[int]
    face_ids: list[int]
    subject_ids: set[int]
    collection_ids: list[int]

    def empty(self) -> bool:
        """True when nothing matched."""
        return not (self.image_ids or self.face_ids or self.subject_ids or self.collection_ids)


def _chunks(values: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def _like_escape(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def _in_scope(query: Any, scope: Names[str] | None) -> Any:
    if scope is None:
        return query
    return query.where(Image.collection_id.in_(select(Collection.id).where(Collection.name.in_(sorted(scope)))))


class ErasureStore(Store):
    """Finding and deleting what an erasure covers."""

    def targets(
        self, tx: Transaction, kind: str, values: Sequence[str | int], scope: Names[str] | None
    ) -> ErasureTargets:
        """The rows that erasing ``values`` of ``kind`` (image id or path, face id, subject label, source URL,
        collection name) covers, inside ``scope``. Face ids must be numbers (the caller checks)."""
        image_ids: set[int] = set()
        face_ids: set[int] = set()
        subject_ids: set[int] = set()
        collection_ids: set[int] = set()
        faces = select(Face.id).join(Image, Image.id == Face.image_id)
        for value in values:
            if kind == "image":
                image_ids.update(self._images_named(tx, value, scope))
            elif kind == "face":
                face_ids.update(tx.scalars(_in_scope(faces.where(Face.id == int(value)), scope)))
            elif kind == "subject":
                subject_id = tx.scalar(select(Subject.id).where(Subject.label == str(value)))
                if subject_id is not None:
                    found = set(tx.scalars(_in_scope(faces.where(Face.subject_id == subject_id), scope)))
                    if found or scope is None:
                        subject_ids.add(int(subject_id))
                        face_ids.update(found)
            elif kind == "source_url":
                image_ids.update(tx.scalars(_in_scope(select(Image.id).where(Image.source_url == str(value)), scope)))
            elif kind == "collection":
                if scope is not None and str(value) not in scope:
                    continue
                collection_id = tx.scalar(select(Collection.id).where(Collection.name == str(value)))
                if collection_id is not None:
                    collection_ids.add(int(collection_id))
                    image_ids.update(tx.scalars(select(Image.id).where(Image.collection_id == collection_id)))
        return ErasureTargets(sorted(image_ids), sorted(face_ids), subject_ids, sorted(collection_ids))

    @staticmethod
    def _images_named(tx: Transaction, value: str | int, scope: Names[str] | None) -> set[int]:
        """Images named by id, or by a path they were indexed from (any collection in scope)."""
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
            if number >= MAX_ID:
                return set()
            return set(tx.scalars(_in_scope(select(Image.id).where(Image.id == number), scope)))
        path = os.path.abspath(os.path.expanduser(text))
        found = set(tx.scalars(_in_scope(select(Image.id).where(Image.path.in_([text, path])), scope)))
        by_location = (
            select(ImageFile.image_id)
            .join(Image, Image.id == ImageFile.image_id)
            .where(ImageFile.path.in_([text, path]))
        )
        found.update(tx.scalars(_in_scope(by_location, scope)))
        return found

    def delete(self, tx: Transaction, targets: ErasureTargets) -> ErasedRows:
        """Delete the rows; what went, and what must follow the commit (vectors, files, labels to redact)."""
        erased = ErasedRows()
        image_ids, collection_ids = targets.image_ids, targets.collection_ids
        subject_ids = set(targets.subject_ids)
        face_ids = list(targets.face_ids)
        for part in _chunks(image_ids):
            face_ids.extend(tx.scalars(select(Face.id).where(Face.image_id.in_(part))))
        face_ids = sorted(set(face_ids))
        # Which packs and dimensions the faces belong to, to take their vectors out of the right index.
        for part in _chunks(face_ids):
            for face_id, pack, size in tx.execute(
                select(Face.id, Face.pack, func.length(Face.embedding)).where(Face.id.in_(part))
            ):
                _dim, ids = erased.removed_by_pack.setdefault(pack, (int(size) // 4, []))
                ids.append(int(face_id))
            subject_ids.update(s for s in tx.scalars(select(Face.subject_id).where(Face.id.in_(part))) if s is not None)
        paths: set[str] = set()
        for part in _chunks(image_ids):
            paths.update(tx.scalars(select(Image.path).where(Image.id.in_(part))))
            paths.update(tx.scalars(select(ImageFile.path).where(ImageFile.image_id.in_(part))))
        for part in _chunks(face_ids):
            tx.execute(delete(Decision).where(Decision.face_id.in_(part)))
            tx.execute(delete(CaseCandidate).where(CaseCandidate.face_id.in_(part)))
            tx.execute(delete(FaceThumbnail).where(FaceThumbnail.face_id.in_(part)))
            tx.execute(delete(Face).where(Face.id.in_(part)))
        for part in _chunks(image_ids):
            tx.execute(delete(ImageScan).where(ImageScan.image_id.in_(part)))
            tx.execute(delete(ImageFile).where(ImageFile.image_id.in_(part)))
            tx.execute(delete(Image).where(Image.id.in_(part)))
        # Subjects left without any face go too: a label is personal data.
        orphaned = [
            s for s in sorted(subject_ids) if tx.scalar(select(func.count(Face.id)).where(Face.subject_id == s)) == 0
        ]
        for part in _chunks(orphaned):
            erased.labels.extend(tx.scalars(select(Subject.label).where(Subject.id.in_(part))))
            tx.execute(delete(Subject).where(Subject.id.in_(part)))
        for part in _chunks(collection_ids):
            tx.execute(delete(Collection).where(Collection.id.in_(part)))
        erased.images, erased.faces = len(image_ids), len(face_ids)
        erased.subjects, erased.collections = len(orphaned), len(collection_ids)
        erased.paths = sorted(paths)
        return erased

    def redact_paths(
        self,
        tx: Transaction,
        labels: Sequence[str],
        scope: Names[str] | None,
        replacement: Callable[[str, int, int], str],
    ) -> int:
        """Replace every kept path in which a folder is named after one of ``labels`` by
        ``replacement(path, image id, number of the location)``; returns how many images had such a path."""
        if not labels:
            return 0
        wanted = {label.casefold() for label in labels}

        def names_someone(path: str) -> bool:
            return any(part.casefold() in wanted for part in Path(path).parts[:-1])

        redacted: set[int] = set()
        for part in _chunks(list(labels), 50):
            patterns = [Image.path.like(f"%{_like_escape(label)}%", escape="\\") for label in part]
            file_patterns = [ImageFile.path.like(f"%{_like_escape(label)}%", escape="\\") for label in part]
            for image_id, path in tx.execute(_in_scope(select(Image.id, Image.path).where(or_(*patterns)), scope)):
                if names_someone(path):
                    redacted.add(int(image_id))
            located = (
                select(ImageFile.image_id, ImageFile.path)
                .join(Image, Image.id == ImageFile.image_id)
                .where(or_(*file_patterns))
            )
            for image_id, path in tx.execute(_in_scope(located, scope)):
                if names_someone(path):
                    redacted.add(int(image_id))
        for image_id in sorted(redacted):
            image = tx.get(Image, image_id)
            if image is None:
                continue
            renamed: dict[str, str] = {}
            for number, location in enumerate(tx.scalars(select(ImageFile).where(ImageFile.image_id == image_id))):
                renamed[location.path] = replacement(location.path, image_id, number)
                location.path = renamed[location.path]
            image.path = renamed.get(image.path) or replacement(image.path, image_id, len(renamed))
            image.error_detail = None
        return len(redacted)
