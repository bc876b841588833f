"""The cases store: cases, their members, the faces their searches returned, and reviewers' decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import CaseRecord, DecisionRecord
from facesearch.catalog.schema import Case, CaseCandidate, CaseMember, Decision, Face, User


def _case(row: Case) -> CaseRecord:
    return CaseRecord(row.id, row.reference, row.title, row.opened_by, row.created_at, row.closed_at)


class CaseStore(Store):
    """Cases, members, candidates and decisions."""

    def case(self, reference: str, tx: Transaction | None = None) -> CaseRecord | None:
        """The case ``reference``, or ``None``."""
        with self._reading(tx) as session:
            row = session.scalar(select(Case).where(Case.reference == reference))
            return _case(row) if row is not None else None

    def add(self, tx: Transaction, reference: str, opened_by: str, title: str | None = None) -> CaseRecord:
        """Open a new case (the reference is unique: a second insert of it raises IntegrityError)."""
        row = Case(reference=reference, title=title, opened_by=opened_by)
        tx.add(row)
        tx.flush()
        return _case(row)

    def close(self, tx: Transaction, case_id: int, when: datetime) -> CaseRecord:
        """Close a case (a closed case keeps its first closing time)."""
        row = tx.get(Case, case_id)
        assert row is not None
        row.closed_at = row.closed_at or when
        tx.flush()
        return _case(row)

    def cases(
        self, *, open_only: bool = False, limit: int = 1000, visible_to: tuple[str, int | None] | None = None
    ) -> list[CaseRecord]:
        """Cases, newest first; ``visible_to=(actor, user id)`` keeps those opened by them or with them as member."""
        query = select(Case).order_by(Case.id.desc()).limit(limit)
        if open_only:
            query = query.where(Case.closed_at.is_(None))
        if visible_to is not None:
            actor, user_id = visible_to
            member_of = select(CaseMember.case_id).where(CaseMember.user_id == (user_id if user_id is not None else -1))
            query = query.where(or_(Case.opened_by == actor, Case.id.in_(member_of)))
        with self._reading(None) as session:
            return [_case(row) for row in session.scalars(query)]

    def is_member(self, case_id: int, user_id: int | None, tx: Transaction | None = None) -> bool:
        """True when the user was added to the case."""
        if user_id is None:
            return False
        with self._reading(tx) as session:
            return session.get(CaseMember, (case_id, user_id)) is not None

    def set_member(self, tx: Transaction, case_id: int, user_id: int, added_by: str, *, member: bool) -> None:
        """Add a user to a case, or take them off."""
        if member:
            if tx.get(CaseMember, (case_id, user_id)) is None:
                tx.add(CaseMember(case_id=case_id, user_id=user_id, added_by=added_by))
            return
        tx.execute(delete(CaseMember).where(CaseMember.case_id == case_id, CaseMember.user_id == user_id))

    def members(self, case_id: int) -> list[tuple[str, str, str]]:
        """(user name, role, added by) of each member, by name."""
        with self._reading(None) as session:
            rows = session.execute(
                select(User.name, User.role, CaseMember.added_by)
                .join(CaseMember, CaseMember.user_id == User.id)
                .where(CaseMember.case_id == case_id)
                .order_by(User.name)
            ).all()
            return [(str(n), str(r), str(b)) for n, r, b in rows]

    def candidates(self, case_id: int) -> list[tuple[int, float, int]]:
        """(face id, best similarity, audit seq of the search that first returned it) of each candidate."""
        with self._reading(None) as session:
            rows = session.execute(
                select(CaseCandidate.face_id, CaseCandidate.similarity, CaseCandidate.audit_seq)
                .where(CaseCandidate.case_id == case_id)
                .order_by(CaseCandidate.audit_seq, CaseCandidate.similarity.desc())
            ).all()
            return [(int(f), float(s), int(q)) for f, s, q in rows]

    def candidate_seq(self, case_id: int, face_id: int, tx: Transaction | None = None) -> int | None:
        """The audit seq of the search that first returned ``face_id`` under the case (``None``: it never did,
        or the face is gone)."""
        with self._reading(tx) as session:
            row = session.get(CaseCandidate, (case_id, face_id))
            if row is None or session.get(Face, face_id) is None:
                return None
            return int(row.audit_seq)

    def add_candidates(
        self, tx: Transaction, reference: str, audit_seq: int, found: Sequence[tuple[int, float]]
    ) -> None:
        """Remember the faces a search under case ``reference`` returned (best similarity per face)."""
        if not found:
            return
        case_id = tx.scalar(select(Case.id).where(Case.reference == reference))
        if case_id is None:
            return
        best: dict[int, float] = {}
        for face_id, similarity in found:
            best[face_id] = max(similarity, best.get(face_id, -1.0))
        existing = {
            row.face_id: row
            for row in tx.scalars(
                select(CaseCandidate).where(CaseCandidate.case_id == case_id, CaseCandidate.face_id.in_(sorted(best)))
            )
        }
        present = set(tx.scalars(select(Face.id).where(Face.id.in_(sorted(best)))))
        for face_id, similarity in best.items():
            if face_id in existing:
                existing[face_id].similarity = max(existing[face_id].similarity, similarity)
            elif face_id in present:
                tx.add(CaseCandidate(case_id=case_id, face_id=face_id, audit_seq=audit_seq, similarity=similarity))

    def add_decision(
        self,
        tx: Transaction,
        case_id: int,
        face_id: int,
        decision: str,
        decided_by: str,
        note: str | None,
        audit_seq: int | None,
    ) -> int:
        """Record a decision; returns its id."""
        row = Decision(
            case_id=case_id, face_id=face_id, decision=decision, note=note, decided_by=decided_by, audit_seq=audit_seq
        )
        tx.add(row)
        tx.flush()
        return int(row.id)

    def decisions(self, case_id: int) -> list[DecisionRecord]:
        """The decisions of a case, in the order they were made."""
        with self._reading(None) as session:
            return [
                DecisionRecord(d.id, d.face_id, d.decision, d.note, d.decided_by, d.audit_seq, d.created_at)
                for d in session.scalars(select(Decision).where(Decision.case_id == case_id).order_by(Decision.id))
            ]
