"""Cases that searches are made for, who may use them, and reviewers' decisions on their candidates.

A case belongs to the user who opened it and to the users its owner (or an administrator) added to it: only
they may read it, search under it (investigators) or decide on its candidates (reviewers); anyone else is
told it does not exist. Its candidates are the faces its searches returned (recorded by the search service
in the same transaction as the search's audit record); a reviewer's decision is accepted only on one of those.
Every change (opening, closing, members, decisions) is audited in the transaction that makes it.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from typing import Any

from facesearch.catalog.base import Transaction
from facesearch.catalog.records import CaseRecord
from facesearch.catalog.schema import iso_utc, utcnow
from facesearch.catalog.store import Catalog
from facesearch.errors import CaseError
from facesearch.governance.access import AccessDenied, NotVisible, Principal, Role, require
from facesearch.governance.audit import AuditTrail
from facesearch.governance.context import check_case

__all__ = ["DECISIONS", "CaseError", "Cases"]

DECISIONS = ("match", "no_match", "unsure")
"""What a reviewer may decide about a candidate: a lead confirmed, rejected, or left open."""

MEMBER_ROLES = frozenset({Role.INVESTIGATOR, Role.REVIEWER})
"""Who can be added to a case: investigators (who then search under it) and reviewers (who decide)."""


def _case_dict(case: CaseRecord) -> dict[str, Any]:
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
    """Cases, their members, candidates and decisions."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, *, four_eyes: bool = True) -> None:
        self.catalog = catalog
        self.store = catalog.cases
        self.audit = audit
        self.four_eyes = four_eyes

    # Access -----------------------------------------------------------------------------------------------------

    def _may_use(self, case: CaseRecord, principal: Principal, tx: Transaction | None = None) -> bool:
        """Owner, member, or the local operator."""
        return (
            principal.operator
            or case.opened_by == principal.actor
            or self.store.is_member(case.id, principal.user_id, tx)
        )

    def _may_manage(self, case: CaseRecord, principal: Principal) -> bool:
        """Owner, an administrator, or the local operator: who adds members and closes the case."""
        return principal.operator or case.opened_by == principal.actor or principal.can("cases.manage")

    def _row(self, reference: str, tx: Transaction | None = None) -> CaseRecord:
        case = self.store.case(reference, tx)
        if case is None:
            raise _unknown(reference)
        return case

    def _readable(self, reference: str, principal: Principal, tx: Transaction | None = None) -> CaseRecord:
        case = self._row(reference, tx)
        if not (self._may_use(case, principal, tx) or principal.can("cases.manage")):
            raise _unknown(reference)
        return case

    @staticmethod
    def _require_management(principal: Principal) -> None:
        """Only investigators (their own cases) and administrators manage cases: close them, change members."""
        if not (principal.can("cases") or principal.can("cases.manage")):
            raise AccessDenied(f"the {principal.role.value} role may not manage cases")

    # Opening ----------------------------------------------------------------------------------------------------

    def open_for_search(self, principal: Principal, reference: str) -> dict[str, Any]:
        """The open case ``reference`` for a search by ``principal``, opened now (and owned by them) if new.

        A case that exists must be the principal's own or one they were added to (403 otherwise: searching
        under someone else's case would put results in their case); a closed case refuses.
        """
        reference = check_case(reference, required=True) or reference
        try:
            return self._open(principal, reference)
        except Exception as error:  # two first searches for a new case at once: the other one opened it
            if self.store.case(reference) is None or isinstance(error, (CaseError, AccessDenied)):
                raise
            return self._open(principal, reference)

    def _open(self, principal: Principal, reference: str) -> dict[str, Any]:
        audit = None
        with self.catalog.transaction() as tx:
            case = self.store.case(reference, tx)
            if case is None:
                case = self.store.add(tx, reference, principal.actor)
                audit = self.audit.append_in(
                    tx, actor=principal.actor, action="case_open", details={}, case_ref=reference
                )
            elif not self._may_use(case, principal, tx):
                raise AccessDenied(f"case {reference!r} belongs to another user", code="case_forbidden")
            if case.closed_at is not None:
                raise CaseError(f"case {reference!r} is closed: no more searches can be made for it")
        if audit is not None:
            self.audit.committed(*audit)
        return _case_dict(case)

    def create(self, principal: Principal, reference: str, *, title: str | None = None) -> dict[str, Any]:
        """Open a new case owned by ``principal`` (an existing reference is refused)."""
        require(principal, "cases")
        reference = check_case(reference, required=True) or reference
        with self.catalog.transaction() as tx:
            if self.store.case(reference, tx) is not None:
                raise CaseError(f"case {reference!r} already exists")
            case = self.store.add(tx, reference, principal.actor, title)
            audit = self.audit.append_in(
                tx, actor=principal.actor, action="case_open", details={"title": bool(title)}, case_ref=reference
            )
        self.audit.committed(*audit)
        return _case_dict(case)

    # Reading ----------------------------------------------------------------------------------------------------

    def get(self, principal: Principal, reference: str) -> dict[str, Any]:
        """One case with its members, candidates and decisions (for its owner, members and administrators)."""
        if not principal.can("cases.manage"):
            require(principal, "cases.read")
        case = self._readable(reference, principal)
        return {
            **_case_dict(case),
            "members": [{"user": n, "role": r, "added_by": b} for n, r, b in self.store.members(case.id)],
            "candidates": [
                {"face_id": face_id, "similarity": similarity, "audit_seq": seq}
                for face_id, similarity, seq in self.store.candidates(case.id)
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
                for d in self.store.decisions(case.id)
            ],
        }

    def list(self, principal: Principal, *, open_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        """The cases ``principal`` may read (their own and those they were added to; all for administrators),
        newest first."""
        if not principal.can("cases.manage"):
            require(principal, "cases.read")
        everyone = principal.operator or principal.can("cases.manage")
        visible_to = None if everyone else (principal.actor, principal.user_id)
        return [_case_dict(case) for case in self.store.cases(open_only=open_only, limit=limit, visible_to=visible_to)]

    def history(self, principal: Principal, reference: str, *, limit: int = 1000) -> builtins.list[dict[str, Any]]:
        """The case's own audit records (searches, decisions, reads, members), newest first, for those who may
        read the case: its history is part of it, while the rest of the log stays the auditors'."""
        if not principal.can("cases.manage"):
            require(principal, "cases.read")
        self._readable(reference, principal)
        return self.audit.records(case_ref=reference, limit=limit, newest_first=True)

    def is_candidate(self, principal: Principal, reference: str, face_id: int) -> bool:
        """True when ``principal`` may use case ``reference`` and one of its searches returned ``face_id``."""
        case = self.store.case(reference)
        if case is None or not self._may_use(case, principal):
            return False
        return self.store.candidate_seq(case.id, face_id) is not None

    def candidate_ids(self, principal: Principal, reference: str) -> set[int]:
        """The faces the searches of case ``reference`` returned, if ``principal`` may use it (else none)."""
        case = self.store.case(reference)
        if case is None or not self._may_use(case, principal):
            return set()
        return {face_id for face_id, _similarity, _seq in self.store.candidates(case.id)}

    def may_use(self, principal: Principal, reference: str) -> bool:
        """True when case ``reference`` exists and ``principal`` is its owner or a member (or the operator)."""
        case = self.store.case(reference)
        return case is not None and self._may_use(case, principal)

    # Changing ---------------------------------------------------------------------------------------------------

    def close(self, principal: Principal, reference: str) -> dict[str, Any]:
        """Close a case (its owner or an administrator): it keeps its history, and no search can be made for
        it any more."""
        self._require_management(principal)
        with self.catalog.transaction() as tx:
            case = self._readable(reference, principal, tx)
            if not self._may_manage(case, principal):
                raise AccessDenied(f"only the owner of case {reference!r} or an administrator may close it")
            closed = self.store.close(tx, case.id, utcnow())
            audit = self.audit.append_in(tx, actor=principal.actor, action="case_close", details={}, case_ref=reference)
        self.audit.committed(*audit)
        return _case_dict(closed)

    def add_member(self, principal: Principal, reference: str, user: str) -> dict[str, Any]:
        """Add an investigator or reviewer to a case (its owner or an administrator)."""
        return self._change_member(principal, reference, user, add=True)

    def remove_member(self, principal: Principal, reference: str, user: str) -> dict[str, Any]:
        """Take a user off a case (its owner or an administrator)."""
        return self._change_member(principal, reference, user, add=False)

    def _change_member(self, principal: Principal, reference: str, name: str, *, add: bool) -> dict[str, Any]:
        self._require_management(principal)
        with self.catalog.transaction() as tx:
            case = self._readable(reference, principal, tx)
            if not self._may_manage(case, principal):
                raise AccessDenied(f"only the owner of case {reference!r} or an administrator may change its members")
            user = self.catalog.accounts.user(name, tx)
            if user is None:
                raise NotVisible(f"unknown user {name!r}", code="unknown_user")
            if add and (Role(user.role) not in MEMBER_ROLES or user.disabled_at is not None):
                raise CaseError(f"only active investigators and reviewers can be added to a case, not {name!r}")
            self.store.set_member(tx, case.id, user.id, principal.actor, member=add)
            action = "case_member_add" if add else "case_member_remove"
            audit = self.audit.append_in(
                tx, actor=principal.actor, action=action, details={"user": name}, case_ref=reference
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
        with self.catalog.transaction() as tx:
            case = self._row(reference, tx)
            if not self._may_use(case, principal, tx):
                raise _unknown(reference)
            first_seq = self.store.candidate_seq(case.id, face_id, tx)
            if first_seq is None:
                raise NotVisible(f"face {face_id} is not a candidate of case {reference!r}", code="unknown_face")
            seq = audit_seq if audit_seq is not None else first_seq
            if self.four_eyes and decision == "match" and principal.actor in self.searchers(reference, face_id):
                raise AccessDenied(
                    f"four eyes: {principal.actor} ran the search that returned face {face_id}; another person "
                    "must confirm it as a match",
                    code="four_eyes",
                )
            decision_id = self.store.add_decision(tx, case.id, face_id, decision, principal.actor, note, seq)
            details = {"face_id": face_id, "decision": decision, "audit_seq": seq}
            audit = self.audit.append_in(
                tx, actor=principal.actor, action="decision", details=details, case_ref=reference
            )
        self.audit.committed(*audit)
        return {"id": decision_id, "case_id": reference, "face_id": face_id, "decision": decision, "note": note}

    def searchers(self, reference: str, face_id: int) -> set[str]:
        """Who ran the searches under case ``reference`` that returned ``face_id`` (from their audit records)."""
        found = set()
        for row in self.catalog.audit_log.records(case_ref=reference, action="search", limit=1_000_000):
            results = json.loads(row.details).get("results") or []
            if any(pair[0] == face_id for face in results for pair in face):
                found.add(row.actor)
        return found

    def record_candidates(
        self, tx: Transaction, reference: str, audit_seq: int, found: Sequence[tuple[int, float]]
    ) -> None:
        """Remember the faces a search under case ``reference`` returned (inside the search's audit transaction)."""
        self.store.add_candidates(tx, reference, audit_seq, found)
