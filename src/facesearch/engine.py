"""The facesearch engine: one data folder's catalog, packs and indexes, composed for the CLI, API and notebooks.

``facesearch.open(home)`` returns a :class:`FaceSearch`. Interfaces call its methods and never touch storage.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import Settings
from facesearch.index.faiss_index import FaissIndex, index_file_name
from facesearch.ingest.pipeline import IngestOptions, IngestProgress, IngestSummary, run_ingest
from facesearch.search.service import ImageInput, ProbeResult, SearchService, VerifyResult
from facesearch.vision.packs import ModelPack, PackSpec, resolve_pack


@dataclass
class IndexRepair:
    """What :meth:`FaceSearch.sync_index` found and did for one pack."""

    pack: str
    catalog_faces: int
    index_vectors_before: int
    added: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def consistent_before(self) -> bool:
        """True when nothing had to be repaired."""
        return self.added == 0 and self.removed == 0


class FaceSearch:
    """A facesearch data folder: index photos, search and verify faces."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(settings.catalog_url)
        self._packs: dict[str, ModelPack] = {}
        self._indexes: dict[str, FaissIndex] = {}
        self._synced: set[str] = set()
        self._lock = threading.RLock()

    def close(self) -> None:
        """Save indexes and release the catalog."""
        for index in self._indexes.values():
            index.save()
        self.catalog.close()

    def __enter__(self) -> FaceSearch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # Packs and indexes -------------------------------------------------------------------------------------

    def pack_spec(self, name: str | None = None) -> PackSpec:
        """The spec of pack ``name``, or of the configured / best available pack."""
        return resolve_pack(name or self.settings.pack, self.settings.models_dir)

    def pack(self, name: str | None = None) -> ModelPack:
        """The loaded pack (cached), using every core for single-probe work."""
        spec = self.pack_spec(name)
        with self._lock:
            if spec.key not in self._packs:
                self._packs[spec.key] = ModelPack(spec, self.settings.models_dir, threads=os.cpu_count() or 1)
            return self._packs[spec.key]

    def vector_index(self, pack: ModelPack) -> FaissIndex:
        """The pack's vector index, caught up with the catalog the first time it is opened."""
        with self._lock:
            if pack.key not in self._indexes:
                path = self.settings.index_dir / index_file_name(pack.key)
                self._indexes[pack.key] = FaissIndex(path, pack.dim)
            if pack.key not in self._synced:
                self._synced.add(pack.key)
                self._sync(pack.key, self._indexes[pack.key], full=False)
            return self._indexes[pack.key]

    def sync_index(self, pack_key: str, dim: int) -> IndexRepair:
        """Compare a pack's index with the catalog and repair it from the catalog's stored embeddings."""
        with self._lock:
            if pack_key not in self._indexes:
                self._indexes[pack_key] = FaissIndex(self.settings.index_dir / index_file_name(pack_key), dim)
            return self._sync(pack_key, self._indexes[pack_key], full=True)

    def _sync(self, pack_key: str, index: FaissIndex, *, full: bool) -> IndexRepair:
        catalog_ids = self.catalog.face_ids(pack_key)
        repair = IndexRepair(pack=pack_key, catalog_faces=len(catalog_ids), index_vectors_before=len(index))
        index_ids = index.ids()
        if not full and len(index_ids) == len(catalog_ids) and np.array_equal(np.sort(index_ids), catalog_ids):
            return repair
        missing = np.setdiff1d(catalog_ids, index_ids)
        extra = np.setdiff1d(index_ids, catalog_ids)
        if extra.size:
            repair.removed = index.remove(extra)
            repair.problems.append(f"{extra.size} vectors in the index had no face in the catalog (removed)")
        if missing.size:
            for ids, vectors in self.catalog.iter_embeddings(pack_key, missing.tolist()):
                index.add(ids, vectors)
            repair.added = int(missing.size)
            repair.problems.append(f"{missing.size} catalog faces were missing from the index (added)")
        if repair.added or repair.removed:
            index.save()
        return repair

    # Services ----------------------------------------------------------------------------------------------

    def search_service(self, pack: str | None = None) -> SearchService:
        """The search service for a pack (default: the configured or best available one)."""
        model_pack = self.pack(pack)
        return SearchService(self.catalog, model_pack, self.vector_index(model_pack))

    def index(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        collection: str,
        subject_from_folder: bool = False,
        source_url: str | None = None,
        legal_basis: str | None = None,
        description: str | None = None,
        pack: str | None = None,
        workers: int | None = None,
        on_progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestSummary:
        """Index every photo under ``paths`` into ``collection`` (resumable; duplicates stored once)."""
        model_pack = self.pack(pack)
        options = IngestOptions(
            collection=collection,
            subject_from_folder=subject_from_folder,
            source_url=source_url,
            legal_basis=legal_basis,
            description=description,
        )
        return run_ingest(
            self.catalog,
            self.vector_index(model_pack),
            model_pack,
            self.settings.models_dir,
            paths,
            options,
            workers=workers or self.settings.workers,
            on_progress=on_progress,
        )

    def search(
        self, image: ImageInput, *, top_k: int = 10, collection: str | None = None, pack: str | None = None
    ) -> ProbeResult:
        """Search a probe photo against the indexed faces; each candidate is a lead to review."""
        return self.search_service(pack).search(image, top_k=top_k, collection=collection)

    def verify(self, image_a: ImageInput, image_b: ImageInput, *, pack: str | None = None) -> VerifyResult:
        """Compare the largest face of two photos."""
        return self.search_service(pack).verify(image_a, image_b)

    def status(self) -> dict[str, Any]:
        """Counts of images, faces, skipped files, collections and packs."""
        stats = self.catalog.stats()
        return {
            "images": stats["images"],
            "faces": stats["faces"],
            "skipped": stats["skipped"],
            "skipped_by_reason": stats["skipped_by_reason"],
            "subjects": stats["subjects"],
            "collections": [c["name"] for c in self.catalog.collections()],
            "packs": [{"pack": key, "faces": count} for key, count in stats["packs"].items()],
            "home": str(self.settings.home),
        }

    def doctor(self) -> list[IndexRepair]:
        """Check every pack's index against the catalog and repair it; returns what was found per pack."""
        repairs = []
        for pack_key in self.catalog.stats()["packs"]:
            dim = self._stored_dim(pack_key)
            repairs.append(self.sync_index(pack_key, dim))
        for path in sorted(self.settings.index_dir.glob("*.faiss")) if self.settings.index_dir.exists() else []:
            if not any(path.name == index_file_name(r.pack) for r in repairs):
                index = FaissIndex.open_existing(path)
                repair = IndexRepair(pack=path.stem, catalog_faces=0, index_vectors_before=len(index))
                if len(index):
                    repair.removed = index.remove(index.ids())
                    repair.problems.append(f"{repair.removed} vectors of a pack with no faces in the catalog (removed)")
                    index.save()
                repairs.append(repair)
        return repairs

    def _stored_dim(self, pack_key: str) -> int:
        for _ids, vectors in self.catalog.iter_embeddings(pack_key, chunk=1):
            return int(vectors.shape[1])
        return 0


def open(home: str | os.PathLike[str] | None = None, *, pack: str | None = None) -> FaceSearch:
    """Open (or create) a facesearch data folder; the notebook entry point.

    >>> fs = facesearch.open("~/faces")                         # doctest: +SKIP
    >>> fs.index(["photos/"], collection="family")              # doctest: +SKIP
    >>> fs.search("probe.jpg").faces[0].candidates[0]           # doctest: +SKIP
    """
    return FaceSearch(Settings.load(home, pack=pack))
