"""The review queue: decisions waiting for a person, and what a decision changes.

Items come from clustering runs (clusters flagged as likely two people; faces whose best match elsewhere fell
just short of the threshold) and from cross-matches run with ``queue`` (candidate pairs). Each is decided once
(same / different / unsure, with a note); the decision is audited and fed back into the clusters in the same
transaction: "different" becomes a cannot-link (or moves the face out when both are in one cluster), "same"
merges the two clusters (or confirms a flagged cluster as one person). A decided item is never queued again.
"""

from __future__ import annotations

from typing import Any, Literal

from facesearch.catalog.base import Transaction
from facesearch.catalog.review import ReviewRow
from facesearch.catalog.store import Catalog
from facesearch.governance.access import NotVisible, Principal, require, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.search.clusters import ClusterError

Decision = Literal["same", "different", "unsure"]
DECISIONS = ("same", "different", "unsure")
KINDS = ("mixed_cluster", "near_threshold", "crossmatch_pair")
REPORT_FIELDS = (
    "item_id",
    "kind",
    "face_a",
    "image_a",
    "collection_a",
    "subject_a",
    "face_b",
    "image_b",
    "collection_b",
    "subject_b",
    "similarity",
    "decided_by",
    "decided_at",
    "note",
)


class ReviewQueue:
    """The queue of one data folder."""

    def __init__(self, catalog: Catalog, audit: AuditTrail) -> None:
        self.catalog = catalog
        self.store = catalog.review
        self.clusters = catalog.clusters
        self.audit = audit

    @staticmethod
    def _allowed(principal: Principal) -> None:
        require(principal, "clusters")
        require_unlimited(principal, "the review queue")  # its items cross collections

    def items(
        self,
        principal: Principal,
        *,
        kind: str | None = None,
        open_only: bool = True,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[ReviewRow]:
        """Items waiting (or all with ``open_only=False``), by kind, the most alike pairs first; audited."""
        self._allowed(principal)
        if kind is not None and kind not in KINDS:
            raise ClusterError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        rows = self.store.items(kind=kind, open_only=open_only, limit=limit, offset=offset)
        details = {"kind": kind, "count": len(rows), "item_ids": [row.id for row in rows[:1000]]}
        self.audit.append(actor=principal.actor, action="review_list", details=details)
        return rows

    def confirmed(self, principal: Principal) -> list[dict[str, Any]]:
        """The pairs reviewers decided are the same person, with both faces' photos, collections and subjects,
        the similarity, who decided, when and why: the report a reunification desk hands on (audited)."""
        self._allowed(principal)
        same = self.store.items(open_only=False, decision="same", limit=1_000_000)
        rows = [row for row in same if row.face_a is not None and row.face_b is not None]
        details = self.catalog.face_details(sorted({f for row in rows for f in (row.face_a, row.face_b) if f}))
        report = []
        for row in rows:
            a, b = details.get(row.face_a or 0), details.get(row.face_b or 0)
            report.append(
                {
                    "item_id": row.id,
                    "kind": row.kind,
                    "face_a": row.face_a,
                    "image_a": a.image_path if a else None,
                    "collection_a": a.collection if a else None,
                    "subject_a": a.subject if a else None,
                    "face_b": row.face_b,
                    "image_b": b.image_path if b else None,
                    "collection_b": b.collection if b else None,
                    "subject_b": b.subject if b else None,
                    "similarity": row.similarity,
                    "decided_by": row.decided_by,
                    "decided_at": row.decided_at.isoformat() if row.decided_at else None,
                    "note": row.note,
                }
            )
        self.audit.append(
            actor=principal.actor,
            action="review_report",
            details={"pairs": len(report), "item_ids": [r["item_id"] for r in report[:1000]]},
        )
        return report

    def decide(self, principal: Principal, item_id: int, decision: str, note: str | None = None) -> ReviewRow:
        """Decide an item; the decision changes the clusters as the module docstring says. Returns the item."""
        self._allowed(principal)
        if decision not in DECISIONS:
            raise ClusterError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
        item = self.store.item(item_id)
        if item is None:
            raise NotVisible(f"unknown review item {item_id}", code="unknown_review_item")
        if item.decision is not None:
            raise ClusterError(f"review item {item_id} was already decided ({item.decision})")
        with self.catalog.transaction() as tx:
            effect = self._apply(tx, item, decision)
            self.store.decide(tx, item_id, decision, note.strip() if note and note.strip() else None, principal.actor)
            details = {"item_id": item_id, "kind": item.kind, "decision": decision, "effect": effect}
            record = self.audit.append_in(tx, actor=principal.actor, action="review_decision", details=details)
        self.audit.committed(*record)
        decided = self.store.item(item_id)
        assert decided is not None
        return decided

    def _apply(self, tx: Transaction, item: ReviewRow, decision: str) -> dict[str, Any]:
        """What the decision changes in the clusters (inside the decision's transaction)."""
        if decision == "unsure":
            return {}
        if item.kind == "mixed_cluster":
            if decision == "same" and item.cluster_id is not None:
                self.clusters.confirm(tx, item.cluster_id)
                return {"confirmed_cluster": item.cluster_id}
            return {}  # "different": the reviewer splits it (which faces go is theirs to say)
        if item.face_a is None or item.face_b is None:
            return {}
        found = self.clusters.memberships([item.face_a, item.face_b], tx)
        if item.face_a not in found or item.face_b not in found:
            return {}  # a face not clustered yet: the decision is recorded, and kept for later runs
        first, second = found[item.face_a][0], found[item.face_b][0]
        if decision == "same":
            if first == second:
                return {}
            self.clusters.remove_apart(tx, second, first)
            self.clusters.merge(tx, second, first)
            return {"merged": [second, first]}
        if first == second:
            pack = self.clusters.cluster_pack(first, tx) or item.pack
            moved_to = self.clusters.move_to_new(tx, pack, [item.face_b])
            self.clusters.pin(tx, first)
            self.clusters.add_apart(tx, first, moved_to)
            return {"moved_out": item.face_b, "into": moved_to, "from": first}
        self.clusters.pin(tx, first)
        self.clusters.pin(tx, second)
        self.clusters.add_apart(tx, first, second)
        return {"apart": sorted((first, second))}
