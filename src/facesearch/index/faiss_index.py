"""Embedded FAISS index: exact while small, compressed with exact re-ranking when large, rebuilt without pausing.

Layout in the data folder, for the index file ``<pack>.faiss``:

- ``<pack>.faiss``: a small header (JSON: dimension, committed rows, generation, factory, search knobs) followed
  by the FAISS index of a compressed kind. An exact (flat) index is not written: it is rebuilt from the full
  vectors when opened. This file is replaced atomically (write, fsync, rename) and is the commit point.
- ``<pack>.faiss.g<N>.vectors`` / ``.ids``: the full vectors and their face ids
  (:class:`facesearch.index.vector_store.VectorStore`), used to re-rank candidates exactly and to rebuild.

FAISS holds row numbers of the store, not face ids: a candidate's row gives its full vector and its face id
directly. Removing a face zeroes its vector on disk and deletes its codes from the FAISS index (kinds that
cannot delete in place, such as HNSW, keep a tombstone that searches skip until the next rebuild compacts it).

A rebuild (retraining, changing the factory, compaction) runs on its own thread on a new generation of the store
while searches and additions go on against the current one; additions and removals made meanwhile are replayed
onto the new index, and the swap happens under the lock, then is committed by replacing the header file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import struct
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from facesearch.index.policy import (
    FLAT_MAX,
    GROWTH_BEFORE_RETRAIN,
    REFINED_MIN,
    TOMBSTONE_FRACTION,
    SearchKnobs,
    auto_factory,
    nlist_of,
    training_size,
)
from facesearch.index.vector_store import VectorStore, stray_generations, stray_temporaries, temporary_commit_file

log = logging.getLogger(__name__)
# FAISS's bundled type hints miss most of its SWIG classes and keyword constructors: treat the module as dynamic.
faiss: Any = _faiss

SMALL_BATCH = 32
MAGIC = b"FSFAISS\x01"
FLAT = "Flat"
AUTO = "auto"
KNOBS_VERSION = 2
"""Headers from version 2 on save ``nprobe_fraction`` as ``null`` when it is the policy's default. Earlier
headers saved the then default, 0.5, as a number: read as the default, so that a large index saved before
the default changed by size follows the policy, not a figure nobody chose (``reindex --nprobe-fraction``
sets one that stays)."""
OLD_DEFAULT_FRACTION = 0.5
CHUNK = 65_536
CATCH_UP_IN_LOCK = 20_000  # rows a rebuild may still have to replay while holding the lock (a few ms of work)
BRUTE_FORCE_MAX = 50_000  # allowed sets up to this size are searched exactly from the full vectors
FLAT_LIMIT = 4 * FLAT_MAX  # an exact index waiting for its compressed replacement grows no further (200 MB)
REBUILD_RETRY_S = 60.0  # an automatic rebuild held for want of disk, or that failed, is tried again after this
DISK_HEADROOM = 1.1  # free disk a rebuild asks for, as a share of the new copy of the vectors it writes


class IndexDimensionError(ValueError):
    """The index file holds vectors of another dimension than the pack's."""


def index_file_name(pack_key: str) -> str:
    """File name of a pack's index: the pack key with anything unusual in a file name replaced."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", pack_key) + ".faiss"


def split_refine(factory: str) -> tuple[str, str | None]:
    """``"IVF4096,PQ32x4fs,Refine(PQ32x8)"`` -> ``("IVF4096,PQ32x4fs", "PQ32x8")``: the index that is scanned,
    and the codes its candidates are ranked by before the exact re-ranking (``None`` without a refine stage)."""
    match = re.fullmatch(r"(.+),Refine\((.+)\)", factory)
    return (match.group(1), match.group(2)) if match else (factory, None)


def check_factory(factory: str, dim: int) -> str:
    """``factory`` if FAISS can build an inner-product index from it for ``dim``-d vectors, else ValueError.

    A ``,Refine(CODES)`` suffix adds a second, finer code per face kept in memory (for example ``PQ32x8``):
    the scanned index's candidates are ranked by it, and only the best of them are read from disk."""
    if factory in (AUTO, FLAT):
        return factory
    base, refine = split_refine(factory)
    for part in (base, refine):
        if part is None:
            continue
        try:
            built = faiss.index_factory(dim, part, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else "rejected"
            raise ValueError(f"invalid FAISS index factory {factory!r} for {dim}-d vectors: {message}") from error
        if part is refine and not isinstance(built, faiss.IndexPQ | faiss.IndexScalarQuantizer):
            raise ValueError(f"invalid FAISS index factory {factory!r}: Refine() takes PQ or SQ codes")
    return factory


def _coding(factory: str) -> str:
    """``factory`` without its inverted-list count: how faces are coded and scanned, whatever the lists."""
    return re.sub(r"IVF\d+", "IVF", factory)


def min_training_faces(factory: str, dim: int) -> int:
    """Faces needed before ``factory`` can be built: none for kinds without training (HNSW), else about 39 per
    IVF list (what FAISS asks for) and at least 1,000."""
    factory = split_refine(factory)[0]
    if factory in (FLAT, AUTO) or faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT).is_trained:
        return 0
    return max(1_000, 39 * nlist_of(factory))


def _new_faiss(factory: str, dim: int) -> Any:
    """An empty index whose ids are store rows: kinds without their own ids are wrapped in an id map."""
    if factory == FLAT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    index = faiss.index_factory(dim, split_refine(factory)[0], faiss.METRIC_INNER_PRODUCT)
    if faiss.try_extract_index_ivf(index) is None:
        index = faiss.IndexIDMap2(index)
    return index


def _new_refiner(factory: str, dim: int) -> Any | None:
    """The empty refine codes of ``factory`` (see :func:`split_refine`), or ``None`` when it has none."""
    refine = split_refine(factory)[1]
    if refine is None:
        return None
    refiner = faiss.index_factory(dim, refine, faiss.METRIC_INNER_PRODUCT)
    if isinstance(refiner, faiss.IndexPQ):
        # FAISS's factory turns on polysemous training for PQ (codes ordered for Hamming filtering, which the
        # refine stage never uses): minutes of training for nothing.
        refiner.do_polysemous_training = False
    return refiner


def _refiner_add(refiner: Any, rows: np.ndarray, vectors: np.ndarray) -> None:
    """Encode vectors at their store rows: the refine codes are a column aligned with the store, so rows another
    process appended (not in this view) get the code of a zero vector as a placeholder (never a candidate)."""
    start = int(refiner.ntotal)
    if rows.size == 0 or int(rows[-1]) < start:
        return
    keep = rows >= start
    block = np.zeros((int(rows[-1]) + 1 - start, refiner.d), dtype=np.float32)
    block[rows[keep] - start] = vectors[keep]
    refiner.add(block)


def _refiner_codes(refiner: Any) -> np.ndarray:
    """The refine codes as a writable (rows, code bytes) view of FAISS's own buffer (valid until the next add)."""
    size = int(refiner.ntotal) * int(refiner.code_size)
    if size == 0:
        return np.zeros((0, int(refiner.code_size)), dtype=np.uint8)
    return faiss.rev_swig_ptr(refiner.codes.data(), size).reshape(int(refiner.ntotal), int(refiner.code_size))


def _refiner_erase(refiner: Any, rows: np.ndarray) -> None:
    """Zero the refine codes of removed rows: a removed face leaves nothing of itself in memory or on disk."""
    rows = rows[rows < int(refiner.ntotal)]
    if rows.size:
        _refiner_codes(refiner)[rows] = 0


def _add_rows(index: Any, refiner: Any | None, rows: np.ndarray, vectors: np.ndarray) -> None:
    """Add store rows to a FAISS index and, if it has one, to its refine codes (the two stay aligned)."""
    index.add_with_ids(vectors, rows)
    if refiner is not None:
        _refiner_add(refiner, rows, vectors)


def _drop_rows(index: Any, refiner: Any | None, rows: np.ndarray) -> bool:
    """Drop removed store rows from a FAISS index and zero their refine codes; False when the kind cannot delete
    in place (graphs such as HNSW: the rows stay inside as tombstones that searches skip)."""
    if refiner is not None:
        _refiner_erase(refiner, rows)
    if not _removes_in_place(index):
        return False
    index.remove_ids(faiss.IDSelectorBatch(rows))
    return True


def _saved_knobs(header: dict[str, Any]) -> SearchKnobs:
    """The search knobs a header holds, an older header's saved default read as the current default."""
    knobs = SearchKnobs(**header.get("knobs", {}))
    if int(header.get("knobs_version", 1)) < KNOBS_VERSION and knobs.nprobe_fraction == OLD_DEFAULT_FRACTION:
        knobs = dataclasses.replace(knobs, nprobe_fraction=None)
    return knobs


def _nprobe(index: Any, knobs: SearchKnobs) -> int | None:
    """Lists a search of ``index`` visits with ``knobs`` (None for an index without inverted lists)."""
    ivf = faiss.try_extract_index_ivf(index)
    return None if ivf is None else knobs.nprobe_for(int(ivf.nlist), int(ivf.ntotal))


def _empty_like(refiner: Any) -> Any:
    """An empty index with the same trained codebook as ``refiner`` (one per searching thread, reused)."""
    refiner = faiss.downcast_index(refiner)
    if isinstance(refiner, faiss.IndexPQ):
        empty = faiss.IndexPQ(refiner.d, refiner.pq.M, refiner.pq.nbits, refiner.metric_type)
        empty.pq = refiner.pq
    else:
        empty = faiss.IndexScalarQuantizer(refiner.d, refiner.sq.qtype, refiner.metric_type)
        empty.sq = refiner.sq
    empty.is_trained = True
    return empty


_REFINE_SCRATCH = threading.local()


def _refine(refiner: Any, queries: np.ndarray, rows: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` best of each query's candidate rows by the refine codes (asymmetric distances computed by
    FAISS over the candidates' codes alone); -1 pads."""
    codes = _refiner_codes(refiner)
    out = np.full((len(queries), keep), -1, dtype=np.int64)
    scratch = getattr(_REFINE_SCRATCH, "index", None)
    owner = getattr(_REFINE_SCRATCH, "owner", None)
    if scratch is None or owner is None or owner() is not refiner:
        scratch = _empty_like(refiner)
        # A weak reference: a thread that stops searching must not keep a rebuilt index's codes (gigabytes) alive.
        _REFINE_SCRATCH.index, _REFINE_SCRATCH.owner = scratch, weakref.ref(refiner)
    for i, query_rows in enumerate(rows):
        candidates = query_rows[(query_rows >= 0) & (query_rows < len(codes))]
        if candidates.size <= keep:
            out[i, : candidates.size] = candidates
            continue
        scratch.reset()
        chosen = np.ascontiguousarray(codes[candidates])
        scratch.add_sa_codes(chosen)
        _, positions = scratch.search(queries[i : i + 1], keep)
        found = positions[0][positions[0] >= 0]
        out[i, : found.size] = candidates[found]
    return out


def _removes_in_place(index: Any) -> bool:
    """Whether FAISS can delete from this index (flat and IVF kinds can; graph kinds such as HNSW cannot)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    if inner is not None:
        return isinstance(inner, faiss.IndexFlat)
    return faiss.try_extract_index_ivf(index) is not None


def _search_params(index: Any, knobs: SearchKnobs, selector: Any) -> tuple[Any, list[Any]]:
    """Search parameters fitting the index kind (and what must stay alive while they are used)."""
    index = faiss.downcast_index(index)
    keep: list[Any] = [selector]
    if isinstance(index, faiss.IndexPreTransform):
        inner, inner_keep = _search_params(index.index, knobs, selector)
        params = faiss.SearchParametersPreTransform()
        params.index_params = inner
        return params, [*keep, inner, *inner_keep]
    if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
        # The id map translates the selector from external ids (our rows) to its own positions.
        return _search_params(index.index, knobs, selector)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        params = faiss.SearchParametersIVF(nprobe=knobs.nprobe_for(int(ivf.nlist), int(ivf.ntotal)))
    elif isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(efSearch=max(knobs.ef_search, 1))
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return params, keep


_SCAN_POOL: ThreadPoolExecutor | None = None
_SCAN_POOL_LOCK = threading.Lock()
MIN_LISTS_TO_SPLIT = 8  # fewer probed lists than this are scanned on one thread


def _scan_pool() -> ThreadPoolExecutor:
    global _SCAN_POOL
    with _SCAN_POOL_LOCK:
        if _SCAN_POOL is None:
            _SCAN_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ivf-scan")
        return _SCAN_POOL


def _ivf_search_split(
    ivf: Any, queries: np.ndarray, k: int, nprobe: int, selector: Any, parts: int
) -> tuple[np.ndarray, np.ndarray]:
    """Search an IVF index for a few queries with every core: the probed lists are dealt out to ``parts`` threads.

    FAISS parallelises a search over its queries, so one probe runs on one core however many there are; its
    time is the scan of the visited lists. Dealing the lists round-robin (so each share has lists near and far
    from the probe) to threads that each scan theirs (FAISS releases the GIL) and merging the top ``k`` gives
    the same result as one scan, in about ``1 / parts`` of the time on an idle machine.
    """
    coarse_scores, lists = ivf.quantizer.search(queries, nprobe)
    n = len(queries)

    def scan(part: int) -> tuple[np.ndarray, np.ndarray]:
        faiss.omp_set_num_threads(1)  # per thread: each share is already one core's work
        share = np.ascontiguousarray(lists[:, part::parts])
        share_scores = np.ascontiguousarray(coarse_scores[:, part::parts])
        params = faiss.SearchParametersIVF(nprobe=int(share.shape[1]))
        if selector is not None:
            params.sel = selector
        scores = np.empty((n, k), dtype=np.float32)
        rows = np.empty((n, k), dtype=np.int64)
        ivf.search_preassigned_c(
            n,
            faiss.swig_ptr(queries),
            k,
            faiss.swig_ptr(share),
            faiss.swig_ptr(share_scores),
            faiss.swig_ptr(scores),
            faiss.swig_ptr(rows),
            False,
            params,
        )
        return scores, rows

    results = list(_scan_pool().map(scan, range(parts)))
    scores = np.concatenate([r[0] for r in results], axis=1)
    rows = np.concatenate([r[1] for r in results], axis=1)
    scores = np.where(rows >= 0, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def _splittable_ivf(index: Any, queries: np.ndarray) -> tuple[Any, np.ndarray] | None:
    """The inverted file to scan and the queries as it sees them, for a search dealt out to several threads:
    the index itself, or the one behind a transform (``PCAR64,IVF...``: the queries are transformed first).
    ``None`` for kinds without inverted lists."""
    if isinstance(index, faiss.IndexIVF):
        return index, queries
    if isinstance(index, faiss.IndexPreTransform):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexIVF):
            for step in range(index.chain.size()):
                queries = faiss.downcast_VectorTransform(index.chain.at(step)).apply(queries)
            return inner, np.ascontiguousarray(queries, dtype=np.float32)
    return None


def _empty(queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full((queries, k), -np.inf, dtype=np.float32), np.full((queries, k), -1, dtype=np.int64))


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` columns of each row, best first; padded with (-inf, -1)."""
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    best_ids = np.take_along_axis(ids, order, axis=1)
    best_ids = np.where(np.isneginf(best_scores), -1, best_ids)
    return best_scores, best_ids


class FaissIndex:
    """A pack's vectors: exact flat search while small, compressed (IVF-PQ) with exact re-ranking when large.

    ``factory`` fixes the kind with a FAISS ``index_factory`` string (for example ``"IVF4096,PQ64x4fs"`` or
    ``"HNSW32"``); the default, ``"auto"``, picks and retrains by size (:mod:`facesearch.index.policy`) in the
    background. It applies to a new index; an existing one keeps what it was saved with until :meth:`rebuild`.
    Searches and changes may come from several threads: a lock serialises changes against searches, since
    FAISS allows concurrent reads but not a read during a write. Rebuilds run on a thread of their own.
    """

    def __init__(
        self,
        path: Path,
        dim: int,
        *,
        factory: str = AUTO,
        knobs: SearchKnobs | None = None,
        dtype: str = "float32",
        auto_rebuild: bool = True,
    ) -> None:
        self.path = Path(path)
        self.dim = dim
        self.knobs = knobs or SearchKnobs()
        self.auto_rebuild = auto_rebuild
        self.recovered: str | None = None  # why the saved index could not be used (it then starts empty)
        self._lock = threading.RLock()
        self._dirty = False
        self._version = 0  # bumped by every change; keys the cache of allowed-id masks
        self._allowed_cache: tuple[tuple[int, int, int], np.ndarray] | None = None
        self._requested = check_factory(factory, dim)
        self._dtype = dtype
        self._rebuild_thread: threading.Thread | None = None
        self._rebuild_error: BaseException | None = None
        self._removed_during_rebuild: list[np.ndarray] | None = None
        self.last_rebuild: dict[str, Any] | None = None
        self.rebuild_held: str | None = None  # why a due automatic rebuild has not started (disk) or failed
        self._next_automatic = 0.0  # monotonic time before which no automatic rebuild is tried
        self._disk_token: tuple[int, int, int] | None = None  # identifies the commit this view was loaded from
        self._generation = 1
        self._factory = FLAT
        self._trained_on = 0
        self._dead_in_index = 0  # removed rows still inside a FAISS index that cannot delete in place
        self._store: VectorStore
        self._index: Any
        self._refiner: Any | None = None  # finer codes per store row, when the factory has a Refine() stage
        if self.path.exists():
            try:
                self._load()
            except IndexDimensionError:
                raise
            except (OSError, ValueError, RuntimeError, KeyError, struct.error) as error:
                # The catalog is the source of truth: an unreadable index starts empty and the engine refills it.
                self.recovered = f"{self.path.name} could not be read ({error}); starting empty"
                log.warning(self.recovered)
                self._start_empty(new_generation=True)
                self._dirty = True
        else:
            self._start_empty()
        self._remove_strays()

    @classmethod
    def open_existing(cls, path: Path) -> FaissIndex:
        """Open an index file whatever its dimension (for maintenance)."""
        return cls(path, read_dim(path))

    # Opening -----------------------------------------------------------------------------------------------

    def _start_empty(self, *, new_generation: bool = False) -> None:
        """An empty view: of generation 1 (whatever rows other processes appended there stay outside it), or of a
        new file when the old one cannot be trusted."""
        if new_generation:
            self._store = VectorStore.new_generation(self.path, self._generation, self.dim, self._dtype)
        else:
            self._store = VectorStore(self.path, 1, self.dim, self._dtype)
        self._generation = self._store.generation
        self._factory = FLAT
        self._trained_on = 0
        self._dead_in_index = 0
        self._index = _new_faiss(FLAT, self.dim)
        self._refiner = None

    def _load(self) -> None:
        """Read the committed index; nothing of this object changes unless all of it could be read."""
        with self.path.open("rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                handle.close()
                self._load_legacy()
                return
            (length,) = struct.unpack("<I", handle.read(4))
            header = json.loads(handle.read(length))
            if int(header["dim"]) != self.dim:
                raise IndexDimensionError(f"index {self.path} holds {header['dim']}-d vectors, not {self.dim}-d")
            rows = int(header["rows"])
            ids = np.frombuffer(handle.read(8 * rows), dtype=np.int64)
            if len(ids) != rows:
                raise ValueError(f"{self.path} ends inside its id column")
            store = VectorStore(self.path, int(header["generation"]), self.dim, str(header["dtype"]), ids)
            try:
                factory = str(header["factory"])
                refiner = None
                if factory == FLAT:
                    index = self._flat_from_store(store)
                else:
                    index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
                    if split_refine(factory)[1] is not None:
                        refiner = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            except BaseException:
                store.close()
                raise
        self._store, self._index, self._factory, self._refiner = store, index, factory, refiner
        self._generation = store.generation
        self._dtype = store.dtype
        self._requested = str(header.get("requested", AUTO))
        self._trained_on = int(header.get("trained_on", 0))
        self._dead_in_index = int(header.get("dead_in_index", 0))
        self.knobs = _saved_knobs(header)
        self._disk_token = _file_token(self.path)

    def _load_legacy(self) -> None:
        """An index saved by facesearch 0.1 (a bare FAISS flat id map): its vectors move into a store."""
        legacy = faiss.read_index(str(self.path))
        if legacy.d != self.dim:
            raise IndexDimensionError(f"index {self.path} holds {legacy.d}-d vectors, not {self.dim}-d")
        ids = faiss.vector_to_array(legacy.id_map).astype(np.int64)
        vectors = legacy.index.reconstruct_n(0, legacy.ntotal) if legacy.ntotal else np.empty((0, self.dim))
        self._start_empty()
        if len(ids):
            rows = self._store.append(ids, vectors)
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), rows)
        self._dirty = True
        self._disk_token = _file_token(self.path)

    def _flat_from_store(self, store: VectorStore) -> Any:
        index = _new_faiss(FLAT, self.dim)
        for rows, vectors in store.iter_live():
            index.add_with_ids(vectors, rows)
        return index

    def _remove_strays(self) -> None:
        for path in [*stray_generations(self.path, self._generation), *stray_temporaries(self.path)]:
            path.unlink(missing_ok=True)

    # Changes -----------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids (the caller removes an id first to replace its vector)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        thread = self._rebuild_thread
        if thread is not None and thread.is_alive() and self._factory == FLAT and self._store.live > FLAT_LIMIT:
            # A bulk load outruns the first training: the exact index (512 bytes a face, in memory) would keep
            # growing until the compressed one is ready. Wait for it instead.
            thread.join()
        with self._lock:
            rows = self._store.append(ids, vectors)
            _add_rows(self._index, self._refiner, rows, vectors)
            self._dirty = True
            self._version += 1
        self._maybe_rebuild()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids: their vectors are zeroed on disk and dropped from FAISS; returns how many were present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0:
            return 0
        with self._lock:
            rows = self._store.rows_of(ids)
            removed = self._store.tombstone(rows)
            if removed:
                if not _drop_rows(self._index, self._refiner, rows):
                    self._dead_in_index += removed
                if self._removed_during_rebuild is not None:
                    self._removed_during_rebuild.append(rows)
                self._dirty = True
                self._version += 1
        if removed:
            self._maybe_rebuild()
        return removed

    # Searching ---------------------------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: (scores, ids), each (Q, k), best first; missing slots are (-inf, -1).

        ``allowed_ids`` restricts the search to those ids. Scores are exact (the full vectors' inner products)
        whatever the index kind.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, int(k))
        with self._lock:
            store, index = self._store, self._index
            if store.live == 0 or len(queries) == 0:
                return _empty(len(queries), k)
            # OpenMP threads cost more than they save for a few queries (measured here: 1 probe against 100k
            # vectors takes 5 ms on one thread and 45 ms on two); large batches use every core.
            faiss.omp_set_num_threads(1 if len(queries) < SMALL_BATCH else (os.cpu_count() or 1))
            if allowed_ids is None:
                return self._search(store, index, queries, k, None)
            mask = self._allowed_mask(allowed_ids)
            allowed = int(np.count_nonzero(mask))
            if allowed == 0:
                return _empty(len(queries), k)
            if self._factory != FLAT and allowed <= BRUTE_FORCE_MAX:
                # A small subset is searched exactly: an approximate search could visit none of its lists.
                return self._search_rows(queries, np.flatnonzero(mask), k)
            share = allowed / max(store.live, 1)
            if share >= 0.5:
                # Most faces are allowed (a crossmatch against most of the gallery): an unrestricted search of a
                # few more candidates, filtered, keeps FAISS's fast paths, which a selector turns off.
                wider = min(store.live, int(np.ceil(k / share)) + 8)
                scores, ids = self._search(store, index, queries, wider, None, mask)
                short = (ids[:, : min(k, allowed)] < 0).any(axis=1)
                if not short.any():
                    return scores[:, :k], ids[:, :k]
                # Rows the filter left short are searched again with the selector.
                retry = self._search(store, index, queries[short], k, mask)
                scores, ids = scores[:, :k].copy(), ids[:, :k].copy()
                scores[short], ids[short] = retry
                return scores, ids
            return self._search(store, index, queries, k, mask)

    def _search(
        self,
        store: VectorStore,
        index: Any,
        queries: np.ndarray,
        k: int,
        selected: np.ndarray | None,
        keep_only: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One FAISS search (restricted to the rows ``selected`` if given), then rows outside ``keep_only``
        dropped, then exact scores (lock held)."""
        selector = None
        bits = None
        if selected is not None:
            bits = np.packbits(selected, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # its length is in bytes
        exact = self._factory == FLAT
        refiner = self._refiner
        fetch = k if exact else max(k, self.knobs.rerank)
        if refiner is not None:
            fetch = max(fetch, self.knobs.refine_candidates)
        params, keep = _search_params(index, self.knobs, selector)
        parts = min(os.cpu_count() or 1, 2 * len(queries)) if len(queries) < SMALL_BATCH else 1
        nprobe = _nprobe(index, self.knobs) or 0
        split = _splittable_ivf(index, queries) if parts > 1 and nprobe >= MIN_LISTS_TO_SPLIT else None
        if split is not None:
            ivf, transformed = split
            scores, rows = _ivf_search_split(ivf, transformed, fetch, nprobe, selector, min(parts, nprobe))
        else:
            scores, rows = index.search(queries, fetch, params=params)
        del keep, bits
        if keep_only is not None:
            rows = np.where((rows >= 0) & keep_only[np.maximum(rows, 0)], rows, -1)
        if exact:  # a flat index's scores are already the exact inner products
            ids = np.where(rows >= 0, store.ids[np.maximum(rows, 0)], -1)
            return _top_k(np.where(ids >= 0, scores, -np.inf), ids, k)
        if refiner is not None:
            rows = _refine(refiner, queries, rows, max(k, self.knobs.rerank))
        return self._rerank(store, queries, rows, k)

    def _rerank(
        self, store: VectorStore, queries: np.ndarray, rows: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores of the candidate rows from the full vectors; removed rows and empty slots drop out."""
        valid = rows >= 0
        safe_rows = np.where(valid, rows, 0)
        ids = store.ids[safe_rows]
        valid &= ids >= 0
        if not valid.any():
            return _empty(len(queries), k)
        vectors = store.vectors(safe_rows, prefetch=True)  # (Q, fetch, dim), read from the memory-mapped file
        scores = np.einsum("qfd,qd->qf", vectors, queries)
        scores[~valid] = -np.inf
        return _top_k(scores, np.where(valid, ids, -1), k)

    def _search_rows(self, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the given rows only (brute force over their full vectors)."""
        vectors = self._store.vectors(rows)
        ids = self._store.ids[rows]
        results = []
        for start in range(0, len(queries), 256):  # bounds the (queries x rows) score matrix
            block = queries[start : start + 256]
            results.append(_top_k(block @ vectors.T, np.broadcast_to(ids, (len(block), len(ids))), k))
        return np.vstack([r[0] for r in results]), np.vstack([r[1] for r in results])

    def _allowed_mask(self, allowed_ids: np.ndarray) -> np.ndarray:
        """Rows whose face id is allowed, cached while the index is unchanged (batches reuse one collection)."""
        allowed = np.ascontiguousarray(allowed_ids, dtype=np.int64)
        key = (self._version, allowed.size, hash(allowed.tobytes()))
        if self._allowed_cache is not None and self._allowed_cache[0] == key:
            return self._allowed_cache[1]
        mask = np.isin(self._store.ids, allowed)
        self._allowed_cache = (key, mask)
        return mask

    # Reading -----------------------------------------------------------------------------------------------

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        with self._lock:
            ids = self._store.ids
            return ids[ids >= 0].copy()

    def __len__(self) -> int:
        """Number of vectors in the index."""
        return int(self._store.live)

    # Saving ------------------------------------------------------------------------------------------------

    def save(self) -> None:
        """Commit: make the store durable, then replace the header file atomically (write, fsync, rename)."""
        with self._lock:
            if not self._dirty and self.path.exists():
                return
            self._commit()

    def refresh(self) -> bool:
        """Load what another process committed since this one last loaded or saved; True if it did.

        What this process added since its last save is dropped with its old view: the engine calls this before
        comparing the index with the catalog, which then adds back whatever is missing. Skipped during a rebuild.
        """
        with self._lock:
            if self.rebuilding or not self.path.exists() or _file_token(self.path) == self._disk_token:
                return False
            old = self._store
            try:
                self._load()
            except IndexDimensionError:
                raise
            except (OSError, ValueError, RuntimeError, KeyError, struct.error) as error:
                log.warning("%s could not be reloaded (%s); keeping this process's view", self.path.name, error)
                return False
            if old is not self._store:
                old.close()
            self._dirty = False
            self._version += 1
            self._allowed_cache = None
            return True

    def _commit(self) -> None:
        on_disk = read_header(self.path) if self.path.exists() else None
        if on_disk is not None and int(on_disk.get("generation", 0)) > self._generation:
            # Another process rebuilt the index since this one loaded it: this view's generation may already be
            # gone. Keep the newer commit; the engine's next catch-up (refresh, then catalog) brings this one along.
            log.info("%s: a newer generation is committed; not overwriting it", self.path.name)
            return
        self._store.flush()
        header = {
            "format": 2,
            "dim": self.dim,
            "rows": self._store.rows,
            "generation": self._generation,
            "dtype": self._dtype,
            "factory": self._factory,
            "requested": self._requested,
            "trained_on": self._trained_on,
            "dead_in_index": self._dead_in_index,
            "knobs": dataclasses.asdict(self.knobs),
            "knobs_version": KNOBS_VERSION,
        }
        encoded = json.dumps(header).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: another process may be committing this index at the same moment, and one writer
        # must never rename (or remove) the other's half-written file.
        temporary = temporary_commit_file(self.path)
        try:
            with temporary.open("wb") as handle:
                handle.write(MAGIC + struct.pack("<I", len(encoded)) + encoded)
                handle.write(self._store.ids.tobytes())
                if self._factory != FLAT:  # a flat index is rebuilt from the store when opened: no second copy
                    faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))
                if self._refiner is not None:
                    faiss.write_index(self._refiner, faiss.PyCallbackIOWriter(handle.write))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)  # a full disk leaves no half-written header behind
            raise
        with contextlib.suppress(OSError):  # the rename itself is durable once the folder is synced
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        self._dirty = False
        self._disk_token = _file_token(self.path)

    def close(self) -> None:
        """Wait for a running rebuild, save, and release the files."""
        self.wait_for_rebuild(raise_error=False)
        with self._lock:
            self.save()
            self._store.close()

    # Rebuilding --------------------------------------------------------------------------------------------

    @property
    def factory(self) -> str:
        """The FAISS factory string of the index in use (``"Flat"`` while exact)."""
        return self._factory

    @property
    def rebuilding(self) -> bool:
        """Whether a rebuild is running."""
        thread = self._rebuild_thread
        return thread is not None and thread.is_alive()

    def target_factory(self) -> str:
        """What a rebuild would build now: the requested factory, or the automatic choice for the current size."""
        live = self._store.live
        if self._requested == AUTO:
            return auto_factory(live, self.dim)
        return self._requested if live >= min_training_faces(self._requested, self.dim) else FLAT

    def rebuild_reason(self) -> str | None:
        """Why the index should be rebuilt now, or None (the automatic policy asks this after every change)."""
        store = self._store
        rows, live = store.rows, store.live
        if rows - live > 1_000 and (rows - live) / rows > TOMBSTONE_FRACTION:
            return f"compact {rows - live} removed rows"
        if self._dead_in_index and self._dead_in_index / max(rows, 1) > TOMBSTONE_FRACTION:
            return f"compact {self._dead_in_index} tombstones the index cannot delete in place"
        target = self.target_factory()
        if self._requested != AUTO:
            return f"build the requested {target}" if target != self._factory else None
        if self._factory == FLAT and target != FLAT:
            return f"{live} faces: exact -> compressed {target}"
        if self._factory != FLAT and live <= FLAT_MAX // 2:
            return f"{live} faces: compressed -> exact"
        if self._factory != FLAT and _coding(target) != _coding(self._factory):
            # The coding sets what every search scans (from REFINED_MIN, half the bytes); the growth rule
            # alone would keep the old one until the index has grown fourfold since it was trained. Going
            # back waits for half that size, as exact does, so erasures around the line cannot make a large
            # index rebuild again and again.
            shrinking = bool(split_refine(self._factory)[1]) and not split_refine(target)[1]
            if not shrinking or live <= REFINED_MIN // 2:
                return f"{live} faces: recode as {target}"
        if self._factory != FLAT and live > GROWTH_BEFORE_RETRAIN * max(self._trained_on, 1):
            return f"{live} faces, trained on {self._trained_on}: retrain as {target}"
        return None

    def _maybe_rebuild(self) -> None:
        if not self.auto_rebuild or self.rebuilding or time.monotonic() < self._next_automatic:
            return
        with self._lock:
            reason = self.rebuild_reason()
            if reason is None or self.rebuilding:
                return
            target = self.target_factory()
            shortfall = self.disk_shortfall(target)
            if shortfall is not None:
                # Starting would fill the disk the catalog and the current index live on, fail, and start
                # again on the next addition: hold it, say why (stats, index-stats), and look again later.
                self.rebuild_held = f"{reason}: {shortfall}"
                self._next_automatic = time.monotonic() + REBUILD_RETRY_S
                log.warning("rebuild of %s held: %s", self.path.name, self.rebuild_held)
                return
            self.rebuild_held = None
            self._start_rebuild(target, reason)

    def disk_shortfall(self, target: str) -> str | None:
        """Why a rebuild into ``target`` would not fit on the disk now (it writes a new copy of the live
        vectors beside the current one), or None when it fits."""
        itemsize = np.dtype(self._rebuild_dtype(target)).itemsize
        needed = int(self._store.live * self.dim * itemsize * DISK_HEADROOM)
        free = _free_disk(self.path.parent)
        if free >= needed:
            return None
        return (
            f"its new copy of the vectors needs {needed / 2**20:,.1f} MiB of disk and {free / 2**20:,.1f} MiB is free"
        )

    def _rebuild_dtype(self, target: str) -> str:
        # A kind with a refine stage is for hundreds of millions of faces: its full vectors are kept in half
        # precision (half the disk, which a rebuild needs twice over, and twice the rows the page cache holds;
        # exact scores then agree to about 1e-3).
        return "float16" if split_refine(target)[1] is not None else self._dtype

    def rebuild(self, factory: str | None = None, *, wait: bool = True) -> None:
        """Rebuild now (retrain, compact, or change kind); ``factory`` sets the kind from now on ("auto" resets).

        Searches and additions continue during the rebuild; the new index replaces the old one atomically.
        With ``wait`` the call returns when it is done (and raises what made it fail).
        """
        if factory is not None:
            check_factory(factory, self.dim)
        self.wait_for_rebuild(raise_error=False)
        with self._lock:
            if factory is not None and factory != self._requested:
                self._requested = factory
                self._dirty = True
            target = self.target_factory()
            shortfall = self.disk_shortfall(target)
            if shortfall is not None:
                raise OSError(errno.ENOSPC, f"not rebuilding {self.path.name} as {target}: {shortfall}")
            self._start_rebuild(target, "requested")
        if wait:
            self.wait_for_rebuild()

    def wait_for_rebuild(self, *, raise_error: bool = True) -> None:
        """Block until a running rebuild finishes; re-raise its error (as RuntimeError) if it failed."""
        thread = self._rebuild_thread
        if thread is not None:
            thread.join()
        error, self._rebuild_error = self._rebuild_error, None
        if error is not None and raise_error:
            raise RuntimeError(f"index rebuild failed: {error}") from error

    def _start_rebuild(self, target: str, reason: str) -> None:
        log.info("rebuilding %s as %s: %s", self.path.name, target, reason)
        self._removed_during_rebuild = []
        thread = threading.Thread(
            target=self._rebuild, args=(target, reason), name=f"rebuild {self.path.name}", daemon=True
        )
        self._rebuild_thread = thread
        thread.start()

    def _rebuild(self, target: str, reason: str) -> None:
        started = time.perf_counter()
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # per thread: searches keep their own setting
        with self._lock:
            old = self._store
            snapshot_rows = old.rows
            snapshot_ids = old.ids.copy()
        new = VectorStore.new_generation(self.path, self._generation, self.dim, self._rebuild_dtype(target))
        try:
            old_to_new = np.full(snapshot_rows, -1, dtype=np.int64)
            for rows, vectors in old.iter_live(CHUNK, stop=snapshot_rows):
                old_to_new[rows] = new.append(snapshot_ids[rows], vectors)
            index, refiner, trained_on = self._build(target, new)
            done = snapshot_rows
            while old.rows - done > CATCH_UP_IN_LOCK:  # catch up without the lock while the gap is large
                upto = old.rows
                old_to_new = self._replay(old, done, upto, new, (index, refiner), old_to_new)
                done = upto
            # Not under the engine's cross-process lock: the engine may hold it while an addition waits for this
            # rebuild. A commit never replaces a newer generation, and the catalog refills what another process
            # committed meanwhile (the engine compares with it whenever the catalog changed).
            with self._lock:
                old_to_new = self._replay(old, done, old.rows, new, (index, refiner), old_to_new)
                self._swap(new, (index, refiner), target, trained_on, old_to_new)
        except BaseException as error:
            self._rebuild_error = error
            # Not tried again at once: a cause such as a full disk would repeat on every addition.
            self.rebuild_held = f"{reason}: the last try failed: {error}"
            self._next_automatic = time.monotonic() + REBUILD_RETRY_S
            log.exception("rebuild of %s failed", self.path.name)
            with self._lock:
                self._removed_during_rebuild = None
            new.delete_file()
            return
        old.delete_file()  # a process still reading it keeps it open; the name is no longer needed
        self.rebuild_held = None
        self.last_rebuild = {
            "factory": target,
            "reason": reason,
            "seconds": round(time.perf_counter() - started, 2),
            "faces": trained_on or new.live,
        }
        log.info("rebuilt %s as %s in %.1f s", self.path.name, target, self.last_rebuild["seconds"])

    def _build(self, target: str, store: VectorStore) -> tuple[Any, Any | None, int]:
        """A new FAISS index of ``target`` kind over the live rows of ``store`` (trained first if it needs it),
        its refine codes if the kind has them, and how many faces it was trained on."""
        if target == FLAT:
            return self._flat_from_store(store), None, 0
        index = _new_faiss(target, self.dim)
        refiner = _new_refiner(target, self.dim)
        if not index.is_trained or (refiner is not None and not refiner.is_trained):
            sample = store.sample_live(training_size(target, store.live))
            if not index.is_trained:
                index.train(sample)
            if refiner is not None:
                refiner.train(sample)
        for rows, vectors in store.iter_live(CHUNK):
            _add_rows(index, refiner, rows, vectors)
        return index, refiner, store.live

    def _replay(
        self,
        old: VectorStore,
        start: int,
        stop: int,
        new: VectorStore,
        built: tuple[Any, Any | None],
        old_to_new: np.ndarray,
    ) -> np.ndarray:
        """Copy rows appended to ``old`` since the snapshot into ``new`` and its index; extend the row map."""
        if stop <= start:
            return old_to_new
        index, refiner = built
        extended = np.concatenate([old_to_new, np.full(stop - start, -1, dtype=np.int64)])
        for first in range(start, stop, CHUNK):  # a chunk at a time: millions of rows may have arrived meanwhile
            last = min(first + CHUNK, stop)
            ids = old.ids[first:last].copy()
            alive = np.flatnonzero(ids >= 0)
            if alive.size:
                vectors = np.ascontiguousarray(old.read_range(first, last)[alive])
                new_rows = new.append(ids[alive], vectors)
                _add_rows(index, refiner, new_rows, vectors)
                extended[first + alive] = new_rows
        return extended

    def _swap(
        self, new: VectorStore, built: tuple[Any, Any | None], target: str, trained_on: int, old_to_new: np.ndarray
    ) -> None:
        """Apply removals made during the rebuild to the new index, then put it in place and commit (lock held)."""
        index, refiner = built
        removed = self._removed_during_rebuild or []
        self._removed_during_rebuild = None
        dead = 0
        if removed:
            mapped = old_to_new[np.concatenate(removed)]
            rows = np.unique(mapped[mapped >= 0])
            gone = new.tombstone(rows)
            if gone and not _drop_rows(index, refiner, rows):
                dead = gone
        self._store, self._index, self._refiner = new, index, refiner
        self._dtype = new.dtype
        self._factory, self._trained_on, self._dead_in_index = target, trained_on, dead
        self._generation = new.generation
        self._version += 1
        self._allowed_cache = None
        self._commit()

    # Reporting ---------------------------------------------------------------------------------------------

    def nprobe(self) -> int | None:
        """Lists a search visits (None for an index without inverted lists)."""
        return _nprobe(self._index, self.knobs)

    def memory_bytes(self) -> int:
        """Approximate memory the in-memory index needs (FAISS structures plus the row -> id column)."""
        store, index = self._store, self._index
        ids_column = 8 * store.rows
        if self._factory == FLAT:
            return ids_column + store.live * (4 * self.dim + 8)
        ivf = faiss.try_extract_index_ivf(index)
        refiner = self._refiner
        refine_codes = 0 if refiner is None else int(refiner.ntotal) * int(refiner.code_size)
        if ivf is not None:
            codes = int(index.ntotal) * (int(ivf.code_size) + 8)
            return ids_column + codes + refine_codes + int(ivf.nlist) * self.dim * 4
        return ids_column + max(0, self.path.stat().st_size if self.path.exists() else 0)

    def stats(self) -> dict[str, Any]:
        """Kind, factory, sizes, memory and disk figures, and rebuild state (for ``index-stats``)."""
        with self._lock:
            store = self._store
            exact = self._factory == FLAT
            file_bytes = self.path.stat().st_size if self.path.exists() else 0
            return {
                "backend": "faiss",
                "kind": "exact" if exact else "compressed",
                "factory": self._factory,
                "requested": self._requested,
                "vectors": int(store.live),
                "rows": int(store.rows),
                "removed_rows": int(store.rows - store.live),
                "dim": self.dim,
                "trained_on": self._trained_on,
                "nprobe": self.nprobe(),
                "rerank": None if exact else self.knobs.rerank,
                "refine_candidates": None if self._refiner is None else self.knobs.refine_candidates,
                "vector_dtype": self._dtype,
                "memory_bytes": self.memory_bytes(),
                "disk_bytes": int(store.disk_bytes() + file_bytes),
                "path": str(self.path),
                "rebuilding": self.rebuilding,
                "rebuild_reason": self.rebuild_reason(),
                "rebuild_held": self.rebuild_held,
                "last_rebuild": self.last_rebuild,
            }


def _free_disk(folder: Path) -> int:
    """Bytes free on the file system holding ``folder``."""
    return shutil.disk_usage(folder).free


def _file_token(path: Path) -> tuple[int, int, int]:
    """Identity of a committed file version (a commit replaces the file: a new inode)."""
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def read_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of an index file, or None for a file of the 0.1 format."""
    with Path(path).open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            return None
        (length,) = struct.unpack("<I", handle.read(4))
        header: dict[str, Any] = json.loads(handle.read(length))
        return header


def read_dim(path: Path) -> int:
    """The vector dimension recorded in an index file (either format)."""
    with Path(path).open("rb") as handle:
        if handle.read(len(MAGIC)) == MAGIC:
            (length,) = struct.unpack("<I", handle.read(4))
            return int(json.loads(handle.read(length))["dim"])
    return int(faiss.read_index(str(path)).d)
