"""The subjects store: people known by a label, and their faces counted per collection."""

from __future__ import annotations

from collections.abc import Collection as Names

from sqlalchemy import func, select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.schema import Collection, Face, Image, Subject


class SubjectStore(Store):
    """Subjects."""

    def subjects(
        self, *, collections: Names[str] | None = None, limit: int = 1000, offset: int = 0
    ) -> list[tuple[int, str, int]]:
        """(id, label, faces) of the subjects with faces (in ``collections`` when given), by label."""
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
        with self._reading(None) as session:
            return [(int(i), str(label), int(n)) for i, label, n in session.execute(query)]

    def subject(
        self, subject_id: int, *, collections: Names[str] | None = None, tx: Transaction | None = None
    ) -> tuple[str, int] | None:
        """(label, faces in ``collections`` or in all) of a subject, or ``None`` when there is no such subject."""
        with self._reading(tx) as session:
            row = session.get(Subject, subject_id)
            if row is None:
                return None
            faces = (
                select(func.count(Face.id))
                .join(Image, Image.id == Face.image_id)
                .join(Collection, Collection.id == Image.collection_id)
                .where(Face.subject_id == subject_id)
            )
            if collections is not None:
                faces = faces.where(Collection.name.in_(sorted(collections)))
            return str(row.label), int(session.scalar(faces) or 0)

    def collections_of(self, subject_id: int, tx: Transaction | None = None) -> set[str]:
        """The collections that hold faces of the subject."""
        with self._reading(tx) as session:
            return set(
                session.scalars(
                    select(Collection.name)
                    .join(Image, Image.collection_id == Collection.id)
                    .join(Face, Face.image_id == Image.id)
                    .where(Face.subject_id == subject_id)
                    .distinct()
                )
            )

    def label_taken(self, tx: Transaction, label: str, by_other_than: int) -> bool:
        """True when another subject already has ``label``."""
        return tx.scalar(select(Subject.id).where(Subject.label == label, Subject.id != by_other_than)) is not None

    def rename(self, tx: Transaction, subject_id: int, label: str) -> None:
        """Give a subject another label."""
        tx.execute(update(Subject).where(Subject.id == subject_id).values(label=label))

    def merge(self, tx: Transaction, subject_id: int, into: int) -> int:
        """Move every face of ``subject_id`` to ``into`` and delete the first; returns how many faces moved."""
        moved = tx.execute(update(Face).where(Face.subject_id == subject_id).values(subject_id=into))
        row = tx.get(Subject, subject_id)
        if row is not None:
            tx.delete(row)
        tx.flush()
        return int(moved.rowcount or 0)  # type: ignore[attr-defined]

    def faces_of(
        self, subject_id: int, *, collections: Names[str] | None = None, tx: Transaction | None = None
    ) -> list[tuple[int, str, str]]:
        """(face id, collection, image path) of the subject's faces (in ``collections`` when given), by id."""
        query = (
            select(Face.id, Collection.name, Image.path)
            .join(Image, Image.id == Face.image_id)
            .join(Collection, Collection.id == Image.collection_id)
            .where(Face.subject_id == subject_id)
            .order_by(Face.id)
        )
        if collections is not None:
            query = query.where(Collection.name.in_(sorted(collections)))
        with self._reading(tx) as session:
            return [(int(i), str(c), str(p)) for i, c, p in session.execute(query)]

    def split(self, tx: Transaction, subject_id: int, face_ids: Names[int], label: str) -> int:
        """Move ``face_ids`` (faces of ``subject_id``) to a new subject called ``label``; returns its id."""
        row = Subject(label=label)
        tx.add(row)
        tx.flush()
        tx.execute(
            update(Face).where(Face.subject_id == subject_id, Face.id.in_(sorted(face_ids))).values(subject_id=row.id)
        )
        tx.flush()
        return int(row.id)

    def enrol_faces(self, tx: Transaction, label: str, face_ids: Names[int]) -> int:
        """Enrol faces under the subject called ``label`` (made when there is none); returns its id."""
        subject_id = tx.scalar(select(Subject.id).where(Subject.label == label))
        if subject_id is None:
            row = Subject(label=label)
            tx.add(row)
            tx.flush()
            subject_id = row.id
        for start in range(0, len(face_ids), 500):
            batch = sorted(face_ids)[start : start + 500]
            tx.execute(update(Face).where(Face.id.in_(batch)).values(subject_id=subject_id))
        return int(subject_id)

    def id_of(self, label: str, tx: Transaction | None = None) -> int | None:
        """The id of the subject called ``label``, or ``None``."""
        with self._reading(tx) as session:
            found = session.scalar(select(Subject.id).where(Subject.label == label))
            return int(found) if found is not None else None
