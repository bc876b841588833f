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
