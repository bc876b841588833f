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
from collections.abc import Callable, Sequence
from collections.abc import Collection as Names
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facesearch.catalog.base import Transaction
from facesearch.catalog.erasure import MAX_ID
from facesearch.catalog.store import Catalog, bump_generation
from facesearch.errors import ErasureError
from facesearch.governance.access import Principal, require
from facesearch.governance.audit import AuditTrail

__all__ = ["KINDS", "Erasure", "ErasureError", "ErasureReport"]

log = logging.getLogger(__name__)

KINDS = ("image", "face", "subject", "source_url", "collection")
"""What can be erased."""

ERASED_PATH = "erased:"
"""The prefix of a path replaced because it named an erased person (``erased:<image id>:<n>``)."""

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
        with self.catalog.transaction() as tx:
            report = self.erase_in(tx, kind, values, principal.scope)
            details = {k: v for k, v in report.to_dict().items() if k != "audit_seq"}
            seq, digest = self.audit.append_in(
                tx, actor=principal.actor, action=action, details=details, purpose=purpose, case_ref=case_ref
            )
        report.audit_seq = seq
        self.audit.committed(seq, digest)
        self.finish(report)
        return report

    def preview(self, principal: Principal, kind: str, values: Sequence[str | int]) -> ErasureReport:
        """What :meth:`erase` would remove (counts), removing nothing and writing no record."""
        require(principal, "erase")
        with self.catalog.rehearsal() as tx:
            return self.erase_in(tx, kind, values, principal.scope)

    def erase_in(
        self, tx: Transaction, kind: str, values: Sequence[str | int], scope: Names[str] | None
    ) -> ErasureReport:
        """Delete the rows of an erasure inside the caller's transaction; call :meth:`finish` after the commit.

        ``scope``: the only collections whose rows may be touched (``None``: all).
        """
        if kind not in KINDS:
            raise ErasureError(f"cannot erase a {kind!r}; one of: {', '.join(KINDS)}")
        if not values:
            raise ErasureError("nothing named to erase")
        if kind == "face":
            values = [_as_int(value, "face id") for value in values]
        targets = self.catalog.erasure.targets(tx, kind, values, scope)
        if targets.empty():
            raise ErasureError(f"no {kind.replace('_', ' ')} matches what was named")
        erased = self.catalog.erasure.delete(tx, targets)
        if erased.faces:
            bump_generation(tx)
        report = ErasureReport(
            target=kind,
            images=erased.images,
            faces=erased.faces,
            subjects=erased.subjects,
            collections=erased.collections,
            removed_by_pack=erased.removed_by_pack,
            files_to_remove=[path for path in erased.paths if self._is_managed(path)],
        )
        report.files = len(report.files_to_remove)

        def neutral(path: str, image_id: int, number: int) -> str:
            target = self._neutral_managed_path(path, image_id, number)
            if target is None:
                return f"{ERASED_PATH}{image_id}:{number}"
            report.files_to_move.append((path, target))
            return target

        report.paths_redacted = self.catalog.erasure.redact_paths(tx, erased.labels, scope, neutral)
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

    # Files ----------------------------------------------------------------------------------------------------

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
    if not 0 < number < MAX_ID:
        raise ErasureError(f"no {what} {number}")
    return number
