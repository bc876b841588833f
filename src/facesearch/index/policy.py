"""Which FAISS index suits how many faces, and how hard to search it: the automatic choice, in one place.

Small galleries get an exact flat index: it needs no training and a single probe against 100,000 faces takes a
few milliseconds. Past :data:`FLAT_MAX` faces a compressed index takes over: an inverted file (IVF) with about
``sqrt(N) / 2`` lists, and 4-bit product quantisation with fast-scan SIMD kernels (``PQ{dim/2}x4fs``: 32 bytes
per 128-d face, against 512 for the float vector). Its candidates are re-ranked exactly from the full vectors on
disk, so the scores users see are exact; only a mate the compressed search misses entirely is lost.

Face embeddings are a hard case for inverted files: a probe's mate typically scores 0.5-0.7 against it (a wide
angle in 128 dimensions), so the mate often lies in a list whose centre is far from the probe. Measured on
face-like data (``benchmarks/scale.py``), 32-byte codes lose no mates, but visiting a quarter of the lists loses
about 1.5% of them and half of the lists 0.1%; hence the large default ``nprobe`` fraction, and few, large lists
(they make adding and training cheap, and the fraction, not the count, is what recall depends on).
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
MAX_NLIST = 8_192


@dataclass(frozen=True)
class SearchKnobs:
    """How a compressed index is searched: IVF lists visited, HNSW breadth, and candidates re-ranked exactly.

    ``nprobe`` (lists visited) is ``nprobe_fraction`` of the lists unless set explicitly.
    """

    nprobe: int | None = None
    nprobe_fraction: float = 0.4
    ef_search: int = 128
    rerank: int = 100

    def nprobe_for(self, nlist: int) -> int:
        """Lists to visit in an index of ``nlist`` lists."""
        if self.nprobe is not None:
            return max(1, min(self.nprobe, nlist))
        return max(1, min(nlist, math.ceil(self.nprobe_fraction * nlist)))


def nlist_for(faces: int) -> int:
    """Inverted lists for ``faces`` vectors: a power of two near ``sqrt(faces) / 2``."""
    target = 0.5 * math.sqrt(max(faces, 1))
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
