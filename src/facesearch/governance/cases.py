"""Cases that searches are made for, and reviewers' decisions on the candidates of a case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facesearch.catalog.schema import Case, Decision, Face, iso_utc, utcnow
from facesearch.catalog.store import Catalog
from facesearch.governance.context import check_case

DECISIONS = ("match", "no_match", "unsure")
"""What a reviewer may decide about a candidate: a lead confirmed, rejected, or left open."""


class CaseError(ValueError):
    """A case operation cannot be done (unknown or closed case, unknown face...)."""


def _case_dict(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.reference,
        "title": case.title,
        "opened_by": case.opened_by,
        "created_at": iso_utc(case.created_at),
        "closed_at": iso_utc(case.closed_at),
        "open": case.closed_at is None,
    }


class Cases:
    """Cases and decisions stored in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def open_for_search(self, reference: str, actor: str) -> dict[str, Any]:
        """The open case ``reference``, opened now by ``actor`` if it does not exist; a closed case refuses."""
        reference = check_case(reference, required=True) or reference
        try:
            return self._open(reference, actor)
        except IntegrityError:
            # Two first searches for a new case at once: the other one opened it; use theirs.
            return self._open(reference, actor)

    def _open(self, reference: str, actor: str) -> dict[str, Any]:
        with self.catalog.session() as session, session.begin():
            case = session.scalar(select(Case).where(Case.reference == reference))
            if case is None:
                case = Case(reference=reference, opened_by=actor)
                session.add(case)
                session.flush()
            if case.closed_at is not None:
                raise CaseError(f"case {reference!r} is closed: no more searches can be made for it")
            return _case_dict(case)

    def create(self, reference: str, actor: str, *, title: str | None = None) -> dict[str, Any]:
        """Open a new case (an existing reference is refused)."""
        reference = check_case(reference, required=True) or reference
        with self.catalog.session() as session, session.begin():
            if session.scalar(select(Case.id).where(Case.reference == reference)) is not None:
                raise CaseError(f"case {reference!r} already exists")
            case = Case(reference=reference, title=title, opened_by=actor)
            session.add(case)
            session.flush()
            return _case_dict(case)

    def get(self, reference: str) -> dict[str, Any]:
        """One case with its decisions."""
        with self.catalog.session() as session:
            case = self._row(session, reference)
            decisions = session.scalars(select(Decision).where(Decision.case_id == case.id).order_by(Decision.id))
            return {
                **_case_dict(case),
                "decisions": [
                    {
                        "id": d.id,
                        "face_id": d.face_id,
                        "decision": d.decision,
                        "note": d.note,
                        "decided_by": d.decided_by,
                        "audit_seq": d.audit_seq,
                        "created_at": iso_utc(d.created_at),
                    }
                    for d in decisions
                ],
            }

    @staticmethod
    def _row(session: Any, reference: str) -> Case:
        case = session.scalar(select(Case).where(Case.reference == reference))
        if case is None:
            raise CaseError(f"unknown case {reference!r}")
        return case

    def list(self, *, open_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        """Cases, newest first."""
        query = select(Case).order_by(Case.id.desc()).limit(limit)
        if open_only:
            query = query.where(Case.closed_at.is_(None))
        with self.catalog.session() as session:
            return [_case_dict(case) for case in session.scalars(query)]

    def close(self, reference: str) -> dict[str, Any]:
        """Close a case: it keeps its history, and no search can be made for it any more."""
        with self.catalog.session() as session, session.begin():
            case = self._row(session, reference)
            case.closed_at = case.closed_at or utcnow()
            return _case_dict(case)

    def decide(
        self,
        reference: str,
        face_id: int,
        decision: str,
        actor: str,
        *,
        note: str | None = None,
        audit_seq: int | None = None,
    ) -> dict[str, Any]:
        """Record a reviewer's decision on candidate ``face_id`` of a case."""
        if decision not in DECISIONS:
            raise CaseError(f"decision must be one of {', '.join(DECISIONS)}")
        with self.catalog.session() as session, session.begin():
            case = self._row(session, reference)
            if session.get(Face, face_id) is None:
                raise CaseError(f"unknown face {face_id}")
            row = Decision(
                case_id=case.id, face_id=face_id, decision=decision, note=note, decided_by=actor, audit_seq=audit_seq
            )
            session.add(row)
            session.flush()
            return {"id": row.id, "case_id": reference, "face_id": face_id, "decision": decision, "note": note}
