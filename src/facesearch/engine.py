"""The facesearch engine: one data folder's catalog, packs and indexes, composed for the CLI, API and notebooks.

``facesearch.open(home)`` returns a :class:`FaceSearch`. Interfaces call its methods and never touch storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.catalog.store import Catalog
from facesearch.config import Settings, make_private
from facesearch.governance.access import Principal, require, require_collection, require_unlimited
from facesearch.governance.accounts import Accounts
from facesearch.governance.anchor import AuditAnchor
from facesearch.governance.audit import ANCHOR_FOLDER, AuditTrail
from facesearch.governance.cases import Cases
from facesearch.governance.collections import Collections
from facesearch.governance.context import ActionContext, check_case, check_purpose, local_actor
from facesearch.governance.erasure import Erasure, ErasureReport
from facesearch.governance.optout import OptOutError, OptOutList, OptOuts
from facesearch.governance.reads import FaceReads
from facesearch.governance.retention import Retention
from facesearch.governance.subjects import Subjects
from facesearch.governance.witness import AuditWitness
from facesearch.index.backends import backend_name, faiss_dir, open_vector_index
from facesearch.index.base import VectorIndex
from facesearch.index.faiss_index import FaissIndex, index_file_name
from facesearch.ingest.pipeline import IngestOptions, IngestProgress, IngestSummary, run_ingest
from facesearch.search.calibration import Calibration, find_calibration
from facesearch.search.service import Candidate, ImageInput, ProbeResult, SearchService, VerifyResult
from facesearch.vision.image import DEFAULT_MAX_PIXELS
from facesearch.vision.packs import ModelPack, PackSpec, resolve_pack

UPLOADS_FOLDER = "uploads"
"""Where the server keeps uploaded photos (files facesearch manages, and erases)."""


@dataclass
class IndexRepair:
    """What :meth:`FaceSearch.sync_index` found and did for one pack."""

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


def audit_witness(settings: Settings, anchor: AuditAnchor) -> AuditWitness | None:
    """The witness the data folder's config names (a file or a command), or ``None``."""
    if settings.audit_witness is None and settings.audit_witness_command is None:
        return None
    return AuditWitness(
        anchor,
        path=settings.audit_witness,
        command=None if settings.audit_witness is not None else settings.audit_witness_command,
        interval_s=settings.audit_witness_interval_s,
    )


def strict_threshold(threshold: float) -> float:
    """A similarity a quarter of the way from a pack's same-person threshold to 1.

    Used where a false match costs more than a miss in review: listing faces to erase ("forget this
    person") and deciding that a face is an opted-out person's. With dlib v1 on LFW, strangers of one
    demographic group often reached that pack's threshold (then 0.82); a quarter of the way up kept most out.
    """
    return round(threshold + (1.0 - threshold) / 4.0, 4)


class FaceSearch:
    """A facesearch data folder: index photos, search and verify faces."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        make_private(settings.home)
        self.catalog = Catalog(settings.catalog_url)
        self._packs: dict[str, ModelPack] = {}
        self._indexes: dict[str, VectorIndex] = {}
        # The catalog generation each index and opt-out list was last caught up at (see vector_index).
        self._synced: dict[str, int] = {}
        self._optout_lists: dict[str, tuple[int, OptOutList]] = {}
        self._ingesting: Counter[str] = Counter()
        self._lock = threading.RLock()
        # Whoever holds the data folder (the CLI, a notebook) acts as the local operator, with every permission.
        self.operator = Principal.operator_as(local_actor(settings.identity))
        anchor = AuditAnchor(settings.home / ANCHOR_FOLDER)
        self.audit = AuditTrail(self.catalog, anchor, witness=audit_witness(settings, anchor))
        self.accounts = Accounts(self.catalog, self.audit)
        self.cases = Cases(self.catalog, self.audit)
        self.collections = Collections(self.catalog, self.audit)
        self.erasure = Erasure(
            self.catalog,
            self.audit,
            self.uploads_dir,
            self._remove_vectors,
            rewrite_tables=settings.erasure_rewrite_tables,
        )
        self.optouts = OptOuts(self.catalog, self.audit, self.erasure, self._faces_matching)
        self.retention = Retention(self.catalog, self.erasure)
        self.subjects = Subjects(self.catalog, self.audit)
        self.reads = FaceReads(self.catalog, self.audit, self.cases, max_pixels=settings.max_probe_pixels * 4)

    @property
    def uploads_dir(self) -> Path:
        """The folder of uploaded photos, which facesearch manages (and deletes on erasure)."""
        return self.settings.home / UPLOADS_FOLDER

    def close(self) -> None:
        """Save indexes (after any rebuild running in the background), witness the audit log, release the catalog."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
        try:
            self.audit.close()
        finally:
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

    def _faiss_dir(self) -> Path:
        return faiss_dir(self.settings.index_url, self.settings.index_dir)

    def _open_index(self, pack_key: str, dim: int) -> VectorIndex:
        """A pack's index under the configured backend (FAISS files by default, or Milvus)."""
        return open_vector_index(self.settings.index_url, self.settings.index_dir, pack_key, dim)

    def vector_index(self, pack: ModelPack) -> VectorIndex:
        """The pack's vector index, caught up with the catalog whenever the catalog's generation moved.

        The generation moves with every change to faces made by any process (an ingest or erasure from the
        CLI while a server runs), so reading it costs one small query per call and a real comparison only
        after a change. While this engine ingests into the pack itself, the ingest adds its own vectors and
        the catch-up waits, so that no vector is added twice.
        """
        with self._lock:
            if pack.key not in self._indexes:
                self._indexes[pack.key] = self._open_index(pack.key, pack.dim)
            if not self._ingesting[pack.key]:
                generation = self.catalog.generation()
                if self._synced.get(pack.key) != generation:
                    self._synced[pack.key] = generation
                    self._sync(pack.key, self._indexes[pack.key], full=False)
            return self._indexes[pack.key]

    def _remove_vectors(self, pack_key: str, dim: int, ids: Sequence[int]) -> None:
        """Take erased faces' vectors out of a pack's index (loaded or on disk) and save it."""
        with self._lock:
            index = self._indexes.get(pack_key)
            if index is None:
                on_disk = self._faiss_dir() / index_file_name(pack_key)
                if backend_name(self.settings.index_url) == "faiss" and not on_disk.exists():
                    return
                index = self._open_index(pack_key, dim)
                index.remove(np.asarray(ids, dtype=np.int64))
                index.close()
                return
            index.remove(np.asarray(ids, dtype=np.int64))
            index.save()

    def optout_list(self, pack_key: str) -> OptOutList:
        """The opt-out embeddings of a pack, reloaded when the catalog's generation moved."""
        generation = self.catalog.generation()
        with self._lock:
            cached = self._optout_lists.get(pack_key)
            if cached is not None and cached[0] == generation:
                return cached[1]
        optouts = self.optouts.for_pack(pack_key)
        with self._lock:
            self._optout_lists[pack_key] = (generation, optouts)
        return optouts

    def sync_index(self, pack_key: str, dim: int, *, repair: bool = True) -> IndexRepair:
        """Compare a pack's index with the catalog and (unless ``repair`` is false) repair it from the catalog's
        stored embeddings."""
        with self._lock:
            if pack_key not in self._indexes:
                self._indexes[pack_key] = self._open_index(pack_key, dim)
            return self._sync(pack_key, self._indexes[pack_key], full=True, repair=repair)

    @contextlib.contextmanager
    def _index_file_lock(self, pack_key: str) -> Iterator[None]:
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
        with self._index_file_lock(pack_key):
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

    # Services ----------------------------------------------------------------------------------------------

    def search_service(
        self, pack: str | None = None, *, context: ActionContext | None = None, max_pixels: int | None = None
    ) -> SearchService:
        """The search service for a pack (default: the configured or best available one).

        Its calls are audited as ``context`` (default: the local user, see :meth:`context`).
        """
        model_pack = self.pack(pack)
        index = self.vector_index(model_pack)
        return SearchService(
            self.catalog,
            model_pack,
            index,
            audit=self.audit,
            context=context or self.context(),
            optouts=self.optout_list(model_pack.key),
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
            calibration=self.calibration(model_pack.key),
        )

    def calibration(self, pack_key: str) -> Calibration | None:
        """A pack's score calibration: this data folder's own (``facesearch calibrate``), else the shipped one."""
        return find_calibration(pack_key, self.settings.home)

    def context(
        self,
        *,
        principal: Principal | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        required: bool | None = None,
    ) -> ActionContext:
        """Who acts, for which purpose and case, checked against the configured purposes.

        ``principal`` defaults to the local operator (the configured identity or the OS user). Purpose and
        case may be left out (purpose recorded as ``unspecified``) unless ``required`` (the API) or
        ``require_purpose`` is set in the data folder's config. A named case is opened on first use (owned by
        the principal); someone else's case is refused unless the principal was added to it; a closed case is
        refused.
        """
        principal = principal or self.operator
        must = self.settings.require_purpose if required is None else required
        checked_purpose = check_purpose(purpose, self.settings.purposes, required=must)
        case_ref = check_case(case_id, required=must)
        if case_ref is not None:
            self.cases.open_for_search(principal, case_ref)
        return ActionContext(actor=principal.actor, purpose=checked_purpose, case_ref=case_ref)

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
        model_pack: ModelPack | None = None,
        min_quality: float | None = None,
        subject: str | None = None,
        principal: Principal | None = None,
    ) -> IngestSummary:
        """Index every photo under ``paths`` into ``collection`` (resumable; duplicates stored once).

        ``principal`` (default: the local operator) must manage collections and see ``collection``; a
        collection that does not exist yet is created, which only an unlimited user may do. The ingest is
        audited (action ``ingest``) in the transaction that creates or updates the collection, before any
        photo is read. ``subject`` enrols the main face of every photo under that label.

        ``min_quality`` sets the collection's quality policy, kept for later runs: faces whose quality score
        is below it are counted but not indexed; 0 indexes every face again (the default policy: every face
        is indexed and marked with its quality and reasons).

        ``model_pack`` is a loaded pack of its own for a background thread (a server's ingest jobs), so
        that its in-process analysis never shares models with the searches of other threads.
        """
        principal = principal or self.operator
        require(principal, "collections.manage")
        exists = self.catalog.collection_id(collection) is not None
        if exists:
            require_collection(principal, collection, exists=True)
        else:
            require_unlimited(principal, "creating a collection")
        model_pack = model_pack or self.pack(pack)
        index = self.vector_index(model_pack)
        options = IngestOptions(
            collection=collection,
            subject_from_folder=subject_from_folder,
            source_url=source_url,
            legal_basis=legal_basis,
            description=description,
            min_quality=min_quality,
            subject=subject,
        )
        details = {
            "collection": collection,
            "pack": model_pack.key,
            "paths": len(paths),
            "subject_from_folder": subject_from_folder,
            "enrol": subject is not None,
            "min_quality": min_quality,
        }
        audit: list[tuple[int, str]] = []
        self.catalog.ensure_collection(
            collection,
            description=description,
            legal_basis=legal_basis,
            source=source_url,
            min_quality=min_quality,
            also=lambda session: audit.append(
                self.audit.append_in(
                    session, actor=principal.actor, action="enrol" if subject else "ingest", details=details
                )
            ),
        )
        self.audit.committed(*audit[0])
        with self._lock:
            self._ingesting[model_pack.key] += 1
        try:
            return run_ingest(
                self.catalog,
                index,
                model_pack,
                self.settings.models_dir,
                paths,
                options,
                workers=workers or self.settings.workers,
                on_progress=on_progress,
            )
        finally:
            with self._lock:
                self._ingesting[model_pack.key] -= 1
                if not self._ingesting[model_pack.key]:
                    # Other processes may have written the index file meanwhile with their own view: catch up
                    # with the catalog and save, so the file ends up holding every committed face.
                    self._synced[model_pack.key] = self.catalog.generation()
                    self._sync(model_pack.key, index, full=False)

    def search(
        self,
        image: ImageInput,
        *,
        top_k: int = 10,
        collection: str | None = None,
        pack: str | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        max_fmr: float | None = None,
        by_subject: bool = False,
    ) -> ProbeResult:
        """Search a probe photo against the indexed faces; each candidate is a lead to review.

        Audited as the local user, for ``purpose`` and ``case_id`` (see :meth:`context`); ``max_fmr`` keeps
        only candidates whose calibrated false-match rate is at or below it; ``by_subject`` also ranks the
        enrolled people by their template (all their photos combined).
        """
        context = self.context(purpose=purpose, case_id=case_id)
        return self.search_service(pack, context=context).search(
            image, top_k=top_k, collection=collection, max_fmr=max_fmr, by_subject=by_subject
        )

    def verify(
        self,
        image_a: ImageInput,
        image_b: ImageInput,
        *,
        pack: str | None = None,
        purpose: str | None = None,
        case_id: str | None = None,
        fmr: float | None = None,
    ) -> VerifyResult:
        """Compare the largest face of two photos (audited like :meth:`search`), deciding at ``fmr`` (default 1e-3)."""
        context = self.context(purpose=purpose, case_id=case_id)
        return self.search_service(pack, context=context).verify(image_a, image_b, fmr=fmr)

    # Governance --------------------------------------------------------------------------------------------

    def erase(self, kind: str, values: Sequence[str | int], *, principal: Principal | None = None) -> ErasureReport:
        """Erase images, faces, subjects, source URLs or collections everywhere (audited, counts only)."""
        return self.erasure.erase(principal or self.operator, kind, values)

    def forget_threshold(self, pack: str | None = None) -> float:
        """The strict similarity of "forget this person" and opt-outs for a pack (see :func:`strict_threshold`)."""
        return strict_threshold(self.pack_spec(pack).threshold)

    def forget_candidates(
        self,
        image: ImageInput,
        *,
        threshold: float | None = None,
        pack: str | None = None,
        principal: Principal | None = None,
    ) -> tuple[list[Candidate], str | None]:
        """Every face above a strict threshold for the person in ``image``, to review and then erase.

        Limited to the principal's collections. Returns ``(candidates, error)``. Erase the confirmed ones with
        ``erase("face", ids)``.
        """
        principal = principal or self.operator
        require(principal, "erase")
        service = self.search_service(pack, context=ActionContext(actor=principal.actor))
        limit = threshold if threshold is not None else self.forget_threshold(pack)
        scope = None if principal.scope is None else sorted(principal.scope)
        return service.faces_above(image, limit, collections=scope)

    def opt_out(
        self, image: ImageInput, *, note: str | None = None, principal: Principal | None = None
    ) -> dict[str, Any]:
        """Put the person in ``image`` (its main face) on the opt-out list and erase their stored faces; the
        image itself is not kept.

        The face is embedded with the active pack and with every other pack that has faces in the catalog
        (when its models are present), so that it is found whichever pack indexed or searches. A face counts as
        the person's from the pack's strict threshold (:func:`strict_threshold`): the pack's same-person
        threshold would also erase strangers who resemble them.
        """
        principal = principal or self.operator
        OptOuts.check(principal)
        keys = [self.pack().key, *(key for key in self.catalog.stats()["packs"] if key != self.pack().key)]
        embeddings: dict[str, tuple[np.ndarray, float]] = {}
        for key in keys:
            try:
                model_pack = self.pack(key.split("@", 1)[0]) if key != self.pack().key else self.pack()
            except Exception:  # a pack whose models are missing here cannot embed; the others still do
                continue
            if model_pack.key != key:
                continue
            service = self.search_service(model_pack.spec.name, context=ActionContext(actor=principal.actor))
            faces = service.analyse(image)  # largest first: the person the photo is about
            if not faces:
                raise OptOutError("no face found in the photo")
            embeddings[key] = (faces[0].embedding, strict_threshold(model_pack.threshold))
        return self.optouts.add(principal, embeddings, note=note)

    def _faces_matching(self, pack_key: str, vector: np.ndarray, threshold: float) -> list[int]:
        """Ids of the stored faces of ``pack_key`` at or above ``threshold`` to ``vector`` (from its index,
        caught up with the catalog first)."""
        if not self.catalog.face_count(pack_key):
            return []
        index = self._index_for(pack_key)
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

    def opt_out_remove(self, optout_id: int, *, principal: Principal | None = None) -> None:
        """Withdraw an opt-out (audited)."""
        self.optouts.remove(principal or self.operator, optout_id)

    def purge(self, *, principal: Principal | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Erase every image older than its collection's retention (audited as ``purge``)."""
        return self.retention.purge(principal or self.operator, dry_run=dry_run)

    def status(self, principal: Principal | None = None) -> dict[str, Any]:
        """Counts of images, faces, skipped files, collections and packs (of the principal's collections)."""
        principal = principal or self.operator
        stats = self.catalog.stats()
        report = {
            "images": stats["images"],
            "faces": stats["faces"],
            "skipped": stats["skipped"],
            "skipped_by_reason": stats["skipped_by_reason"],
            "subjects": stats["subjects"],
            "collections": [c["name"] for c in self.catalog.collections()],
            "packs": [{"pack": key, "faces": count} for key, count in stats["packs"].items()],
            "home": str(self.settings.home),
        }
        if principal.scope is not None:
            # A limited user's figures cover their collections only: others' names and sizes are not theirs.
            visible = [c for c in self.catalog.collections() if principal.may_see(c["name"])]
            report.update(
                images=sum(c["images"] for c in visible),
                faces=sum(c["faces"] for c in visible),
                skipped=sum(c["skipped"] for c in visible),
                skipped_by_reason={},
                subjects=self.catalog.subject_count(collections=[c["name"] for c in visible]),
                collections=[c["name"] for c in visible],
            )
        return report

    def doctor(self, *, repair: bool = True) -> list[IndexRepair]:
        """Check every pack's index against the catalog and (unless ``repair`` is false) repair it; returns what
        was found per pack.

        Each repair that changed an index is audited (action ``index_repair``, as the local operator).
        """
        repairs = []
        for pack_key in self.catalog.stats()["packs"]:
            dim = self._stored_dim(pack_key)
            repairs.append(self.sync_index(pack_key, dim, repair=repair))
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
        for repair_report in repairs:
            if repair_report.repaired:
                details = {"pack": repair_report.pack, "added": repair_report.added, "removed": repair_report.removed}
                self.audit.append(actor=self.operator.actor, action="index_repair", details=details)
        return repairs

    def _stored_dim(self, pack_key: str) -> int:
        for _ids, vectors in self.catalog.iter_embeddings(pack_key, chunk=1):
            return int(vectors.shape[1])
        return 0

    # Scale: index maintenance, many probes at once ---------------------------------------------------------

    def _pack_keys(self, pack: str | None) -> list[str]:
        """The pack keys with faces in the catalog, or only the key of pack ``pack`` (a name or a key)."""
        keys = list(self.catalog.stats()["packs"])
        if pack is None:
            return keys
        return [pack] if pack in keys else [self.pack_spec(pack).key]

    def _index_for(self, pack_key: str) -> VectorIndex:
        """A pack's index, opened (and caught up with the catalog) if this engine has not opened it yet."""
        with self._lock:
            if pack_key not in self._indexes:
                return self._sync_and_get(pack_key)
            return self._indexes[pack_key]

    def _sync_and_get(self, pack_key: str) -> VectorIndex:
        self.sync_index(pack_key, self._stored_dim(pack_key))
        return self._indexes[pack_key]

    def index_stats(self, pack: str | None = None) -> list[dict[str, Any]]:
        """Per pack: faces in the catalog, and the index's kind, factory, size, memory and disk figures."""
        report = []
        for pack_key in self._pack_keys(pack):
            faces = self.catalog.face_count(pack_key)
            stats = self._index_for(pack_key).stats() if faces else {}
            report.append({"pack": pack_key, "catalog_faces": faces, **stats})
        return report

    def reindex(
        self, factory: str | None = None, pack: str | None = None, *, nprobe_fraction: float | None = None
    ) -> list[dict[str, Any]]:
        """Rebuild each pack's index from its vectors (retrain, compact), as ``factory`` if given; waits.

        For FAISS, ``factory`` is an ``index_factory`` string ("IVF2048,PQ64x4fs", "HNSW32", "Flat") or
        "auto"; for Milvus, an index spec ("HNSW,M=16,efConstruction=200"). Searches continue meanwhile.
        ``nprobe_fraction`` sets the share of inverted lists a compressed FAISS index visits (recall vs speed).
        """
        report = []
        for pack_key in self._pack_keys(pack):
            if not self.catalog.face_count(pack_key):
                continue
            index = self._sync_and_get(pack_key)  # caught up with the catalog first: the rebuild starts complete
            before = index.stats()
            started = time.perf_counter()
            if nprobe_fraction is not None:
                if not isinstance(index, FaissIndex):
                    raise ValueError("--nprobe-fraction applies to the embedded FAISS index only")
                index.knobs = dataclasses.replace(index.knobs, nprobe=None, nprobe_fraction=nprobe_fraction)
            index.rebuild(factory, wait=True)
            index.save()
            after = index.stats()
            details = {"pack": pack_key, "factory": after.get("factory"), "requested": factory}
            self.audit.append(actor=self.operator.actor, action="reindex", details=details)
            report.append(
                {
                    "pack": pack_key,
                    "seconds": round(time.perf_counter() - started, 2),
                    "before": {k: before.get(k) for k in ("factory", "vectors", "memory_bytes", "disk_bytes")},
                    "after": after,
                }
            )
        return report

    def crossmatch(
        self,
        collection: str,
        against: str,
        *,
        top_k: int = 5,
        min_similarity: float | None = None,
        pack: str | None = None,
        batch: int = 1000,
        context: ActionContext | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> CrossmatchResult:
        """Search every face of ``collection`` against the faces of ``against``, in batches; ranked pairs.

        This is how a list of missing people is matched against a list of registered survivors. Each batch
        goes through the search service (audited as one ``search_vectors`` record). Pairs below
        ``min_similarity`` (default: the pack's same-person threshold) are left out; a face never matches
        itself. Pairs come best first; ``rank`` is the candidate's rank for its probe face.
        """
        service = self.search_service(pack, context=context)
        pack_key = service.pack.key
        threshold = service.pack.threshold if min_similarity is None else min_similarity
        ids = {}
        for name in (collection, against):
            collection_id = self.catalog.collection_id(name)
            if collection_id is None:
                raise LookupError(f"unknown collection {name!r}")
            ids[name] = self.catalog.collection_face_ids(collection_id, pack_key)
        probes, targets = np.sort(ids[collection]), np.sort(ids[against])
        started = time.perf_counter()
        pairs: list[CrossmatchPair] = []
        done = 0
        for start in range(0, len(probes), batch):
            chunks = list(self.catalog.iter_embeddings(pack_key, probes[start : start + batch].tolist()))
            if not chunks:
                continue
            probe_ids = np.concatenate([c[0] for c in chunks]).tolist()
            vectors = np.concatenate([c[1] for c in chunks])
            probe_info = self.catalog.face_details(probe_ids)
            # One more candidate than asked: a face in both collections finds itself first, and is skipped.
            found = service.search_vectors(vectors, top_k=top_k + 1, allowed_ids=targets, context=context)
            for probe_id, candidates in zip(probe_ids, found, strict=True):
                info = probe_info.get(probe_id)
                kept = [c for c in candidates if c.face_id != probe_id][:top_k]
                pairs.extend(
                    CrossmatchPair(
                        probe_face_id=probe_id,
                        probe_image=info.image_path if info else None,
                        probe_subject=info.subject if info else None,
                        rank=rank,
                        face_id=candidate.face_id,
                        image=candidate.image,
                        subject=candidate.subject,
                        similarity=candidate.similarity,
                    )
                    for rank, candidate in enumerate(kept, start=1)
                    if candidate.similarity >= threshold
                )
            done += len(probe_ids)
            if on_progress is not None:
                on_progress(done, len(probes))
        pairs.sort(key=lambda p: (-p.similarity, p.probe_face_id, p.rank))
        elapsed = time.perf_counter() - started
        return CrossmatchResult(
            collection=collection,
            against=against,
            pack=pack_key,
            threshold=threshold,
            probe_faces=len(probes),
            target_faces=len(targets),
            pairs=pairs,
            elapsed_s=elapsed,
        )


@dataclass
class CrossmatchPair:
    """A face of the probe collection and a candidate for it in the other collection: a lead to review."""

    probe_face_id: int
    probe_image: str | None
    probe_subject: str | None
    rank: int
    face_id: int
    image: str
    subject: str | None
    similarity: float


@dataclass
class CrossmatchResult:
    """Every candidate pair of a crossmatch, best first, with what it took."""

    collection: str
    against: str
    pack: str
    threshold: float
    probe_faces: int
    target_faces: int
    pairs: list[CrossmatchPair]
    elapsed_s: float

    def summary(self) -> dict[str, Any]:
        """Counts and throughput (probe faces searched per second)."""
        return {
            "collection": self.collection,
            "against": self.against,
            "pack": self.pack,
            "threshold": self.threshold,
            "probe_faces": self.probe_faces,
            "target_faces": self.target_faces,
            "pairs": len(self.pairs),
            "elapsed_s": round(self.elapsed_s, 3),
            "probes_per_s": round(self.probe_faces / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
        }


def open(home: str | os.PathLike[str] | None = None, *, pack: str | None = None) -> FaceSearch:
    """Open (or create) a facesearch data folder; the notebook entry point.

    >>> fs = facesearch.open("~/faces")                         # doctest: +SKIP
    >>> fs.index(["photos/"], collection="family")              # doctest: +SKIP
    >>> fs.search("probe.jpg").faces[0].candidates[0]           # doctest: +SKIP
    """
    return FaceSearch(Settings.load(home, pack=pack))
