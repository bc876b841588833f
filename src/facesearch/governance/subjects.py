"""Subjects (people known by a label): list, rename, merge. Labels are personal data: changes are audited."""

from __future__ import annotations

from collections.abc import Collection as Names
from typing import Any

from sqlalchemy import func, select, update

from facesearch.catalog.schema import Collection, Face, Image, Subject
from facesearch.catalog.store import Catalog
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import ActionContext


class SubjectError(ValueError):
    """A subject operation cannot be done."""


class Subjects:
    """Subjects stored in the catalog."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.audit = audit

    def list(
        self, *, collections: Names[str] | None = None, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Subjects with their face counts; with ``collections``, only faces (and subjects) in those."""
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
        if collections is not None:
            query = query.where(Collection.name.in_(sorted(collections)))
        with self.catalog.session() as session:
            return [{"id": i, "label": label, "faces": int(n)} for i, label, n in session.execute(query)]

    def get(self, subject_id: int, *, collections: Names[str] | None = None) -> dict[str, Any]:
        """One subject (404-style error when unknown or not visible)."""
        with self.catalog.session() as session:
            row = session.get(Subject, subject_id)
            if row is None:
                raise SubjectError(f"unknown subject {subject_id}")
            faces = (
                select(func.count(Face.id))
                .join(Image, Image.id == Face.image_id)
                .join(Collection, Collection.id == Image.collection_id)
                .where(Face.subject_id == subject_id)
            )
            if collections is not None:
                faces = faces.where(Collection.name.in_(sorted(collections)))
            count = int(session.scalar(faces) or 0)
            if collections is not None and count == 0:
                raise SubjectError(f"unknown subject {subject_id}")
            return {"id": row.id, "label": row.label, "faces": count}

    def rename(self, subject_id: int, label: str, context: ActionContext) -> dict[str, Any]:
        """Give a subject another label (refused if the label is taken: merge instead)."""
        label = label.strip()
        if not label:
            raise SubjectError("a label cannot be empty")
        with self.catalog.session() as session, session.begin():
            row = session.get(Subject, subject_id)
            if row is None:
                raise SubjectError(f"unknown subject {subject_id}")
            if session.scalar(select(Subject.id).where(Subject.label == label, Subject.id != subject_id)) is not None:
                raise SubjectError(f"the label {label!r} is taken: merge the two subjects instead")
            row.label = label
            seq, digest = self.audit.append_in(
                session, actor=context.actor, action="subject_rename", details={"subject_id": subject_id}
            )
        self.audit.committed(seq, digest)
        return self.get(subject_id)

    def merge(self, subject_id: int, into: int, context: ActionContext) -> dict[str, Any]:
        """Move every face of subject ``subject_id`` to subject ``into`` and remove the first."""
        if subject_id == into:
            raise SubjectError("a subject cannot be merged into itself")
        with self.catalog.session() as session, session.begin():
            source, target = session.get(Subject, subject_id), session.get(Subject, into)
            if source is None or target is None:
                raise SubjectError(f"unknown subject {subject_id if source is None else into}")
            moved = session.execute(update(Face).where(Face.subject_id == subject_id).values(subject_id=into))
            faces = int(moved.rowcount or 0)  # type: ignore[attr-defined]
            session.delete(source)
            details = {"subject_id": subject_id, "into": into, "faces": faces}
            seq, digest = self.audit.append_in(session, actor=context.actor, action="subject_merge", details=details)
        self.audit.committed(seq, digest)
        return self.get(into)
