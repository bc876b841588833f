"""The opt-out list: people who asked never to be indexed or found, kept as face embeddings only (no image).

Ingest drops every face that matches an opt-out (in :meth:`facesearch.catalog.store.Catalog.record_files`,
in the same transaction as the insert), and search drops every candidate that matches one, so that faces
indexed before the opt-out are never returned either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from facesearch.catalog.schema import OptOut, OptOutEmbedding, iso_utc
from facesearch.catalog.store import Catalog, bump_generation


class OptOutError(ValueError):
    """An opt-out cannot be added or removed."""


@dataclass(frozen=True)
class OptOutList:
    """The opt-out embeddings of one pack, with the similarity from which a face counts as the person's."""

    vectors: np.ndarray  # (N, dim) float32
    thresholds: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def matches(self, vectors: np.ndarray) -> np.ndarray:
        """For each row of ``vectors``, whether it matches any opt-out (a boolean array)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1] if len(self) else 0)
        if not len(self) or not len(vectors):
            return np.zeros(len(vectors), dtype=bool)
        return np.asarray(((vectors @ self.vectors.T) >= self.thresholds[None, :]).any(axis=1))


EMPTY = OptOutList(np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32))


class OptOuts:
    """Opt-outs stored in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def add(self, embeddings: dict[str, tuple[np.ndarray, float]], actor: str, *, note: str | None = None) -> int:
        """Store one person's embeddings (pack key -> (vector, threshold)); returns the opt-out's id."""
        if not embeddings:
            raise OptOutError("no face embedding to store")
        with self.catalog.session() as session, session.begin():
            optout = OptOut(created_by=actor, note=note)
            session.add(optout)
            session.flush()
            for pack, (vector, threshold) in embeddings.items():
                session.add(
                    OptOutEmbedding(
                        optout_id=optout.id,
                        pack=pack,
                        embedding=np.asarray(vector, dtype=np.float32).tobytes(),
                        threshold=float(threshold),
                    )
                )
            bump_generation(session)
            return int(optout.id)

    def remove(self, optout_id: int) -> None:
        """Withdraw an opt-out (the person may be indexed and found again)."""
        with self.catalog.session() as session, session.begin():
            if session.get(OptOut, optout_id) is None:
                raise OptOutError(f"unknown opt-out {optout_id}")
            session.execute(delete(OptOutEmbedding).where(OptOutEmbedding.optout_id == optout_id))
            session.execute(delete(OptOut).where(OptOut.id == optout_id))
            bump_generation(session)

    def list(self) -> list[dict[str, Any]]:
        """Every opt-out: id, when, by whom, note, and the packs it holds an embedding for."""
        with self.catalog.session() as session:
            packs: dict[int, list[str]] = {}
            for optout_id, pack in session.execute(select(OptOutEmbedding.optout_id, OptOutEmbedding.pack)):
                packs.setdefault(optout_id, []).append(pack)
            return [
                {
                    "id": o.id,
                    "created_at": iso_utc(o.created_at),
                    "created_by": o.created_by,
                    "note": o.note,
                    "packs": sorted(packs.get(o.id, [])),
                }
                for o in session.scalars(select(OptOut).order_by(OptOut.id))
            ]

    def count(self) -> int:
        """How many opt-outs there are."""
        with self.catalog.session() as session:
            return int(session.scalar(select(func.count(OptOut.id))) or 0)

    def for_pack(self, pack: str) -> OptOutList:
        """The embeddings of ``pack`` to match faces against."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(OptOutEmbedding.embedding, OptOutEmbedding.threshold).where(OptOutEmbedding.pack == pack)
            ).all()
        if not rows:
            return EMPTY
        return OptOutList(
            np.stack([np.frombuffer(row[0], dtype=np.float32) for row in rows]),
            np.array([row[1] for row in rows], dtype=np.float32),
        )
