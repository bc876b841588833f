"""The vector index interface every backend implements (FAISS embedded; Milvus for clusters)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class VectorIndex(Protocol):
    """Unit vectors under integer ids, searched by inner product (cosine similarity)."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (N, dim) under new int64 ids (remove an id first to replace its vector)."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: (scores, ids), each (Q, k); missing slots have id -1 and score -inf."""
        ...

    def ids(self) -> np.ndarray:
        """Every id in the index (int64, any order)."""
        ...

    def __len__(self) -> int:
        """Number of vectors."""
        ...

    def save(self) -> None:
        """Persist the index atomically (a crash leaves the previous saved state)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Size, kind and memory figures for ``index-stats``."""
        ...

    def rebuild(self, factory: str | None = None, *, wait: bool = True) -> None:
        """Rebuild (retrain, compact, or change kind to ``factory``) without stopping searches for long."""
        ...

    def wait_for_rebuild(self, *, raise_error: bool = True) -> None:
        """Block until a background rebuild, if any, has finished."""
        ...

    def refresh(self) -> bool:
        """Load what another process committed since this one loaded or saved; True if anything was reloaded."""
        ...

    def close(self) -> None:
        """Save and release the index (it cannot be used afterwards)."""
        ...
