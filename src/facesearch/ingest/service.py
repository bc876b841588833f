"""Indexing photos into a collection, as a principal may: the ingest service.

It checks who indexes (managing collections, inside their grants; creating a collection needs an unlimited
user), writes the audit record in the transaction that creates or updates the collection (before any photo is
read, so an interrupted ingest is attributed too), runs the resumable pipeline with the opt-out list's face
filter, and leaves the pack's index caught up with the catalog.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from facesearch.catalog.base import Transaction
from facesearch.catalog.records import FileOutcome
from facesearch.catalog.store import Catalog
from facesearch.config import UPLOADS_FOLDER, Settings, remember_model_dirs
from facesearch.errors import SourceRefused
from facesearch.governance.access import Principal, require, require_collection, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.governance.optout import opted_out_filter
from facesearch.ingest.pipeline import IngestOptions, IngestProgress, IngestSummary, run_ingest
from facesearch.ingest.reconcile import Indexes
from facesearch.ingest.sources.fetching import fetch
from facesearch.ingest.sources.files import safe_name
from facesearch.ingest.sources.folders import SourceFile
from facesearch.ingest.sources.manifests import read_manifest
from facesearch.ingest.sources.object_store import download, is_object_url, list_objects
from facesearch.vision.packs import ModelPack, Packs
from facesearch.vision.video import DEFAULT_FPS

log = logging.getLogger(__name__)

FETCHED_FOLDER = "fetched"
"""Where a manifest's URLs are kept, under the managed uploads folder (by collection)."""


class Ingest:
    """The ingest service of one data folder."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        audit: AuditTrail,
        packs: Packs,
        indexes: Indexes,
        operator: Principal,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.audit = audit
        self.packs = packs
        self.indexes = indexes
        self.operator = operator
        # Called with the collection after each ingest into it (the engine adds standing cross-matches here).
        self.after_ingest: list[Callable[[str], object]] = []

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
        manifest: Path | None = None,
        allow_hosts: Sequence[str] = (),
        video_fps: float = DEFAULT_FPS,
        video_scenes: bool = False,
        ray: str | None = None,
    ) -> IngestSummary:
        """Index every photo under ``paths`` into ``collection`` (resumable; duplicates stored once).

        ``manifest`` adds the files and URLs a manifest lists, each with its source page, date and legal basis
        (:mod:`facesearch.ingest.sources.manifests`); URLs are fetched only from the configured ``fetch_hosts``
        and ``allow_hosts``, into the data folder (so that erasure removes them). Rows that cannot be used are
        recorded as skipped, with their reasons.

        ``ray`` runs the analysis on a Ray cluster (its address, or ``"local"``); this process records the
        results as local ingest does (:mod:`facesearch.ingest.distributed`).

        Videos are sampled ``video_fps`` frames a second (and at each new shot with ``video_scenes``); each face
        track is stored as one face (see :mod:`facesearch.ingest.video`).

        ``principal`` (default: the local operator) must manage collections and see ``collection``; a
        collection that does not exist yet is created, which only an unlimited user may do. The ingest is
        audited (action ``ingest``, or ``enrol`` with ``subject``) in the transaction that creates or updates
        the collection, before any photo is read. ``subject`` enrols the main face of every photo under that
        label.

        ``min_quality`` sets the collection's quality policy, kept for later runs: faces whose quality score
        is below it are counted but not indexed; 0 indexes every face again (the default policy: every face
        is indexed and marked with its quality and reasons).

        ``model_pack`` is a loaded pack of its own for a background thread (a server's ingest jobs), so
        that its in-process analysis never shares models with the searches of other threads.
        """
        principal = principal or self.operator
        require(principal, "collections.manage")
        if self.catalog.collection_exists(collection):
            require_collection(principal, collection, exists=True)
        else:
            require_unlimited(principal, "creating a collection")
        model_pack = model_pack or self.packs.pack(pack)
        # A later command (another shell, the installed facesearch) must find the same models without
        # FACESEARCH_MODEL_DIRS: the data folder remembers where they were.
        remember_model_dirs(self.settings.home, self.packs.folders_of(model_pack.spec))
        details = {
            "collection": collection,
            "pack": model_pack.key,
            "paths": len(paths),
            "subject_from_folder": subject_from_folder,
            "enrol": subject is not None,
            "min_quality": min_quality,
            "manifest": str(manifest) if manifest is not None else None,
        }
        audit: list[tuple[int, str]] = []

        def record(tx: Transaction) -> None:
            action = "enrol" if subject else "ingest"
            audit.append(self.audit.append_in(tx, actor=principal.actor, action=action, details=details))

        self.catalog.ensure_collection(
            collection,
            description=description,
            legal_basis=legal_basis,
            source=source_url,
            min_quality=min_quality,
            also=record,
        )
        self.audit.committed(*audit[0])
        options = IngestOptions(
            collection=collection,
            subject_from_folder=subject_from_folder,
            source_url=source_url,
            legal_basis=legal_basis,
            description=description,
            min_quality=min_quality,
            subject=subject,
            video_fps=video_fps,
            video_scenes=video_scenes,
            thumbnails=self.settings.thumbnails,
        )
        listed, unusable = self._listed(manifest, collection, allow_hosts) if manifest is not None else ([], [])
        objects = [str(path) for path in paths if is_object_url(str(path))]
        if objects:
            stored, refused = self._objects(objects, collection)
            listed, unusable = [*listed, *stored], [*unusable, *refused]
            paths = [path for path in paths if not is_object_url(str(path))]
        with self.indexes.ingesting(model_pack.key, model_pack.dim) as index:
            summary = run_ingest(
                self.catalog,
                index,
                model_pack,
                self.settings.models_dir,
                paths,
                options,
                workers=workers or self.settings.workers,
                on_progress=on_progress,
                keep=opted_out_filter(self.catalog),
                listed=listed,
                unusable=unusable,
                ray_address=ray,
            )
        for follow_up in self.after_ingest:
            try:
                follow_up(collection)
            except Exception:  # the photos are in; what follows catches up on its next run
                log.exception("after ingesting into %s", collection)
        return summary

    def _listed(
        self, manifest: Path, collection: str, allow_hosts: Sequence[str]
    ) -> tuple[list[SourceFile], list[FileOutcome]]:
        """A manifest's rows as files to ingest (URLs fetched first) and what could not be used, with reasons."""
        rows, bad = read_manifest(manifest)
        hosts = [*self.settings.fetch_hosts, *allow_hosts]
        folder = self._fetched_folder(collection)
        listed: list[SourceFile] = []
        unusable = [
            _skipped(row.named or f"{manifest}:{row.line}", row.reason, f"line {row.line}: {row.detail}") for row in bad
        ]
        for row in rows:
            path = row.file
            if row.url is not None:
                try:
                    path = fetch(row.url, folder, hosts, limit=self.settings.max_ingest_upload_bytes)
                except SourceRefused as refused:
                    unusable.append(_skipped(row.url, refused.code, f"line {row.line}: {refused}"))
                    continue
            assert path is not None  # a row names a file or a url
            listed.append(
                SourceFile(
                    path=str(path),
                    folder_name=path.parent.name,
                    source_url=row.url,
                    source_page=row.source_page,
                    source_date=row.date,
                    legal_basis=row.legal_basis,
                )
            )
        return listed, unusable

    def _fetched_folder(self, collection: str) -> Path:
        """Where the copies of a collection's fetched sources (manifest URLs, s3:// objects) are kept, inside
        the data folder so that erasure and retention reach them."""
        return self.settings.home / UPLOADS_FOLDER / FETCHED_FOLDER / safe_name(collection, "collection")

    def _objects(self, urls: Sequence[str], collection: str) -> tuple[list[SourceFile], list[FileOutcome]]:
        """The pictures under ``s3://`` prefixes, streamed into the data folder (once: a later run finds them
        there), as files to ingest with their object's address; what could not be read, with reasons."""
        folder = self._fetched_folder(collection)
        listed: list[SourceFile] = []
        unusable: list[FileOutcome] = []
        for url in urls:
            try:
                for item in list_objects(url):
                    try:
                        path = download(item, folder, limit=self.settings.max_ingest_upload_bytes)
                    except SourceRefused as refused:
                        unusable.append(_skipped(item.url, refused.code, str(refused)))
                        continue
                    listed.append(SourceFile(path=str(path), folder_name=item.folder_name, source_url=item.url))
            except SourceRefused as refused:
                unusable.append(_skipped(url, refused.code, str(refused)))
        return listed, unusable


def _skipped(path: str, reason: str, detail: str) -> FileOutcome:
    return FileOutcome(
        path=path, file_size=None, mtime=None, sha256=None, status="skipped", error=reason, error_detail=detail
    )
