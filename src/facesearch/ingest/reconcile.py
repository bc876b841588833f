"""The vector indexes of a data folder, kept in step with the catalog (which is the source of truth).

Every pack has one index (FAISS files by default, or Milvus). This process opens each when first needed and
catches it up with the catalog whenever the catalog's *generation* moved (any process added or removed faces:
an ingest or erasure from the CLI while a server runs), which costs one small query per use and a real
comparison only after a change. ``doctor`` compares every pack's index with the catalog in full and repairs
it from the stored embeddings; ``reindex`` rebuilds an index (retrain, compact, change kind). Both repairs and
rebuilds are audited as the local operator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import Settings
from facesearch.governance.access import Principal
from facesearch.governance.audit import AuditTrail
from facesearch.index.backends import backend_name, faiss_dir, open_vector_index
from facesearch.index.base import VectorIndex
from facesearch.index.faiss_index import FaissIndex, index_file_name


@dataclass
class IndexRepair:
    """What a comparison of one pack's index with the catalog found, and did."""

    pack: str
    catalog_faces: int
    index_vectors_before: int
    added: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: bool = False  # False when only checked (or nothing was wrong)

    @property
    def consistent_before(self) -> bool:
        """True when nothing had to be repaired."""
        return self.added == 0 and self.removed == 0


class Indexes:
    """Every pack's vector index in this process, caught up with the catalog."""

    def __init__(self, settings: Settings, catalog: Catalog, audit: AuditTrail, operator: Principal) -> None:
        self.settings = settings
        self.catalog = catalog
        self.audit = audit
        self.operator = operator
        self._indexes: dict[str, VectorIndex] = {}
        self._synced: dict[str, int] = {}  # the catalog generation each index was last caught up at
        self._ingesting: Counter[str] = Counter()
        self._lock = threading.RLock()

    def close(self) -> None:
        """Save every index (after any rebuild running in the background) and release it."""
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()

    def _faiss_dir(self) -> Path:
        return faiss_dir(self.settings.index_url, self.settings.index_dir)

    def _open(self, pack_key: str, dim: int) -> VectorIndex:
        """A pack's index under the configured backend (FAISS files by default, or Milvus)."""
        return open_vector_index(self.settings.index_url, self.settings.index_dir, pack_key, dim)

    def of(self, pack_key: str, dim: int) -> VectorIndex:
        """The pack's index, caught up with the catalog whenever the catalog's generation moved.

        While this process ingests into the pack itself, the ingest adds its own vectors and the catch-up
        waits, so that no vector is added twice.
        """
        with self._lock:
            if pack_key not in self._indexes:
                self._indexes[pack_key] = self._open(pack_key, dim)
            if not self._ingesting[pack_key]:
                generation = self.catalog.generation()
                if self._synced.get(pack_key) != generation:
                    self._synced[pack_key] = generation
                    self._sync(pack_key, self._indexes[pack_key], full=False)
            return self._indexes[pack_key]

    @contextlib.contextmanager
    def ingesting(self, pack_key: str, dim: int) -> Iterator[VectorIndex]:
        """The pack's index for an ingest of this process, which adds its vectors itself; afterwards the index
        catches up with the catalog and is saved, so the file holds every committed face even if other
        processes wrote it meanwhile with their own view."""
        index = self.of(pack_key, dim)
        with self._lock:
            self._ingesting[pack_key] += 1
        try:
            yield index
        finally:
            with self._lock:
                self._ingesting[pack_key] -= 1
                if not self._ingesting[pack_key]:
                    self._synced[pack_key] = self.catalog.generation()
                    self._sync(pack_key, index, full=False)

    def remove_vectors(self, pack_key: str, dim: int, ids: Sequence[int]) -> None:
        """Take erased faces' vectors out of a pack's index (loaded or on disk) and save it."""
        with self._lock:
            index = self._indexes.get(pack_key)
            if index is None:
                on_disk = self._faiss_dir() / index_file_name(pack_key)
                if backend_name(self.settings.index_url) == "faiss" and not on_disk.exists():
                    return
                index = self._open(pack_key, dim)
                index.remove(np.asarray(ids, dtype=np.int64))
                index.close()
                return
            index.remove(np.asarray(ids, dtype=np.int64))
            index.save()

    def faces_matching(self, pack_key: str, vector: np.ndarray, threshold: float) -> list[int]:
        """Ids of the stored faces of ``pack_key`` at or above ``threshold`` to ``vector``."""
        if not self.catalog.face_count(pack_key):
            return []
        index = self.stored(pack_key)
        if index.dim != vector.shape[-1]:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        k = min(100, len(index))
        while True:
            scores, ids = index.search(query, k)
            if k >= len(index) or scores[0, -1] < threshold:
                break
            k = min(len(index), k * 4)
        return [int(i) for score, i in zip(scores[0], ids[0], strict=True) if i >= 0 and score >= threshold]

    # Comparing with the catalog ----------------------------------------------------------------------------

    def sync(self, pack_key: str, dim: int, *, repair: bool = True) -> IndexRepair:
        """Compare a pack's index with the catalog in full and (unless ``repair`` is false) repair it from the
        catalog's stored embeddings."""
        with self._lock:
            if pack_key not in self._indexes:
                self._indexes[pack_key] = self._open(pack_key, dim)
            return self._sync(pack_key, self._indexes[pack_key], full=True, repair=repair)

    @contextlib.contextmanager
    def _file_lock(self, pack_key: str) -> Iterator[None]:
        """Serialise "compare with the catalog, then save" of one pack's index file across processes.

        Several processes (a server, the CLI) may hold the same index in memory, each with its own view. Each
        one catches up with the catalog and saves under this lock, so whoever saves last writes everything
        the catalog held at that moment; the file can never end up behind a commit whose writer already saved.
        """
        folder = self._faiss_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / (index_file_name(pack_key) + ".lock")).open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _sync(self, pack_key: str, index: VectorIndex, *, full: bool, repair: bool = True) -> IndexRepair:
        with self._file_lock(pack_key):
            return self._sync_locked(pack_key, index, full=full, repair=repair)

    def _sync_locked(self, pack_key: str, index: VectorIndex, *, full: bool, repair: bool = True) -> IndexRepair:
        # Start from what other processes committed (their additions need not be added twice); what this
        # process had added but not saved is in the catalog and comes back below.
        index.refresh()
        catalog_ids = self.catalog.face_ids(pack_key)
        report = IndexRepair(pack=pack_key, catalog_faces=len(catalog_ids), index_vectors_before=len(index))
        index_ids = index.ids()
        if not full and len(index_ids) == len(catalog_ids) and np.array_equal(np.sort(index_ids), catalog_ids):
            return report
        missing = np.setdiff1d(catalog_ids, index_ids)
        extra = np.setdiff1d(index_ids, catalog_ids)
        verb = "" if repair else "not "
        if extra.size:
            report.removed = index.remove(extra) if repair else int(extra.size)
            report.problems.append(f"{extra.size} vectors in the index had no face in the catalog ({verb}removed)")
        if missing.size:
            if repair:
                for ids, vectors in self.catalog.iter_embeddings(pack_key, missing.tolist()):
                    index.add(ids, vectors)
            report.added = int(missing.size)
            report.problems.append(f"{missing.size} catalog faces were missing from the index ({verb}added)")
        report.repaired = repair and bool(report.added or report.removed)
        if report.repaired:
            index.save()
        return report

    def stored_dim(self, pack_key: str) -> int:
        """The dimension of a pack's stored embeddings (0 when it has none)."""
        for _ids, vectors in self.catalog.iter_embeddings(pack_key, chunk=1):
            return int(vectors.shape[1])
        return 0

    def stored(self, pack_key: str) -> VectorIndex:
        """A pack's index, opened (and caught up with the catalog) if this process has not opened it yet."""
        with self._lock:
            if pack_key not in self._indexes:
                self.sync(pack_key, self.stored_dim(pack_key))
                return self._indexes[pack_key]
            return self.of(pack_key, self._indexes[pack_key].dim)

    # Maintenance -------------------------------------------------------------------------------------------

    def doctor(self, *, repair: bool = True) -> list[IndexRepair]:
        """Check every pack's index against the catalog and (unless ``repair`` is false) repair it; returns what
        was found per pack. Each repair that changed an index is audited (action ``index_repair``)."""
        repairs = [
            self.sync(pack_key, self.stored_dim(pack_key), repair=repair) for pack_key in self.catalog.stats()["packs"]
        ]
        folder = self._faiss_dir()
        orphans = sorted(folder.glob("*.faiss")) if backend_name(self.settings.index_url) == "faiss" else []
        for path in orphans if folder.exists() else []:
            if not any(path.name == index_file_name(r.pack) for r in repairs):
                index = FaissIndex.open_existing(path)
                orphan = IndexRepair(pack=path.stem, catalog_faces=0, index_vectors_before=len(index))
                if len(index):
                    orphan.removed = index.remove(index.ids()) if repair else len(index)
                    orphan.repaired = repair
                    what = "removed" if repair else "not removed"
                    orphan.problems.append(f"{orphan.removed} vectors of a pack with no faces in the catalog ({what})")
                index.close()
                repairs.append(orphan)
        for report in repairs:
            if report.repaired:
                details = {"pack": report.pack, "added": report.added, "removed": report.removed}
                self.audit.append(actor=self.operator.actor, action="index_repair", details=details)
        return repairs

    def pack_keys(self, pack_key: str | None = None) -> list[str]:
        """The pack keys with faces in the catalog, or only ``pack_key``."""
        keys = list(self.catalog.stats()["packs"])
        return keys if pack_key is None else [pack_key]

    def stats(self, pack_key: str | None = None) -> list[dict[str, Any]]:
        """Per pack: faces in the catalog, and the index's kind, factory, size, memory and disk figures."""
        report = []
        for key in self.pack_keys(pack_key):
            faces = self.catalog.face_count(key)
            stats = self.stored(key).stats() if faces else {}
            report.append({"pack": key, "catalog_faces": faces, **stats})
        return report

    def reindex(
        self, factory: str | None = None, pack_key: str | None = None, *, nprobe_fraction: float | None = None
    ) -> list[dict[str, Any]]:
        """Rebuild each pack's index from its vectors (retrain, compact), as ``factory`` if given; waits.

        For FAISS, ``factory`` is an ``index_factory`` string ("IVF2048,PQ64x4fs", "HNSW32", "Flat") or
        "auto"; for Milvus, an index spec ("HNSW,M=16,efConstruction=200"). Searches continue meanwhile.
        ``nprobe_fraction`` sets the share of inverted lists a compressed FAISS index visits (recall vs speed).
        Each rebuild is audited (action ``reindex``).
        """
        report = []
        for key in self.pack_keys(pack_key):
            if not self.catalog.face_count(key):
                continue
            self.sync(key, self.stored_dim(key))  # caught up with the catalog first: the rebuild starts complete
            index = self._indexes[key]
            before = index.stats()
            started = time.perf_counter()
            if nprobe_fraction is not None:
                if not isinstance(index, FaissIndex):
                    raise ValueError("--nprobe-fraction applies to the embedded FAISS index only")
                index.knobs = dataclasses.replace(index.knobs, nprobe=None, nprobe_fraction=nprobe_fraction)
            index.rebuild(factory, wait=True)
            index.save()
            after = index.stats()
            details = {"pack": key, "factory": after.get("factory"), "requested": factory}
            self.audit.append(actor=self.operator.actor, action="reindex", details=details)
            report.append(
                {
                    "pack": key,
                    "seconds": round(time.perf_counter() - started, 2),
                    "before": {k: before.get(k) for k in ("factory", "vectors", "memory_bytes", "disk_bytes")},
                    "after": after,
                }
            )
        return report
