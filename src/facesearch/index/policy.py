"""Which FAISS index suits how many faces, and how hard to search it: the automatic choice, in one place.

Small galleries get an exact flat index: it needs no training and a single probe against 100,000 faces takes a
few milliseconds. Past :data:`FLAT_MAX` faces a compressed index takes over: an inverted file (IVF) with about
``sqrt(N) / 2`` lists, and 4-bit product quantisation with fast-scan SIMD kernels (``PQ{dim/2}x4fs``: 32 bytes
per 128-d face, against 512 for the float vector). Its candidates are re-ranked exactly from the full vectors on
disk, so the scores users see are exact; only a mate the compressed search misses entirely is lost.

Face embeddings are a hard case for inverted files: a probe's mate typically scores 0.5-0.7 against it (a wide
angle in 128 dimensions, where real embeddings spread over some 75 effective dimensions), so the mate often lies
in a list whose centre is far from the probe. Measured with real LFW probes among 1M face-like distractors
(``benchmarks/scale.py``): 32-byte codes re-ranked lose no mates, but visiting 30% of the lists loses 1.6% of
them, 40% loses 0.5% and 50% loses 0.3%; hence the large default ``nprobe`` fraction, and few, large lists
(they make adding and training cheap, and the fraction, more than the count, is what recall depends on). With
many lists a smaller share loses few mates (at 100M faces and 4,096 lists, 40% lost 0.04%), so from
:data:`MANY_LISTS` lists the default is 40%. Lower ``nprobe_fraction`` trades recall for speed (see
``docs/scale.md``).

A search therefore reads a fixed share of all the codes, and its time grows with the gallery: at 10M faces
half of the 32-byte codes is 160 MB, scanned at memory speed in about 9 ms on two cores. From
:data:`REFINED_MIN` faces the codes scanned are halved (``PQ{dim/4}x4fs``, 16 bytes) and, since 16-byte codes
rank a mate below thousands of strangers, each search keeps ``refine_candidates`` of them and ranks those by a
second, finer code held in memory (``PQ{dim/4}x8``, 32 bytes) before the best ``rerank`` are read from disk and
scored exactly: about 64 bytes a face in memory in all, instead of 48, for half the scanning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

FLAT_MAX = 100_000
"""Above this many faces the automatic choice is a compressed index."""

REFINED_MIN = 20_000_000
"""From this many faces the automatic choice scans 16-byte codes and refines their candidates (module notes)."""

GROWTH_BEFORE_RETRAIN = 4.0
"""A compressed index is retrained (in the background) when it holds this many times the faces it was trained on."""

TOMBSTONE_FRACTION = 0.2
"""A rebuild compacts the index once this share of its rows are removed faces."""

MIN_NLIST = 64
MAX_NLIST = 8_192

MIN_TRAINING = 65_536
"""Fewest vectors a compressed index is trained on. Which lists a face lands in depends on the k-means run, and
so does mate recall: at 1M faces, ``IVF256,PQ64x4fs`` visited at half its lists kept 99.1-99.7% of the mates
over four training samples of 32,768 or more, but 98.2% once when trained on 20,000 (78 vectors a list)."""

NPROBE_FRACTION = 0.5
"""Share of the inverted lists a search visits by default (module notes)."""

MANY_LISTS = 4_096
"""From this many lists (about 34M faces) a search visits :data:`MANY_LISTS_FRACTION` of them by default."""

MANY_LISTS_FRACTION = 0.4
"""With many lists a mate's list is more often among the nearest: measured at 100M faces (4,096 lists),
visiting 40% instead of 50% lost 0.04% of the mates (99.59 against 99.63%) for 17% less time (48 against
58 ms p50 on two cores); at 1M faces (256 lists) it lost 0.26%."""


@dataclass(frozen=True)
class SearchKnobs:
    """How a compressed index is searched: IVF lists visited, HNSW breadth, candidates ranked by the refine
    codes (kinds with a ``Refine()`` stage), and candidates re-ranked exactly from the full vectors.

    ``nprobe`` (lists visited) is ``nprobe_fraction`` of the lists unless set explicitly (by default
    :data:`NPROBE_FRACTION`, :data:`MANY_LISTS_FRACTION` from :data:`MANY_LISTS` lists), and never fewer than
    it takes to scan ``min_scanned`` faces: below a million faces, scanning more costs a millisecond or two and
    finds every mate (measured: 100% of mates at 100,000 faces with every list, 99.2% with half of them).
    """

    nprobe: int | None = None
    nprobe_fraction: float | None = None
    min_scanned: int = 500_000
    ef_search: int = 128
    rerank: int = 100
    refine_candidates: int = 20_000

    def nprobe_for(self, nlist: int, faces: int = 0) -> int:
        """Lists to visit in an index of ``nlist`` lists holding ``faces`` vectors."""
        if self.nprobe is not None:
            return max(1, min(self.nprobe, nlist))
        chosen = self.nprobe_fraction
        if chosen is None:
            chosen = MANY_LISTS_FRACTION if nlist >= MANY_LISTS else NPROBE_FRACTION
        fraction = max(chosen, min(1.0, self.min_scanned / faces) if faces else 0.0)
        return max(1, min(nlist, math.ceil(fraction * nlist)))


def nlist_for(faces: int) -> int:
    """Inverted lists for ``faces`` vectors: a power of two near ``sqrt(faces) / 2``."""
    target = 0.5 * math.sqrt(max(faces, 1))
    power = 2 ** round(math.log2(target))
    return int(min(MAX_NLIST, max(MIN_NLIST, power)))


def auto_factory(faces: int, dim: int) -> str:
    """The FAISS ``index_factory`` string the automatic policy picks for ``faces`` vectors of ``dim``."""
    if faces <= FLAT_MAX:
        return "Flat"
    if faces >= REFINED_MIN and dim % 4 == 0:
        return f"IVF{nlist_for(faces)},PQ{dim // 4}x4fs,Refine(PQ{dim // 4}x8)"
    coding = f"PQ{dim // 2}x4fs" if dim % 2 == 0 else "SQ8"
    return f"IVF{nlist_for(faces)},{coding}"


def training_size(factory: str, faces: int) -> int:
    """How many vectors to train on: about 64 per IVF list (k-means cost grows with it), at least
    :data:`MIN_TRAINING` (few lists trained on 78 vectors each once lost 1.8% of the mates at 1M faces)."""
    return int(min(faces, max(MIN_TRAINING, 64 * nlist_of(factory))))


def nlist_of(factory: str) -> int:
    """The inverted-list count of a FAISS factory string (0 for kinds without inverted lists)."""
    match = re.search(r"IVF(\d+)", factory)
    return int(match.group(1)) if match else 0
