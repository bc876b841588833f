"""Subjects (people known by a label): list, read, rename, merge. Labels are personal data: reads and changes
are audited, and a user sees only the faces (and subjects) of the collections granted to them.

Renaming or merging changes a label for every collection that holds the subject's faces, so a user limited to
some collections may do it only for subjects whose faces all lie inside them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facesearch.catalog.schema import Collection, Face, Image, Subject
from facesearch.catalog.store import Catalog
from facesearch.errors import SubjectError
from facesearch.governance.access import AccessDenied, NotVisible, Principal, require
from facesearch.governance.audit import AuditTrail

LIST_AUDIT_IDS = 1000
"""At most this many subject ids are named in the audit record of one listing (the count is always there)."""


def _unknown(subject_id: int) -> NotVisible:
    return NotVisible(f"unknown subject {subject_id}", code="unknown_subject")


class Subjects:
    """Subjects stored in the catalog, seen and changed through a principal's grants."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.audit = audit

    def list(
        self, principal: Principal, *, limit: int = 1000, offset: int = 0, case_ref: str | None = None
    ) -> list[dict[str, Any]]:
        """Subjects with faces in the principal's collections and their face counts there (audited)."""
        require(principal, "subjects.read")
        query = (
            select(Subject.id, Subject.label, func.count(Face.id))
            .join(Face, Face.subject_id == Subject.id)
            .join(Image, Image.id == Face.image_id)
            .join(Collection, Collection.id == Image.collection_id)
            .group_by(Subject.id, Subject.label)
            .order_by(Subject.label)
            .limit(limit)
            .offset(offset)
        )
        if principal.scope is not None:
            query = query.where(Collection.name.in_(sorted(principal.scope)))
        with self.catalog.session() as session:
            rows = [{"id": i, "label": label, "faces": int(n)} for i, label, n in session.execute(query)]
        details = {"count": len(rows), "subject_ids": [row["id"] for row in rows[:LIST_AUDIT_IDS]], "offset": offset}
        self.audit.append(actor=principal.actor, action="subjects_list", details=details, case_ref=case_ref)
        return rows

    def get(self, principal: Principal, subject_id: int, *, case_ref: str | None = None) -> dict[str, Any]:
        """One subject, with its faces in the principal's collections (404 when none; audited)."""
        require(principal, "subjects.read")
        with self.catalog.session() as session:
            described = self._describe(session, principal, subject_id)
        self.audit.append(
            actor=principal.actor, action="subject_read", details={"subject_id": subject_id}, case_ref=case_ref
        )
        return described

    @staticmethod
    def _describe(session: Session, principal: Principal, subject_id: int) -> dict[str, Any]:
        row = session.get(Subject, subject_id)
        if row is None:
            raise _unknown(subject_id)
        faces = (
            select(func.count(Face.id))
            .join(Image, Image.id == Face.image_id)
            .join(Collection, Collection.id == Image.collection_id)
            .where(Face.subject_id == subject_id)
        )
        if principal.scope is not None:
            faces = faces.where(Collection.name.in_(sorted(principal.scope)))
        count = int(session.scalar(faces) or 0)
        if principal.scope is not None and count == 0:
            raise _unknown(subject_id)
        return {"id": row.id, "label": row.label, "faces": count}

    @staticmethod
    def _changeable(session: Session, principal: Principal, subject_id: int) -> Subject:
        """The subject, if every one of its faces lies in the principal's collections."""
        row = session.get(Subject, subject_id)
        if row is None:
            raise _unknown(subject_id)
        if principal.scope is None:
            return row
        where = set(
            session.scalars(
                select(Collection.name)
                .join(Image, Image.collection_id == Collection.id)
                .join(Face, Face.image_id == Image.id)
                .where(Face.subject_id == subject_id)
                .distinct()
            )
        )
        if not where & principal.scope:
            raise _unknown(subject_id)
        if not where <= principal.scope:
            raise AccessDenied(f"subject {subject_id} has faces in collections you may not change")
        return row

    def rename(self, principal: Principal, subject_id: int, label: str) -> dict[str, Any]:
        """Give a subject another label (refused if the label is taken: merge instead)."""
        require(principal, "subjects.manage")
        label = label.strip()
        if not label:
            raise SubjectError("a label cannot be empty")
        with self.catalog.session() as session, session.begin():
            row = self._changeable(session, principal, subject_id)
            if session.scalar(select(Subject.id).where(Subject.label == label, Subject.id != subject_id)) is not None:
                raise SubjectError(f"the label {label!r} is taken: merge the two subjects instead")
            row.label = label
            audit = self.audit.append_in(
                session, actor=principal.actor, action="subject_rename", details={"subject_id": subject_id}
            )
            described = self._describe(session, principal, subject_id)
        self.audit.committed(*audit)
        return described

    def merge(self, principal: Principal, subject_id: int, into: int) -> dict[str, Any]:
        """Move every face of subject ``subject_id`` to subject ``into`` and remove the first."""
        require(principal, "subjects.manage")
        if subject_id == into:  # nothing to move: an answer, not an error, and no change to record
            with self.catalog.session() as session:
                self._changeable(session, principal, subject_id)
                return self._describe(session, principal, subject_id)
        with self.catalog.session() as session, session.begin():
            source = self._changeable(session, principal, subject_id)
            self._changeable(session, principal, into)
            moved = session.execute(update(Face).where(Face.subject_id == subject_id).values(subject_id=into))
            faces = int(moved.rowcount or 0)  # type: ignore[attr-defined]
            session.delete(source)
            details = {"subject_id": subject_id, "into": into, "faces": faces}
            audit = self.audit.append_in(session, actor=principal.actor, action="subject_merge", details=details)
            session.flush()
            described = self._describe(session, principal, into)
        self.audit.committed(*audit)
        return described
