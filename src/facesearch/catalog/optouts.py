"""The opt-outs store: who opted out (never a photo) and their embeddings per pack."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.records import OptOutRecord
from facesearch.catalog.schema import OptOut, OptOutEmbedding


class OptOutStore(Store):
    """Opt-outs and their embeddings."""

    def add(
        self, tx: Transaction, created_by: str, note: str | None, embeddings: dict[str, tuple[np.ndarray, float]]
    ) -> int:
        """Store one person's embeddings (pack key -> (vector, threshold)); returns the opt-out's id."""
        row = OptOut(created_by=created_by, note=note)
        tx.add(row)
        tx.flush()
        for pack, (vector, threshold) in embeddings.items():
            tx.add(
                OptOutEmbedding(
                    optout_id=row.id,
                    pack=pack,
                    embedding=np.asarray(vector, dtype=np.float32).tobytes(),
                    threshold=float(threshold),
                )
            )
        return int(row.id)

    def exists(self, optout_id: int, tx: Transaction | None = None) -> bool:
        """True when the opt-out is there."""
        with self._reading(tx) as session:
            return session.get(OptOut, optout_id) is not None

    def remove(self, tx: Transaction, optout_id: int) -> None:
        """Delete an opt-out and its embeddings."""
        tx.execute(delete(OptOutEmbedding).where(OptOutEmbedding.optout_id == optout_id))
        tx.execute(delete(OptOut).where(OptOut.id == optout_id))

    def optouts(self) -> list[OptOutRecord]:
        """Every opt-out, oldest first."""
        with self._reading(None) as session:
            packs: dict[int, list[str]] = {}
            for optout_id, pack in session.execute(select(OptOutEmbedding.optout_id, OptOutEmbedding.pack)):
                packs.setdefault(optout_id, []).append(pack)
            return [
                OptOutRecord(o.id, o.created_by, o.note, o.created_at, tuple(sorted(packs.get(o.id, []))))
                for o in session.scalars(select(OptOut).order_by(OptOut.id))
            ]

    def count(self) -> int:
        """How many opt-outs there are."""
        with self._reading(None) as session:
            return int(session.scalar(select(func.count(OptOut.id))) or 0)

    def embeddings(self, pack: str, tx: Transaction | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The opt-out embeddings of ``pack`` as (vectors (N, dim), thresholds (N,)); empty arrays when none."""
        with self._reading(tx) as session:
            rows = session.execute(
                select(OptOutEmbedding.embedding, OptOutEmbedding.threshold).where(OptOutEmbedding.pack == pack)
            ).all()
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32)
        return (
            np.stack([np.frombuffer(row[0], dtype=np.float32) for row in rows]),
            np.array([row[1] for row in rows], dtype=np.float32),
        )
