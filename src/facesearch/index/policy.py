"""Which FAISS index suits how many faces, and how hard to search it: the automatic choice, in one place.

Small galleries get an exact flat index: it needs no training and a single probe against 100,000 faces takes a
few milliseconds. Past :data:`FLAT_MAX` faces a compressed index takes over: an inverted file (IVF) with about
``2 * sqrt(N)`` lists, and 4-bit product quantisation with fast-scan SIMD kernels (``PQ{dim/2}x4fs``: 32 bytes per
128-d face, against 512 for the float vector). Its candidates are re-ranked exactly from the full vectors on
disk, so the scores users see are exact; only a mate the compressed search misses entirely is lost, which is
what ``nprobe`` and ``rerank`` are sized against (see ``docs/scale.md`` for the measurements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FLAT_MAX = 100_000
"""Above this many faces the automatic choice is a compressed index."""

GROWTH_BEFORE_RETRAIN = 4.0
"""A compressed index is retrained (in the background) when it holds this many times the faces it was trained on."""

TOMBSTONE_FRACTION = 0.2
"""A rebuild compacts the index once this share of its rows are removed faces."""

MIN_NLIST = 64
MAX_NLIST = 16_384


@dataclass(frozen=True)
class SearchKnobs:
    """How a compressed index is searched: IVF lists visited, HNSW breadth, and candidates re-ranked exactly."""

    nprobe: int = 32
    ef_search: int = 128
    rerank: int = 100


def nlist_for(faces: int) -> int:
    """Inverted lists for ``faces`` vectors: a power of two near ``2 * sqrt(faces)``, leaving room to grow."""
    target = 2.0 * math.sqrt(max(faces, 1))
    power = 2 ** round(math.log2(target))
    return int(min(MAX_NLIST, max(MIN_NLIST, power)))


def auto_factory(faces: int, dim: int) -> str:
    """The FAISS ``index_factory`` string the automatic policy picks for ``faces`` vectors of ``dim``."""
    if faces <= FLAT_MAX:
        return "Flat"
    coding = f"PQ{dim // 2}x4fs" if dim % 2 == 0 else "SQ8"
    return f"IVF{nlist_for(faces)},{coding}"


def training_size(factory: str, faces: int) -> int:
    """How many vectors to train on: about 64 per IVF list (k-means cost grows with it), at least 20,000."""
    nlist = 0
    for part in factory.split(","):
        if part.startswith("IVF"):
            digits = "".join(ch for ch in part[3:] if ch.isdigit())
            nlist = int(digits) if digits else 0
    return int(min(faces, max(20_000, 64 * nlist)))


def needs_rebuild(kind_flat: bool, auto: bool, live: int, trained_on: int, rows: int, dead_in_index: int) -> str | None:
    """Why the automatic policy wants a rebuild now (a reason for the log), or None."""
    if rows and (rows - live) / rows > TOMBSTONE_FRACTION and rows - live > 1000:
        return "compact removed faces"
    if dead_in_index and dead_in_index / max(rows, 1) > TOMBSTONE_FRACTION:
        return "compact tombstones of an index that cannot delete in place"
    if not auto:
        return None
    if kind_flat and live > FLAT_MAX:
        return f"{live} faces: switch from exact to compressed"
    if not kind_flat and trained_on and live > GROWTH_BEFORE_RETRAIN * trained_on:
        return f"{live} faces, trained on {trained_on}: retrain"
    return None
