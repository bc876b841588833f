"""The review queue store: decisions waiting for a person, and the decisions made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.schema import ReviewItem, StandingCrossmatch, utcnow


@dataclass
class ReviewRow:
    """One item of the queue, decided or not."""

    id: int
    kind: str
    pack: str
    cluster_id: int | None
    face_a: int | None
    face_b: int | None
    similarity: float | None
    reason: str | None
    created_at: datetime
    decision: str | None
    note: str | None
    decided_by: str | None
    decided_at: datetime | None


@dataclass
class NewReviewItem:
    """An item to put in the queue; ``key`` says what it is about, so the same thing is queued once."""

    key: str
    kind: str
    pack: str
    cluster_id: int | None = None
    face_a: int | None = None
    face_b: int | None = None
    similarity: float | None = None
    reason: str | None = None


def _row(item: ReviewItem) -> ReviewRow:
    return ReviewRow(
        id=int(item.id),
        kind=item.kind,
        pack=item.pack,
        cluster_id=item.cluster_id,
        face_a=item.face_a,
        face_b=item.face_b,
        similarity=item.similarity,
        reason=item.reason,
        created_at=item.created_at,
        decision=item.decision,
        note=item.note,
        decided_by=item.decided_by,
        decided_at=item.decided_at,
    )


class ReviewStore(Store):
    """The review queue."""

    def add(self, tx: Transaction, items: Sequence[NewReviewItem]) -> int:
        """Queue the items not queued before (decided or not: a decided pair is never asked again); how many."""
        if not items:
            return 0
        keys = [item.key for item in items]
        known: set[str] = set()
        for start in range(0, len(keys), 500):
            known.update(tx.scalars(select(ReviewItem.key).where(ReviewItem.key.in_(keys[start : start + 500]))))
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for item in items:
            if item.key in known:
                continue
            known.add(item.key)
            rows.append({**vars(item), "created_at": now})
        for start in range(0, len(rows), 10_000):
            tx.execute(insert(ReviewItem), rows[start : start + 10_000])
        return len(rows)

    def items(
        self,
        *,
        kind: str | None = None,
        open_only: bool = True,
        decision: str | None = None,
        limit: int = 1000,
        offset: int = 0,
        tx: Transaction | None = None,
    ) -> list[ReviewRow]:
        """Queued items (those waiting, or all), the most alike pairs and the oldest items first."""
        query = select(ReviewItem).order_by(ReviewItem.kind, ReviewItem.similarity.desc(), ReviewItem.id)
        if kind is not None:
            query = query.where(ReviewItem.kind == kind)
        if open_only:
            query = query.where(ReviewItem.decision.is_(None))
        if decision is not None:
            query = query.where(ReviewItem.decision == decision)
        with self._reading(tx) as session:
            return [_row(item) for item in session.scalars(query.limit(limit).offset(offset))]

    def item(self, item_id: int, tx: Transaction | None = None) -> ReviewRow | None:
        """One item, or ``None``."""
        with self._reading(tx) as session:
            found = session.get(ReviewItem, item_id)
            return _row(found) if found is not None else None

    def decide(self, tx: Transaction, item_id: int, decision: str, note: str | None, actor: str) -> None:
        """Record a decision on an item."""
        tx.execute(
            update(ReviewItem)
            .where(ReviewItem.id == item_id)
            .values(decision=decision, note=note, decided_by=actor, decided_at=utcnow())
        )


@dataclass
class StandingRow:
    """A standing cross-match."""

    id: int
    collection: str
    against: str
    pack: str
    top_k: int
    min_similarity: float | None
    seen_face_id: int
    created_by: str


class StandingStore(Store):
    """Standing cross-matches."""

    def add(self, tx: Transaction, row: StandingRow) -> int:
        """Record a standing cross-match; its id."""
        values = {k: v for k, v in vars(row).items() if k != "id"}
        created = StandingCrossmatch(**values, created_at=utcnow())
        tx.add(created)
        tx.flush()
        return int(created.id)

    def all(self, tx: Transaction | None = None) -> list[StandingRow]:
        """Every standing cross-match, oldest first."""
        with self._reading(tx) as session:
            rows = session.scalars(select(StandingCrossmatch).order_by(StandingCrossmatch.id))
            return [
                StandingRow(
                    int(r.id),
                    r.collection,
                    r.against,
                    r.pack,
                    int(r.top_k),
                    r.min_similarity,
                    int(r.seen_face_id),
                    r.created_by,
                )
                for r in rows
            ]

    def seen(self, tx: Transaction, standing_id: int, face_id: int) -> None:
        """Mark the faces up to ``face_id`` matched."""
        tx.execute(update(StandingCrossmatch).where(StandingCrossmatch.id == standing_id).values(seen_face_id=face_id))
