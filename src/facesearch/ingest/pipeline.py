"""The resumable ingest pipeline: files -> worker processes -> catalog (committed) -> vector index.

Order of writes is what makes a crash harmless: a chunk's outcomes are committed to the catalog first (with
the embeddings), then added to the index, which is saved now and then and at the end. A crash can only leave
the index behind the catalog, and :meth:`facesearch.engine.FaceSearch.sync_index` catches it up from the
catalog's stored embeddings. Files already recorded are skipped when the same ingest runs again.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from facesearch.catalog.records import FileOutcome, RecordedFile
from facesearch.catalog.store import Catalog, FaceFilter
from facesearch.index.base import VectorIndex
from facesearch.ingest.analyse import FileTask, analyse_files, analyse_in_worker, init_worker
from facesearch.ingest.sources import SourceFile, iter_source_files
from facesearch.ingest.spawn_safety import outside_stacklevel, workers_may_spawn
from facesearch.vision.image import DEFAULT_MAX_PIXELS
from facesearch.vision.packs import ModelPack
from facesearch.vision.video import DEFAULT_FPS

CHUNK_SIZE = 24
SAVE_EVERY_S = 30.0


@dataclass
class IngestOptions:
    """What an ingest run does with the files it finds."""

    collection: str
    subject_from_folder: bool = False
    source_url: str | None = None
    legal_basis: str | None = None
    description: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Sets the collection's quality policy (kept for later runs): faces scoring below it are not indexed;
    # 0 indexes every face again. None keeps the collection's policy as it is.
    min_quality: float | None = None
    # How videos are sampled: frames a second, and also at each new shot with video_scenes.
    video_fps: float = DEFAULT_FPS
    video_scenes: bool = False
    # Keep each face's grid crop in the catalog (see Settings.thumbnails).
    thumbnails: bool = True
    # Enrol the main face of every photo under this label (the server's enrolment: the label never becomes a
    # folder name, so no path ever carries it).
    subject: str | None = None


@dataclass
class IngestProgress:
    """A snapshot for progress bars: files done out of total, faces so far, elapsed seconds."""

    files_done: int
    files_total: int
    faces: int
    elapsed_s: float


SKIPPED_LISTED = 200
"""How many skipped files an ingest's summary names (the catalog keeps them all)."""


@dataclass
class IngestSummary:
    """The result of an ingest run."""

    collection: str
    pack: str
    files_seen: int = 0
    already_done: int = 0
    images_indexed: int = 0
    duplicates: int = 0
    faces: int = 0
    faces_below_quality: int = 0
    min_quality: float | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_files: list[dict[str, str | None]] = field(default_factory=list)
    elapsed_s: float = 0.0
    # With --ray: how many analysers (one per CPU of the cluster) ran.
    analysers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ray_analysers`` only when the analysis ran on Ray)."""
        report: dict[str, Any] = {
            "collection": self.collection,
            "pack": self.pack,
            "files_seen": self.files_seen,
            "already_done": self.already_done,
            "images_indexed": self.images_indexed,
            "duplicates": self.duplicates,
            "faces": self.faces,
            "faces_below_quality": self.faces_below_quality,
            "min_quality": self.min_quality,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(self.skipped),
            # The files behind the counts (the first SKIPPED_LISTED), so that a person can see what to fix.
            "skipped_files": self.skipped_files[:SKIPPED_LISTED],
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.files_seen / self.elapsed_s, 2) if self.elapsed_s > 0 else None,
        }
        if self.analysers is not None:
            report["ray_analysers"] = self.analysers
        return report


def _pending_tasks(
    sources: Sequence[SourceFile], done: dict[str, tuple[int | None, float | None]], options: IngestOptions
) -> tuple[list[FileTask], int]:
    tasks: list[FileTask] = []
    already = 0
    for source in sources:
        recorded = done.get(source.path)
        if recorded is not None:
            try:
                info = os.stat(source.path)
                unchanged = recorded == (info.st_size, info.st_mtime)
            except OSError:
                unchanged = True
            if unchanged:
                already += 1
                continue
        tasks.append(
            FileTask(
                path=source.path,
                subject=options.subject or (source.folder_name if options.subject_from_folder else None),
                source_url=source.source_url or options.source_url,
                source_page=source.source_page,
                source_date=source.source_date,
                legal_basis=source.legal_basis,
                video_fps=options.video_fps,
                video_scenes=options.video_scenes,
                thumbnails=options.thumbnails,
            )
        )
    return tasks, already


def _chunks(tasks: Sequence[FileTask], size: int) -> Iterator[list[FileTask]]:
    for start in range(0, len(tasks), size):
        yield list(tasks[start : start + size])


def run_ingest(
    catalog: Catalog,
    index: VectorIndex,
    pack: ModelPack,
    models_dir: Path,
    paths: Sequence[str | os.PathLike[str]],
    options: IngestOptions,
    *,
    workers: int = 1,
    on_progress: Callable[[IngestProgress], None] | None = None,
    keep: FaceFilter | None = None,
    listed: Sequence[SourceFile] = (),
    unusable: Sequence[FileOutcome] = (),
    ray_address: str | None = None,
) -> IngestSummary:
    """Ingest every image under ``paths`` into ``options.collection`` with ``pack``; resumable.

    ``listed`` are files named with their source (a manifest's rows); ``unusable`` are what could not even be
    fetched or read from such a list, recorded as skipped with their reasons.

    ``keep`` filters each batch's faces inside the transaction that stores them (the opt-out list's filter).

    With ``workers`` > 1, decoding, detection and embedding run in that many processes, each embedding the
    faces of a chunk of files in one batch; this process only records results. Interrupting (Ctrl-C) keeps
    everything recorded so far, and a later run picks up the rest. With ``ray_address`` (an address or
    ``"local"``) the analysis runs on a Ray cluster instead (:mod:`facesearch.ingest.distributed`).
    """
    started = time.perf_counter()
    collection_id = catalog.ensure_collection(
        options.collection,
        description=options.description,
        legal_basis=options.legal_basis,
        source=options.source_url,
        min_quality=options.min_quality,
    )
    min_quality = catalog.collection_min_quality(collection_id)
    sources = list(iter_source_files(paths)) + list(listed)
    tasks, already = _pending_tasks(sources, catalog.done_paths(collection_id, pack.key), options)
    summary = IngestSummary(
        collection=options.collection,
        pack=pack.key,
        files_seen=len(sources),
        already_done=already,
        min_quality=min_quality,
    )
    last_save = time.perf_counter()
    files_done = already

    def record(outcomes: list[FileOutcome]) -> None:
        nonlocal files_done, last_save
        if min_quality is not None:
            summary.faces_below_quality += _drop_faces_below(outcomes, min_quality)
        recorded = catalog.record_files(collection_id, pack.key, outcomes, keep=keep)
        _add_to_index(index, recorded)
        for item, outcome in zip(recorded, outcomes, strict=True):
            if item.disposition == "skipped":
                summary.skipped[outcome.error or "unknown"] += 1
                summary.skipped_files.append(
                    {"path": outcome.path, "reason": outcome.error, "detail": outcome.error_detail}
                )
            elif item.disposition == "duplicate":
                summary.duplicates += 1
            else:
                summary.images_indexed += 1
            summary.faces += len(item.face_ids)
        files_done += len(outcomes)
        if time.perf_counter() - last_save > SAVE_EVERY_S:
            index.save()
            last_save = time.perf_counter()
        if on_progress is not None:
            on_progress(IngestProgress(files_done, len(sources), summary.faces, time.perf_counter() - started))

    if on_progress is not None:
        on_progress(IngestProgress(files_done, len(sources), 0, 0.0))
    done = catalog.done_paths(collection_id, pack.key) if unusable else {}
    summary.files_seen += len(unusable)
    for failed in unusable:
        if failed.path in done:  # failed the same way before: recorded once, counted again
            summary.already_done += 1
            summary.skipped[failed.error or "unknown"] += 1
    fresh = [failed for failed in unusable if failed.path not in done]
    if fresh:
        record(fresh)
    if workers > 1 and len(tasks) > 1:
        allowed, why = workers_may_spawn()
        if not allowed:
            warnings.warn(
                f"indexing in this process, without worker processes: {why}. Add the guard to use {workers} "
                "processes (faster on many cores).",
                RuntimeWarning,
                stacklevel=outside_stacklevel(),
            )
            workers = 1
    try:
        if ray_address and tasks:
            from facesearch.ingest.distributed import run_on_ray

            summary.analysers = run_on_ray(
                pack.spec, models_dir, _chunks(tasks, CHUNK_SIZE), options.max_pixels, ray_address, record
            )
        elif workers <= 1 or len(tasks) <= 1:
            for chunk in _chunks(tasks, CHUNK_SIZE):
                record(analyse_files(pack, chunk, options.max_pixels))
        else:
            # Small jobs are cut finer so that every worker gets a share.
            chunk_size = max(1, min(CHUNK_SIZE, -(-len(tasks) // workers)))
            _run_in_workers(pack, models_dir, tasks, options, workers, chunk_size, record)
    finally:
        index.save()
        summary.elapsed_s = time.perf_counter() - started
    return summary


def _run_in_workers(
    pack: ModelPack,
    models_dir: Path,
    tasks: Sequence[FileTask],
    options: IngestOptions,
    workers: int,
    chunk_size: int,
    record: Callable[[list[FileOutcome]], None],
) -> None:
    # "spawn": a forked child would inherit this process's model sessions, locks and database connections.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=init_worker,
        initargs=(pack.spec, models_dir, os.getpid()),
    ) as executor:
        pending: set[Future[list[FileOutcome]]] = set()
        chunks = _chunks(tasks, chunk_size)
        # A bounded number of chunks in flight keeps memory flat however large the folder is.
        in_flight = workers * 3
        try:
            for chunk in chunks:
                pending.add(executor.submit(analyse_in_worker, chunk, options.max_pixels))
                if len(pending) >= in_flight:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        record(future.result())
            for future in pending:
                record(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _drop_faces_below(outcomes: Sequence[FileOutcome], min_quality: float) -> int:
    """Remove the faces scoring below ``min_quality`` from ``outcomes``; how many were removed."""
    dropped = 0
    for outcome in outcomes:
        kept = [face for face in outcome.faces if face.quality >= min_quality]
        dropped += len(outcome.faces) - len(kept)
        outcome.faces = kept
    return dropped


def _add_to_index(index: VectorIndex, recorded: Sequence[RecordedFile]) -> None:
    import numpy as np

    ids = [face_id for item in recorded for face_id in item.face_ids]
    if ids:
        vectors = np.stack([vector for item in recorded for vector in item.embeddings])
        index.add(np.array(ids, dtype=np.int64), vectors)
