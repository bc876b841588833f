"""Cases that searches are made for, who may use them, and reviewers' decisions on their candidates.

A case belongs to the user who opened it and to the users its owner (or an administrator) added to it: only
they may read it, search under it (investigators) or decide on its candidates (reviewers); anyone else is
told it does not exist. Its candidates are the faces its searches returned (recorded by the search service
in the same transaction as the search's audit record); a reviewer's decision is accepted only on one of those.
Every change (opening, closing, members, decisions) is audited in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facesearch.catalog.schema import Case, CaseCandidate, CaseMember, Decision, Face, User, iso_utc, utcnow
from facesearch.catalog.store import Catalog
from facesearch.errors import CaseError
from facesearch.governance.access import AccessDenied, NotVisible, Principal, Role, require
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import check_case

DECISIONS = ("match", "no_match", "unsure")
"""What a reviewer may decide about a candidate: a lead confirmed, rejected, or left open."""

MEMBER_ROLES = frozenset({Role.INVESTIGATOR, Role.REVIEWER})
"""Who can be added to a case: investigators (who then search under it) and reviewers (who decide)."""


def _case_dict(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.reference,
        "title": case.title,
        "opened_by": case.opened_by,
        "created_at": iso_utc(case.created_at),
        "closed_at": iso_utc(case.closed_at),
        "open": case.closed_at is None,
    }


def _unknown(reference: str) -> NotVisible:
    return NotVisible(f"unknown case {reference!r}", code="unknown_case")


class Cases:
    """Cases, their members, candidates and decisions, stored in the catalog."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.audit = audit

    # Access -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _is_member(session: Session, case: Case, principal: Principal) -> bool:
        if principal.user_id is None:
            return False
        return session.get(CaseMember, (case.id, principal.user_id)) is not None

    def _may_use(self, session: Session, case: Case, principal: Principal) -> bool:
        """Owner, member, or the local operator."""
        return principal.operator or case.opened_by == principal.actor or self._is_member(session, case, principal)

    def _may_manage(self, case: Case, principal: Principal) -> bool:
        """Owner, an administrator, or the local operator: who adds members and closes the case."""
        return principal.operator or case.opened_by == principal.actor or principal.can("cases.manage")

    @staticmethod
    def _row(session: Session, reference: str) -> Case:
        case = session.scalar(select(Case).where(Case.reference == reference))
        if case is None:
            raise _unknown(reference)
        return case

    def _readable(self, session: Session, reference: str, principal: Principal) -> Case:
        case = self._row(session, reference)
        if not (self._may_use(session, case, principal) or principal.can("cases.manage")):
            raise _unknown(reference)
        return case

    # Opening ----------------------------------------------------------------------------------------------------

    def open_for_search(self, principal: Principal, reference: str) -> dict[str, Any]:
        """The open case ``reference`` for a search by ``principal``, opened now (and owned by them) if new.

        A case that exists must be the principal's own or one they were added to (403 otherwise: searching
        under someone else's case would put results in their case); a closed case refuses.
        """
        reference = check_case(reference, required=True) or reference
        try:
            return self._open(principal, reference)
        except IntegrityError:
            # Two first searches for a new case at once: the other one opened it; use theirs.
            return self._open(principal, reference)

    def _open(self, principal: Principal, reference: str) -> dict[str, Any]:
        audit = None
        with self.catalog.session() as session, session.begin():
            case = session.scalar(select(Case).where(Case.reference == reference))
            if case is None:
                case = Case(reference=reference, opened_by=principal.actor)
                session.add(case)
                session.flush()
                audit = self.audit.append_in(
                    session, actor=principal.actor, action="case_open", details={}, case_ref=reference
                )
            elif not self._may_use(session, case, principal):
                raise AccessDenied(f"case {reference!r} belongs to another user", code="case_forbidden")
            if case.closed_at is not None:
                raise CaseError(f"case {reference!r} is closed: no more searches can be made for it")
            described = _case_dict(case)
        if audit is not None:
            self.audit.committed(*audit)
        return described

    def create(self, principal: Principal, reference: str, *, title: str | None = None) -> dict[str, Any]:
        """Open a new case owned by ``principal`` (an existing reference is refused)."""
        require(principal, "cases")
        reference = check_case(reference, required=True) or reference
        with self.catalog.session() as session, session.begin():
            if session.scalar(select(Case.id).where(Case.reference == reference)) is not None:
                raise CaseError(f"case {reference!r} already exists")
            case = Case(reference=reference, title=title, opened_by=principal.actor)
            session.add(case)
            session.flush()
            audit = self.audit.append_in(
                session, actor=principal.actor, action="case_open", details={"title": bool(title)}, case_ref=reference
            )
            described = _case_dict(case)
        self.audit.committed(*audit)
        return described

    # Reading ----------------------------------------------------------------------------------------------------

    def get(self, principal: Principal, reference: str) -> dict[str, Any]:
        """One case with its members, candidates and decisions (for its owner, members and administrators)."""
        if not principal.can("cases.manage"):
            require(principal, "cases.read")
        with self.catalog.session() as session:
            case = self._readable(session, reference, principal)
            decisions = session.scalars(select(Decision).where(Decision.case_id == case.id).order_by(Decision.id))
            members = session.execute(
                select(User.name, User.role, CaseMember.added_by)
                .join(CaseMember, CaseMember.user_id == User.id)
                .where(CaseMember.case_id == case.id)
                .order_by(User.name)
            ).all()
            candidates = session.execute(
                select(CaseCandidate.face_id, CaseCandidate.similarity, CaseCandidate.audit_seq)
                .where(CaseCandidate.case_id == case.id)
                .order_by(CaseCandidate.audit_seq, CaseCandidate.similarity.desc())
            ).all()
            return {
                **_case_dict(case),
                "members": [{"user": name, "role": role, "added_by": by} for name, role, by in members],
                "candidates": [
                    {"face_id": face_id, "similarity": similarity, "audit_seq": seq}
                    for face_id, similarity, seq in candidates
                ],
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

    def list(self, principal: Principal, *, open_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        """The cases ``principal`` may read (their own and those they were added to; all for administrators),
        newest first."""
        if not principal.can("cases.manage"):
            require(principal, "cases.read")
        query = select(Case).order_by(Case.id.desc()).limit(limit)
        if open_only:
            query = query.where(Case.closed_at.is_(None))
        if not (principal.operator or principal.can("cases.manage")):
            member_of = select(CaseMember.case_id).where(CaseMember.user_id == (principal.user_id or -1))
            query = query.where(or_(Case.opened_by == principal.actor, Case.id.in_(member_of)))
        with self.catalog.session() as session:
            return [_case_dict(case) for case in session.scalars(query)]

    def is_candidate(self, principal: Principal, reference: str, face_id: int) -> bool:
        """True when ``principal`` may use case ``reference`` and one of its searches returned ``face_id``."""
        with self.catalog.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            if case is None or not self._may_use(session, case, principal):
                return False
            return session.get(CaseCandidate, (case.id, face_id)) is not None

    def may_use(self, principal: Principal, reference: str) -> bool:
        """True when case ``reference`` exists and ``principal`` is its owner or a member (or the operator)."""
        with self.catalog.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            return case is not None and self._may_use(session, case, principal)

    # Changing ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _require_management(principal: Principal) -> None:
        """Only investigators (their own cases) and administrators manage cases: close them, change members."""
        if not (principal.can("cases") or principal.can("cases.manage")):
            raise AccessDenied(f"the {principal.role.value} role may not manage cases")

    def close(self, principal: Principal, reference: str) -> dict[str, Any]:
        """Close a case (its owner or an administrator): it keeps its history, and no search can be made for
        it any more."""
        self._require_management(principal)
        with self.catalog.session() as session, session.begin():
            case = self._readable(session, reference, principal)
            if not self._may_manage(case, principal):
                raise AccessDenied(f"only the owner of case {reference!r} or an administrator may close it")
            case.closed_at = case.closed_at or utcnow()
            audit = self.audit.append_in(
                session, actor=principal.actor, action="case_close", details={}, case_ref=reference
            )
            described = _case_dict(case)
        self.audit.committed(*audit)
        return described

    def add_member(self, principal: Principal, reference: str, user: str) -> dict[str, Any]:
        """Add an investigator or reviewer to a case (its owner or an administrator)."""
        return self._change_member(principal, reference, user, add=True)

    def remove_member(self, principal: Principal, reference: str, user: str) -> dict[str, Any]:
        """Take a user off a case (its owner or an administrator)."""
        return self._change_member(principal, reference, user, add=False)

    def _change_member(self, principal: Principal, reference: str, name: str, *, add: bool) -> dict[str, Any]:
        self._require_management(principal)
        with self.catalog.session() as session, session.begin():
            case = self._readable(session, reference, principal)
            if not self._may_manage(case, principal):
                raise AccessDenied(f"only the owner of case {reference!r} or an administrator may change its members")
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                raise NotVisible(f"unknown user {name!r}", code="unknown_user")
            if add:
                if Role(user.role) not in MEMBER_ROLES or user.disabled_at is not None:
                    raise CaseError(f"only active investigators and reviewers can be added to a case, not {name!r}")
                if session.get(CaseMember, (case.id, user.id)) is None:
                    session.add(CaseMember(case_id=case.id, user_id=user.id, added_by=principal.actor))
            else:
                session.execute(delete(CaseMember).where(CaseMember.case_id == case.id, CaseMember.user_id == user.id))
            action = "case_member_add" if add else "case_member_remove"
            audit = self.audit.append_in(
                session, actor=principal.actor, action=action, details={"user": name}, case_ref=reference
            )
        self.audit.committed(*audit)
        return self.get(principal, reference)

    def decide(
        self,
        principal: Principal,
        reference: str,
        face_id: int,
        decision: str,
        *,
        note: str | None = None,
        audit_seq: int | None = None,
    ) -> dict[str, Any]:
        """Record a reviewer's decision on ``face_id``, which a search under the case must have returned."""
        require(principal, "decide")
        if decision not in DECISIONS:
            raise CaseError(f"decision must be one of {', '.join(DECISIONS)}")
        with self.catalog.session() as session, session.begin():
            case = self._row(session, reference)
            if not self._may_use(session, case, principal):
                raise _unknown(reference)
            candidate = session.get(CaseCandidate, (case.id, face_id))
            if candidate is None or session.get(Face, face_id) is None:
                raise NotVisible(f"face {face_id} is not a candidate of case {reference!r}", code="unknown_face")
            row = Decision(
                case_id=case.id,
                face_id=face_id,
                decision=decision,
                note=note,
                decided_by=principal.actor,
                audit_seq=audit_seq if audit_seq is not None else candidate.audit_seq,
            )
            session.add(row)
            session.flush()
            details = {"face_id": face_id, "decision": decision, "audit_seq": row.audit_seq}
            audit = self.audit.append_in(
                session, actor=principal.actor, action="decision", details=details, case_ref=reference
            )
            described = {"id": row.id, "case_id": reference, "face_id": face_id, "decision": decision, "note": note}
        self.audit.committed(*audit)
        return described

    @staticmethod
    def record_candidates(session: Session, reference: str, audit_seq: int, found: Sequence[tuple[int, float]]) -> None:
        """Remember the faces a search under case ``reference`` returned (inside the search's audit transaction)."""
        if not found:
            return
        case_id = session.scalar(select(Case.id).where(Case.reference == reference))
        if case_id is None:
            return
        best: dict[int, float] = {}
        for face_id, similarity in found:
            best[face_id] = max(similarity, best.get(face_id, -1.0))
        existing = {
            row.face_id: row
            for row in session.scalars(
                select(CaseCandidate).where(CaseCandidate.case_id == case_id, CaseCandidate.face_id.in_(sorted(best)))
            )
        }
        for face_id, similarity in best.items():
            if face_id in existing:
                existing[face_id].similarity = max(existing[face_id].similarity, similarity)
            elif session.get(Face, face_id) is not None:
                session.add(CaseCandidate(case_id=case_id, face_id=face_id, audit_seq=audit_seq, similarity=similarity))
