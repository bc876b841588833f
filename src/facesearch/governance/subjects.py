"""Subjects (people known by a label): list, read, rename, merge, split. Labels are personal data: reads and changes
are audited, and a user sees only the faces (and subjects) of the collections granted to them.

Renaming, merging or splitting changes a label for every collection that holds the subject's faces, so a user limited to
some collections may do it only for subjects whose faces all lie inside them.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence

from pydantic import BaseModel

from facesearch.catalog.base import Transaction
from facesearch.catalog.store import Catalog
from facesearch.errors import SubjectError
from facesearch.governance.access import AccessDenied, NotVisible, Principal, require
from facesearch.governance.audit import AuditTrail

__all__ = ["Subject", "SubjectError", "SubjectFace", "Subjects"]

LIST_AUDIT_IDS = 1000
"""At most this many subject ids are named in the audit record of one listing (the count is always there)."""


class Subject(BaseModel):
    """A person known by a label, with the number of their faces the reader may see."""

    id: int
    label: str
    faces: int


class SubjectFace(BaseModel):
    """One face of a subject, as a list of them shows it."""

    face_id: int
    collection: str
    image: str


def _unknown(subject_id: int) -> NotVisible:
    return NotVisible(f"unknown subject {subject_id}", code="unknown_subject")


class Subjects:
    """Subjects, seen and changed through a principal's grants."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.store = catalog.subjects
        self.audit = audit

    def list(
        self, principal: Principal, *, limit: int = 1000, offset: int = 0, case_ref: str | None = None
    ) -> list[Subject]:
        """Subjects with faces in the principal's collections and their face counts there (audited)."""
        require(principal, "subjects.read")
        rows = [
            Subject(id=i, label=label, faces=n)
            for i, label, n in self.store.subjects(collections=principal.scope, limit=limit, offset=offset)
        ]
        details = {"count": len(rows), "subject_ids": [row.id for row in rows[:LIST_AUDIT_IDS]], "offset": offset}
        self.audit.append(actor=principal.actor, action="subjects_list", details=details, case_ref=case_ref)
        return rows

    def get(self, principal: Principal, subject_id: int, *, case_ref: str | None = None) -> Subject:
        """One subject, with its faces in the principal's collections (404 when none; audited)."""
        require(principal, "subjects.read")
        described = self._describe(principal, subject_id)
        self.audit.append(
            actor=principal.actor, action="subject_read", details={"subject_id": subject_id}, case_ref=case_ref
        )
        return described

    def enrolled(self, principal: Principal, label: str) -> Subject | None:
        """The subject the principal has just enrolled under ``label`` (not audited: the caller named it), or
        ``None`` when there is none in the principal's collections."""
        subject_id = self.store.id_of(label)
        if subject_id is None:
            return None
        try:
            return self._describe(principal, subject_id)
        except NotVisible:
            return None

    def _describe(self, principal: Principal, subject_id: int, tx: Transaction | None = None) -> Subject:
        found = self.store.subject(subject_id, collections=principal.scope, tx=tx)
        if found is None or (principal.scope is not None and found[1] == 0):
            raise _unknown(subject_id)
        return Subject(id=subject_id, label=found[0], faces=found[1])

    def _check_changeable(self, principal: Principal, subject_id: int, tx: Transaction | None = None) -> None:
        """Raise unless the subject exists and every one of its faces lies in the principal's collections."""
        if self.store.subject(subject_id, tx=tx) is None:
            raise _unknown(subject_id)
        if principal.scope is None:
            return
        where = self.store.collections_of(subject_id, tx)
        if not where & principal.scope:
            raise _unknown(subject_id)
        if not where <= principal.scope:
            raise AccessDenied(f"subject {subject_id} has faces in collections you may not change")

    def rename(self, principal: Principal, subject_id: int, label: str) -> Subject:
        """Give a subject another label (refused if the label is taken: merge instead)."""
        require(principal, "subjects.manage")
        label = label.strip()
        if not label:
            raise SubjectError("a label cannot be empty")
        with self.catalog.transaction() as tx:
            self._check_changeable(principal, subject_id, tx)
            if self.store.label_taken(tx, label, subject_id):
                raise SubjectError(f"the label {label!r} is taken: merge the two subjects instead")
            self.store.rename(tx, subject_id, label)
            audit = self.audit.append_in(
                tx, actor=principal.actor, action="subject_rename", details={"subject_id": subject_id}
            )
            described = self._describe(principal, subject_id, tx)
        self.audit.committed(*audit)
        return described

    def merge(self, principal: Principal, subject_id: int, into: int) -> Subject:
        """Move every face of subject ``subject_id`` to subject ``into`` and remove the first."""
        require(principal, "subjects.manage")
        if subject_id == into:  # nothing to move: an answer, not an error, and no change to record
            self._check_changeable(principal, subject_id)
            return self._describe(principal, subject_id)
        with self.catalog.transaction() as tx:
            self._check_changeable(principal, subject_id, tx)
            self._check_changeable(principal, into, tx)
            faces = self.store.merge(tx, subject_id, into)
            details = {"subject_id": subject_id, "into": into, "faces": faces}
            audit = self.audit.append_in(tx, actor=principal.actor, action="subject_merge", details=details)
            described = self._describe(principal, into, tx)
        self.audit.committed(*audit)
        return described

    def faces(
        self, principal: Principal, subject_id: int, *, case_ref: str | None = None
    ) -> builtins.list[SubjectFace]:
        """The subject's faces in the principal's collections (id, collection, file name; audited as a read of
        the subject)."""
        require(principal, "subjects.read")
        self._describe(principal, subject_id)
        rows = self.store.faces_of(subject_id, collections=principal.scope)
        self.audit.append(
            actor=principal.actor,
            action="subject_read",
            details={"subject_id": subject_id, "faces": len(rows)},
            case_ref=case_ref,
        )
        return [SubjectFace(face_id=f, collection=c, image=os.path.basename(p)) for f, c, p in rows]

    def split(self, principal: Principal, subject_id: int, face_ids: Sequence[int], label: str) -> Subject:
        """Move some faces of a subject out, to a new subject called ``label`` (a wrong enrolment corrected)."""
        require(principal, "subjects.manage")
        label = label.strip()
        if not label:
            raise SubjectError("a label cannot be empty")
        wanted = set(face_ids)
        if not wanted:
            raise SubjectError("name the faces to move out")
        with self.catalog.transaction() as tx:
            self._check_changeable(principal, subject_id, tx)
            own = {face for face, _c, _p in self.store.faces_of(subject_id, tx=tx)}
            if not wanted <= own:
                raise SubjectError(f"faces {sorted(wanted - own)} are not faces of subject {subject_id}")
            if wanted == own:
                raise SubjectError("moving every face out is a rename: rename the subject instead")
            if self.store.label_taken(tx, label, -1):
                raise SubjectError(f"the label {label!r} is taken: merge into that subject instead")
            new_id = self.store.split(tx, subject_id, wanted, label)
            details = {"subject_id": subject_id, "into": new_id, "faces": len(wanted)}
            audit = self.audit.append_in(tx, actor=principal.actor, action="subject_split", details=details)
            described = self._describe(principal, new_id, tx)
        self.audit.committed(*audit)
        return described
