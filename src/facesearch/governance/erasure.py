"""Erasure: an image, a face, a subject, a source URL or a whole collection, everywhere it is kept.

What goes: the catalog rows (images, their file locations and scans, faces with their embeddings, reviewers'
decisions and case candidates on those faces, subjects left without faces, the collection), the vectors in
every pack's index, and the files facesearch itself keeps (uploads in ``<home>/uploads``). Face crops are
cut from the image on request and never stored, so nothing of them is left once the rows are gone.

Gone means gone from the disk too, once :meth:`Erasure.erase` returns: SQLite overwrites deleted content
(``secure_delete``) and the write-ahead log that still held the old pages is checkpointed and truncated;
PostgreSQL's tables are vacuumed; the FAISS store zeroes the vectors' rows. A subject's label is personal
data, and folder names often are labels (``--subject-from-folder``): when a subject goes, every kept path in
which a folder bears its label is replaced by a neutral one (a file facesearch keeps is moved; a path to the
operator's own file is forgotten).

The erasure is recorded in the audit log in the same transaction as the deletion, with the kind of target
and how much went, but never what was erased (no label, path, address or face id).

A user limited to some collections erases only inside them: what lies outside is not found, and a subject
with faces elsewhere keeps those faces (and its label) there.

Images indexed from your own folders are not deleted from those folders: they are yours. Erasing a face or a
subject keeps the row of each image it was in (without the face), so that indexing the same folder again does
not bring the face back; erasing an image, a source URL or a collection does not, so put a person who must
never come back on the opt-out list (:mod:`facesearch.governance.optout`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from collections.abc import Collection as Names
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from facesearch.catalog.schema import (
    CaseCandidate,
    Collection,
    Decision,
    Face,
    Image,
    ImageFile,
    ImageScan,
    Subject,
)
from facesearch.catalog.store import Catalog, bump_generation
from facesearch.errors import ErasureError
from facesearch.governance.access import Principal, require
from facesearch.governance.audit import AuditTrail

log = logging.getLogger(__name__)

KINDS = ("image", "face", "subject", "source_url", "collection")
"""What can be erased."""

ERASED_PATH = "erased:"
"""The prefix of a path replaced because it named an erased person (``erased:<image id>``)."""

_MAX_ID = 2**62  # ids are 63-bit integers in every database

RemoveVectors = Callable[[str, int, Sequence[int]], None]
"""Called after the commit with (pack key, dimension, face ids) to take vectors out of that pack's index."""


@dataclass
class ErasureReport:
    """What an erasure removed (counts only: nothing about what it was)."""

    target: str
    images: int = 0
    faces: int = 0
    subjects: int = 0
    collections: int = 0
    files: int = 0
    paths_redacted: int = 0
    audit_seq: int | None = None
    removed_by_pack: dict[str, tuple[int, list[int]]] = field(default_factory=dict, repr=False)
    files_to_remove: list[str] = field(default_factory=list, repr=False)
    files_to_move: list[tuple[str, str]] = field(default_factory=list, repr=False)

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

    def empty(self) -> bool:
        return not (self.image_ids or self.face_ids or self.subject_ids or self.collection_ids)


def _chunks(values: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def _like_escape(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


class Erasure:
    """Finds what an erasure target covers and removes it from the catalog, the indexes and the data folder."""

    def __init__(
        self,
        catalog: Catalog,
        audit: AuditTrail,
        managed_root: Path,
        remove_vectors: RemoveVectors,
        *,
        rewrite_tables: bool = True,
    ) -> None:
        self.catalog = catalog
        self.audit = audit
        self.managed_root = Path(managed_root)
        self.remove_vectors = remove_vectors
        self.rewrite_tables = rewrite_tables

    def erase(
        self,
        principal: Principal,
        kind: str,
        values: Sequence[str | int],
        *,
        action: str = "erase",
        purpose: str | None = None,
        case_ref: str | None = None,
    ) -> ErasureReport:
        """Erase every target of one ``kind`` (see :data:`KINDS`) named in ``values``, inside the principal's
        collections; audited in the same transaction; everything gone from the disk when it returns."""
        require(principal, "erase" if action == "erase" else "retention")
        with self.catalog.session() as session, session.begin():
            report = self.erase_in(session, kind, values, principal.scope)
            details = {k: v for k, v in report.to_dict().items() if k != "audit_seq"}
            seq, digest = self.audit.append_in(
                session, actor=principal.actor, action=action, details=details, purpose=purpose, case_ref=case_ref
            )
        report.audit_seq = seq
        self.audit.committed(seq, digest)
        self.finish(report)
        return report

    def erase_in(
        self, session: Session, kind: str, values: Sequence[str | int], scope: Names[str] | None
    ) -> ErasureReport:
        """Delete the rows of an erasure inside the caller's transaction; call :meth:`finish` after the commit.

        ``scope``: the only collections whose rows may be touched (``None``: all).
        """
        if kind not in KINDS:
            raise ErasureError(f"cannot erase a {kind!r}; one of: {', '.join(KINDS)}")
        if not values:
            raise ErasureError("nothing named to erase")
        report = ErasureReport(target=kind)
        targets = self._resolve(session, kind, values, scope)
        if targets.empty():
            raise ErasureError(f"no {kind.replace('_', ' ')} matches what was named")
        self._delete(session, report, targets, scope)
        if report.faces:
            bump_generation(session)
        report.files = len(report.files_to_remove)
        return report

    def finish(self, report: ErasureReport) -> None:
        """After the commit: remove and move managed files, take vectors out of the indexes, and make the
        catalog's storage forget the deleted rows."""
        report.files = self._remove_files(report.files_to_remove)
        self._move_files(report.files_to_move)
        for pack, (dim, ids) in report.removed_by_pack.items():
            self.remove_vectors(pack, dim, ids)
        self.catalog.forget_deleted(rewrite=self.rewrite_tables)

    def erase_images(self, principal: Principal, image_ids: Sequence[int], *, action: str) -> ErasureReport:
        """Erase images by id (retention purges use it, recorded with purpose ``retention``)."""
        return self.erase(principal, "image", [int(i) for i in image_ids], action=action, purpose="retention")

    # What a target covers -------------------------------------------------------------------------------------

    @staticmethod
    def _in_scope(query: Any, scope: Names[str] | None) -> Any:
        if scope is None:
            return query
        return query.where(Image.collection_id.in_(select(Collection.id).where(Collection.name.in_(sorted(scope)))))

    def _resolve(self, session: Session, kind: str, values: Sequence[str | int], scope: Names[str] | None) -> _Targets:
        """The rows that erasing ``values`` of ``kind`` covers directly, inside ``scope``."""
        image_ids: set[int] = set()
        face_ids: set[int] = set()
        subject_ids: set[int] = set()
        collection_ids: set[int] = set()
        faces = select(Face.id).join(Image, Image.id == Face.image_id)
        images = select(Image.id)
        for value in values:
            if kind == "image":
                image_ids.update(self._images_named(session, value, scope))
            elif kind == "face":
                number = _as_int(value, "face id")
                face_ids.update(session.scalars(self._in_scope(faces.where(Face.id == number), scope)))
            elif kind == "subject":
                subject_id = session.scalar(select(Subject.id).where(Subject.label == str(value)))
                if subject_id is not None:
                    found = set(session.scalars(self._in_scope(faces.where(Face.subject_id == subject_id), scope)))
                    if found or scope is None:
                        subject_ids.add(int(subject_id))
                        face_ids.update(found)
            elif kind == "source_url":
                image_ids.update(session.scalars(self._in_scope(images.where(Image.source_url == str(value)), scope)))
            else:
                if scope is not None and str(value) not in scope:
                    continue
                collection_id = session.scalar(select(Collection.id).where(Collection.name == str(value)))
                if collection_id is not None:
                    collection_ids.add(int(collection_id))
                    image_ids.update(session.scalars(select(Image.id).where(Image.collection_id == collection_id)))
        return _Targets(sorted(image_ids), sorted(face_ids), subject_ids, sorted(collection_ids))

    def _images_named(self, session: Session, value: str | int, scope: Names[str] | None) -> set[int]:
        """Images named by id, or by a path they were indexed from (any collection in scope)."""
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
            if number >= _MAX_ID:
                return set()
            return set(session.scalars(self._in_scope(select(Image.id).where(Image.id == number), scope)))
        path = os.path.abspath(os.path.expanduser(text))
        found = set(session.scalars(self._in_scope(select(Image.id).where(Image.path.in_([text, path])), scope)))
        by_location = (
            select(ImageFile.image_id)
            .join(Image, Image.id == ImageFile.image_id)
            .where(ImageFile.path.in_([text, path]))
        )
        found.update(session.scalars(self._in_scope(by_location, scope)))
        return found

    # Deleting -------------------------------------------------------------------------------------------------

    def _delete(self, session: Session, report: ErasureReport, targets: _Targets, scope: Names[str] | None) -> None:
        """Delete the rows; note in ``report`` the managed files to remove or move once committed."""
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
            session.execute(delete(CaseCandidate).where(CaseCandidate.face_id.in_(part)))
            session.execute(delete(Face).where(Face.id.in_(part)))
        for part in _chunks(image_ids):
            session.execute(delete(ImageScan).where(ImageScan.image_id.in_(part)))
            session.execute(delete(ImageFile).where(ImageFile.image_id.in_(part)))
            session.execute(delete(Image).where(Image.id.in_(part)))
        # Subjects left without any face go too: a label is personal data. So do the paths that name them.
        orphaned = [
            s
            for s in sorted(subject_ids)
            if session.scalar(select(func.count(Face.id)).where(Face.subject_id == s)) == 0
        ]
        labels = [
            label
            for part in _chunks(orphaned)
            for label in session.scalars(select(Subject.label).where(Subject.id.in_(part)))
        ]
        for part in _chunks(orphaned):
            session.execute(delete(Subject).where(Subject.id.in_(part)))
        for part in _chunks(collection_ids):
            session.execute(delete(Collection).where(Collection.id.in_(part)))
        report.images, report.faces = len(image_ids), len(face_ids)
        report.subjects, report.collections = len(orphaned), len(collection_ids)
        report.files_to_remove = sorted(p for p in paths if self._is_managed(p))
        report.paths_redacted = self._redact_paths(session, report, labels, scope)

    def _redact_paths(
        self, session: Session, report: ErasureReport, labels: list[str], scope: Names[str] | None
    ) -> int:
        """Replace every kept path in which a folder is named after one of ``labels`` (see the module's doc)."""
        if not labels:
            return 0
        wanted = {label.casefold() for label in labels}

        def names_someone(path: str) -> bool:
            return any(part.casefold() in wanted for part in Path(path).parts[:-1])

        redacted: set[int] = set()
        for part in _chunks(labels, 50):
            patterns = [Image.path.like(f"%{_like_escape(label)}%", escape="\\") for label in part]
            file_patterns = [ImageFile.path.like(f"%{_like_escape(label)}%", escape="\\") for label in part]
            for image_id, path in session.execute(
                self._in_scope(select(Image.id, Image.path).where(or_(*patterns)), scope)
            ):
                if names_someone(path):
                    redacted.add(int(image_id))
            located = (
                select(ImageFile.image_id, ImageFile.path)
                .join(Image, Image.id == ImageFile.image_id)
                .where(or_(*file_patterns))
            )
            for image_id, path in session.execute(self._in_scope(located, scope)):
                if names_someone(path):
                    redacted.add(int(image_id))
        for image_id in sorted(redacted):
            image = session.get(Image, image_id)
            if image is None:
                continue
            locations = session.scalars(select(ImageFile).where(ImageFile.image_id == image_id)).all()
            neutral = f"{ERASED_PATH}{image_id}"
            for number, location in enumerate(locations):
                target = self._neutral_managed_path(location.path, image_id, number)
                if target is not None:
                    report.files_to_move.append((location.path, target))
                    location.path = target
                else:
                    location.path = f"{neutral}:{number}"
            if self._is_managed(image.path):
                moved = dict(report.files_to_move)
                image.path = moved.get(image.path) or self._neutral_managed_path(image.path, image_id, 0) or neutral
            else:
                image.path = neutral
            image.error_detail = None
        return len(redacted)

    def _neutral_managed_path(self, path: str, image_id: int, number: int) -> str | None:
        """Where a managed file that names someone moves: its upload batch folder, under a neutral name."""
        if not self._is_managed(path):
            return None
        root = Path(os.path.realpath(self.managed_root))
        relative = Path(os.path.realpath(path)).relative_to(root)
        batch = root.joinpath(*relative.parts[:2]) if len(relative.parts) > 2 else root / relative.parts[0]
        suffix = Path(path).suffix.lower()
        return str(batch / f"erased-{image_id}-{number}{suffix}")

    def _is_managed(self, path: str) -> bool:
        """True for files facesearch keeps itself (uploads), which it may delete; never the user's own."""
        if path.startswith(ERASED_PATH):
            return False
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
            self._prune_empty_folders(Path(path).parent)
        return removed

    def _move_files(self, moves: Sequence[tuple[str, str]]) -> None:
        for source, target in moves:
            try:
                os.replace(source, target)
            except FileNotFoundError:
                continue
            except OSError:  # the row already points to the neutral name: report, never undo the erasure
                log.exception("could not move an erased person's file to its neutral name")
                continue
            self._prune_empty_folders(Path(source).parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        """Remove empty upload folders, up to the uploads root (a folder's name may be a person's label)."""
        root = Path(os.path.realpath(self.managed_root))
        while Path(os.path.realpath(folder)) != root and Path(os.path.realpath(folder)).is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent


def _as_int(value: str | int, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as error:
        raise ErasureError(f"{what} must be a number, not {value!r}") from error
    if not 0 < number < _MAX_ID:
        raise ErasureError(f"no {what} {number}")
    return number
