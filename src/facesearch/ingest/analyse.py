"""Per-file work of an ingest, run inside worker processes: read, hash, decode, detect, align, embed."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from facesearch.catalog.records import FileOutcome, NewFace
from facesearch.ingest.metadata import read_facts
from facesearch.ingest.video import analyse_video
from facesearch.vision.crops import GRID_CROP_SIZE, crop_jpeg
from facesearch.vision.fingerprints import fingerprint
from facesearch.vision.image import ImageRejected, load_image, read_image_bytes, sniff_format
from facesearch.vision.packs import ModelPack, PackSpec, prominent_face
from facesearch.vision.video import DEFAULT_FPS, is_video_file


@dataclass(frozen=True)
class FileTask:
    """One file to analyse; ``subject`` is the label to enrol its main face under, if any."""

    path: str
    subject: str | None = None
    source_url: str | None = None
    source_page: str | None = None
    source_date: datetime | None = None
    legal_basis: str | None = None
    # How a video is sampled: frames a second, and also at each new shot with ``scenes``.
    video_fps: float = DEFAULT_FPS
    video_scenes: bool = False
    # Cut each face's grid crop here, where the picture is decoded (the workbench then shows it without decoding).
    thumbnails: bool = True


_worker_pack: ModelPack | None = None
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when the process that started it dies, however it dies.

    Without it, a ``facesearch index`` killed with SIGKILL (or by the out-of-memory killer) leaves its workers
    running, each finishing its queue of chunks at full speed with nobody to record the results. Linux's
    ``PR_SET_PDEATHSIG`` is tied to the thread that started the process, which for the ingest's pool is a
    thread that lives as long as the ingest; elsewhere the workers still end when their task pipe closes.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    if os.getppid() != parent_pid:  # the parent died before the request above was made
        os._exit(1)


def init_worker(spec: PackSpec, models_dir: Path, parent_pid: int | None = None) -> None:
    """Load the pack once per worker process; single-threaded, since the processes already use every core."""
    global _worker_pack
    if parent_pid is not None:
        die_with_parent(parent_pid)
    import cv2

    # Each worker is one process per core: letting OpenCV spawn its own threads too would oversubscribe.
    cv2.setNumThreads(1)
    _worker_pack = ModelPack(spec, models_dir, threads=1)


def analyse_in_worker(tasks: Sequence[FileTask], max_pixels: int) -> list[FileOutcome]:
    """Analyse a chunk of files with the pack loaded by :func:`init_worker`."""
    if _worker_pack is None:
        raise RuntimeError("init_worker was not called in this process")
    return analyse_files(_worker_pack, tasks, max_pixels)


def describe_picture(outcome: FileOutcome, data: bytes, rgb: np.ndarray) -> None:
    """Fill in what the picture itself gives: its PDQ fingerprint and its EXIF and C2PA claims (a capture
    date from the source, when there is one, is kept over the file's own)."""
    found = fingerprint(rgb)
    outcome.pdq, outcome.pdq_quality = found.pdq, found.quality
    facts = read_facts(data, sniff_format(data))
    outcome.captured_at = outcome.captured_at or facts.captured_at
    outcome.camera, outcome.content_credentials = facts.camera, facts.content_credentials
    outcome.latitude, outcome.longitude = facts.latitude, facts.longitude


def thumbnail_of(rgb: np.ndarray, bbox: tuple[float, float, float, float]) -> bytes | None:
    """A face's grid crop (``None`` when its box lies outside the picture)."""
    try:
        return crop_jpeg(rgb, bbox, size=GRID_CROP_SIZE)
    except ImageRejected:
        return None


def analyse_files(pack: ModelPack, tasks: Sequence[FileTask], max_pixels: int) -> list[FileOutcome]:
    """Turn files into catalog outcomes; the faces of all decodable files are embedded in one batch."""
    outcomes: list[FileOutcome] = []
    decoded: list[tuple[FileOutcome, np.ndarray, str | None, bool]] = []
    for task in tasks:
        size: int | None = None
        mtime: float | None = None
        try:
            info = os.stat(task.path)
            size, mtime = info.st_size, info.st_mtime
        except OSError:
            pass
        outcome = FileOutcome(
            path=task.path,
            file_size=size,
            mtime=mtime,
            sha256=None,
            status="ok",
            source_url=task.source_url,
            source_page=task.source_page,
            source_date=task.source_date,
            legal_basis=task.legal_basis,
        )
        outcomes.append(outcome)
        if is_video_file(task.path):
            analyse_video(pack, outcome, fps=task.video_fps, scenes=task.video_scenes, subject=task.subject)
            continue
        try:
            data = read_image_bytes(task.path)
            outcome.sha256 = hashlib.sha256(data).hexdigest()
            rgb = load_image(data, max_pixels=max_pixels)
        except ImageRejected as rejected:
            outcome.status, outcome.error, outcome.error_detail = "skipped", rejected.reason, rejected.detail
            continue
        outcome.height, outcome.width = int(rgb.shape[0]), int(rgb.shape[1])
        describe_picture(outcome, data, rgb)
        decoded.append((outcome, rgb, task.subject, task.thumbnails))
    try:
        analysed = pack.analyse([rgb for _, rgb, _, _ in decoded])
    except Exception as error:  # a model failure on one chunk must not lose the others' records
        for outcome, _, _, _ in decoded:
            outcome.status, outcome.error, outcome.error_detail = "skipped", "analysis_failed", repr(error)
        return outcomes
    for (outcome, rgb, subject, thumbnails), faces in zip(decoded, analysed, strict=True):
        main = prominent_face([f.detection for f in faces], rgb.shape) if subject else None
        outcome.faces = [
            NewFace(
                bbox=tuple(round(v, 2) for v in face.detection.bbox),  # type: ignore[arg-type]
                landmarks=(
                    np.round(face.detection.landmarks, 2).tolist() if face.detection.landmarks is not None else None
                ),
                detector_score=round(face.detection.score, 4),
                quality=face.quality.score,
                quality_reasons=face.quality.reasons,
                embedding=face.embedding,
                subject=subject if i == main else None,
                thumbnail=thumbnail_of(rgb, face.detection.bbox) if thumbnails else None,
            )
            for i, face in enumerate(faces)
        ]
    return outcomes
