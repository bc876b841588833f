"""Erasure: an image, a face, a subject, a source URL or a whole collection, everywhere it is kept.

What goes: the catalog rows (images, their file locations and scans, faces with their embeddings, reviewers'
decisions on those faces, subjects left without faces, the collection), the vectors in every pack's index,
and the files facesearch itself keeps (uploads in ``<home>/uploads``). Face crops are cut from the image on
request and never stored, so nothing of them is left once the rows are gone.

The erasure is recorded in the audit log in the same transaction as the deletion, with the kind of target
and how much went, but never what was erased (no label, path, address or face id).

Images indexed from your own folders are not deleted from those folders: they are yours. Erasing a face or a
subject keeps the row of each image it was in (without the face), so that indexing the same folder again does
not bring the face back; erasing an image, a source URL or a collection does not, so put a person who must
never come back on the opt-out list (:mod:`facesearch.governance.optout`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facesearch.catalog.schema import Collection, Decision, Face, Image, ImageFile, ImageScan, Subject
from facesearch.catalog.store import Catalog, bump_generation
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import ActionContext

KINDS = ("image", "face", "subject", "source_url", "collection")
"""What can be erased."""

_MAX_ID = 2**62  # ids are 63-bit integers in every database

RemoveVectors = Callable[[str, int, Sequence[int]], None]
"""Called after the commit with (pack key, dimension, face ids) to take vectors out of that pack's index."""


class ErasureError(ValueError):
    """The erasure target does not exist or is malformed."""


@dataclass
class ErasureReport:
    """What an erasure removed (counts only: nothing about what it was)."""

    target: str
    images: int = 0
    faces: int = 0
    subjects: int = 0
    collections: int = 0
    files: int = 0
    audit_seq: int | None = None
    removed_by_pack: dict[str, tuple[int, list[int]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "target": self.target,
            "images": self.images,
            "faces": self.faces,
            "subjects": self.subjects,
            "collections": self.collections,
            "files": self.files,
            "audit_seq": self.audit_seq,
        }


@dataclass
class _Targets:
    image_ids: list[int]
    face_ids: list[int]
    subject_ids: set[int]
    collection_ids: list[int]


def _chunks(values: Sequence[int], size: int = 500) -> list[Sequence[int]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


class Erasure:
    """Finds what an erasure target covers and removes it from the catalog, the indexes and the data folder."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, managed_root: Path, remove_vectors: RemoveVectors) -> None:
        self.catalog = catalog
        self.audit = audit
        self.managed_root = Path(managed_root)
        self.remove_vectors = remove_vectors

    def erase(
        self, kind: str, values: Sequence[str | int], context: ActionContext, *, action: str = "erase"
    ) -> ErasureReport:
        """Erase every target of one ``kind`` (see :data:`KINDS`) named in ``values``."""
        if kind not in KINDS:
            raise ErasureError(f"cannot erase a {kind!r}; one of: {', '.join(KINDS)}")
        if not values:
            raise ErasureError("nothing named to erase")
        report = ErasureReport(target=kind)
        with self.catalog.session() as session, session.begin():
            targets = self._resolve(session, kind, values)
            if not (targets.image_ids or targets.face_ids or targets.subject_ids or targets.collection_ids):
                raise ErasureError(f"no {kind.replace('_', ' ')} matches what was named")
            paths = self._delete(session, report, targets)
            if report.faces:
                bump_generation(session)
            details = {k: v for k, v in report.to_dict().items() if k != "audit_seq"}
            details["files"] = len(paths)
            seq, digest = self.audit.append_in(
                session,
                actor=context.actor,
                action=action,
                details=details,
                purpose=context.purpose,
                case_ref=context.case_ref,
            )
        report.audit_seq = seq
        self.audit.committed(seq, digest)
        report.files = self._remove_files(paths)
        for pack, (dim, ids) in report.removed_by_pack.items():
            self.remove_vectors(pack, dim, ids)
        return report

    def erase_images(self, image_ids: Sequence[int], context: ActionContext, *, action: str) -> ErasureReport:
        """Erase images by id (retention purges use it)."""
        return self.erase("image", [int(i) for i in image_ids], context, action=action)

    # What a target covers -------------------------------------------------------------------------------------

    def _resolve(self, session: Session, kind: str, values: Sequence[str | int]) -> _Targets:
        """The rows that erasing ``values`` of ``kind`` covers directly."""
        image_ids: set[int] = set()
        face_ids: set[int] = set()
        subject_ids: set[int] = set()
        collection_ids: set[int] = set()
        for value in values:
            if kind == "image":
                image_ids.update(self._images_named(session, value))
            elif kind == "face":
                face_ids.update(session.scalars(select(Face.id).where(Face.id == _as_int(value, "face id"))))
            elif kind == "subject":
                subject_id = session.scalar(select(Subject.id).where(Subject.label == str(value)))
                if subject_id is not None:
                    subject_ids.add(int(subject_id))
                    face_ids.update(session.scalars(select(Face.id).where(Face.subject_id == subject_id)))
            elif kind == "source_url":
                image_ids.update(session.scalars(select(Image.id).where(Image.source_url == str(value))))
            else:
                collection_id = session.scalar(select(Collection.id).where(Collection.name == str(value)))
                if collection_id is not None:
                    collection_ids.add(int(collection_id))
                    image_ids.update(session.scalars(select(Image.id).where(Image.collection_id == collection_id)))
        return _Targets(sorted(image_ids), sorted(face_ids), subject_ids, sorted(collection_ids))

    @staticmethod
    def _images_named(session: Session, value: str | int) -> set[int]:
        """Images named by id, or by a path they were indexed from (any collection)."""
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
            return set(session.scalars(select(Image.id).where(Image.id == number))) if number < _MAX_ID else set()
        path = os.path.abspath(os.path.expanduser(text))
        found = set(session.scalars(select(Image.id).where(Image.path.in_([text, path]))))
        found.update(session.scalars(select(ImageFile.image_id).where(ImageFile.path.in_([text, path]))))
        return found

    # Deleting -------------------------------------------------------------------------------------------------

    def _delete(self, session: Session, report: ErasureReport, targets: _Targets) -> list[str]:
        """Delete the rows; returns the managed files to remove once the transaction has committed."""
        image_ids, collection_ids = targets.image_ids, targets.collection_ids
        subject_ids = set(targets.subject_ids)
        face_ids = list(targets.face_ids)
        for part in _chunks(image_ids):
            face_ids.extend(session.scalars(select(Face.id).where(Face.image_id.in_(part))))
        face_ids = sorted(set(face_ids))
        # Which packs and dimensions the faces belong to, to take their vectors out of the right index.
        for part in _chunks(face_ids):
            for face_id, pack, size in session.execute(
                select(Face.id, Face.pack, func.length(Face.embedding)).where(Face.id.in_(part))
            ):
                _dim, ids = report.removed_by_pack.setdefault(pack, (int(size) // 4, []))
                ids.append(int(face_id))
            subject_ids.update(
                s for s in session.scalars(select(Face.subject_id).where(Face.id.in_(part))) if s is not None
            )
        paths: set[str] = set()
        for part in _chunks(image_ids):
            paths.update(session.scalars(select(Image.path).where(Image.id.in_(part))))
            paths.update(session.scalars(select(ImageFile.path).where(ImageFile.image_id.in_(part))))
        for part in _chunks(face_ids):
            session.execute(delete(Decision).where(Decision.face_id.in_(part)))
            session.execute(delete(Face).where(Face.id.in_(part)))
        for part in _chunks(image_ids):
            session.execute(delete(ImageScan).where(ImageScan.image_id.in_(part)))
            session.execute(delete(ImageFile).where(ImageFile.image_id.in_(part)))
            session.execute(delete(Image).where(Image.id.in_(part)))
        # Subjects left without any face go too: a label is personal data.
        orphaned = [
            s
            for s in sorted(subject_ids)
            if session.scalar(select(func.count(Face.id)).where(Face.subject_id == s)) == 0
        ]
        for part in _chunks(orphaned):
            session.execute(delete(Subject).where(Subject.id.in_(part)))
        for part in _chunks(collection_ids):
            session.execute(delete(Collection).where(Collection.id.in_(part)))
        report.images, report.faces = len(image_ids), len(face_ids)
        report.subjects, report.collections = len(orphaned), len(collection_ids)
        return sorted(p for p in paths if self._is_managed(p))

    def _is_managed(self, path: str) -> bool:
        """True for files facesearch keeps itself (uploads), which it may delete; never the user's own."""
        root = os.path.realpath(self.managed_root)
        return os.path.realpath(path).startswith(root + os.sep)

    def _remove_files(self, paths: Sequence[str]) -> int:
        removed = 0
        for path in paths:
            try:
                os.remove(path)
                removed += 1
            except FileNotFoundError:
                continue
            # Empty upload folders go too, up to the uploads root.
            parent = Path(path).parent
            root = Path(os.path.realpath(self.managed_root))
            while Path(os.path.realpath(parent)) != root and Path(os.path.realpath(parent)).is_relative_to(root):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
        return removed


def _as_int(value: str | int, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as error:
        raise ErasureError(f"{what} must be a number, not {value!r}") from error
    if not 0 < number < _MAX_ID:
        raise ErasureError(f"no {what} {number}")
    return number
