"""The pictures' PDQ hashes in a FAISS binary index, for finding near-duplicates by Hamming distance.

An exhaustive binary index (``IndexBinaryFlat``): a million 256-bit hashes take 32 MB and a lookup compares
them all in about 1.3 ms on one core here (``benchmarks/provenance.py``), which is exact and needs no
training; at tens of millions a multi-index hash would be the next step. The index is built in memory from the
catalog (the hashes are there) and caught up when the catalog's generation moves: new pictures are appended,
and a removal (erasure, retention) rebuilds it, so that an erased picture's hash is never kept here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

BITS = 256


class HashSource(Protocol):
    """Where the hashes are kept (the catalog's provenance store)."""

    def hashed_count(self) -> int:
        """How many pictures have a hash."""

    def hashes_after(self, after_id: int, limit: int = ...) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next hashed pictures after ``after_id``: ids, collection ids, hashes (n x 32 bytes)."""


@dataclass(frozen=True)
class HashMatch:
    """A stored picture within the radius of one of the probe's hashes: the nearest distance and which of the
    probe's variants (as it is, mirrored, trimmed...) came nearest."""

    image_id: int
    distance: int
    variant: str


class PictureHashIndex:
    """Every hashed picture of a catalog, searchable by Hamming distance; safe to share between threads."""

    def __init__(self, store: HashSource) -> None:
        import faiss

        self.store = store
        self._index = faiss.IndexBinaryFlat(BITS)
        self._ids = np.zeros(0, dtype=np.int64)
        self._collections = np.zeros(0, dtype=np.int64)
        self._generation: int | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def catch_up(self, generation: int) -> None:
        """Bring the index to the catalog's ``generation``: append new pictures; rebuild when some went."""
        with self._lock:
            if generation == self._generation:
                return
            last = int(self._ids[-1]) if len(self._ids) else 0
            self._append_after(last)
            if self.store.hashed_count() != len(self._ids):  # pictures were removed: rebuild from nothing
                self._index.reset()
                self._ids = np.zeros(0, dtype=np.int64)
                self._collections = np.zeros(0, dtype=np.int64)
                self._append_after(0)
            self._generation = generation

    def _append_after(self, last: int) -> None:
        while True:
            ids, collection_ids, codes = self.store.hashes_after(last)
            if not len(ids):
                return
            self._index.add(np.ascontiguousarray(codes))
            self._ids = np.concatenate([self._ids, ids])
            self._collections = np.concatenate([self._collections, collection_ids])
            last = int(ids[-1])

    def near(
        self, codes: dict[str, bytes], radius: int, collection_ids: set[int] | None = None, limit: int = 200
    ) -> list[HashMatch]:
        """Pictures within ``radius`` bits of any of ``codes`` (by variant name), nearest first, at most
        ``limit``; only those of ``collection_ids`` when given."""
        if not codes or not len(self._ids):
            return []
        names = list(codes)
        queries = np.stack([np.frombuffer(codes[name], dtype=np.uint8) for name in names])
        with self._lock:
            limits, distances, positions = self._index.range_search(queries, radius + 1)
            ids, collections = self._ids, self._collections
        best: dict[int, tuple[int, str]] = {}
        for query, name in enumerate(names):
            for at in range(limits[query], limits[query + 1]):
                position = int(positions[at])
                if collection_ids is not None and int(collections[position]) not in collection_ids:
                    continue
                image_id, distance = int(ids[position]), int(distances[at])
                if image_id not in best or distance < best[image_id][0]:
                    best[image_id] = (distance, name)
        matches = [HashMatch(image_id, distance, name) for image_id, (distance, name) in best.items()]
        matches.sort(key=lambda m: (m.distance, m.image_id))
        return matches[:limit]
