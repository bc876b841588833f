"""Linking the faces of a video's sampled frames into tracks: one track per person per appearance.

At two frames a second a face moves far between samples, so position alone (IoU) links badly and appearance
decides: a detection joins the open track whose recent faces it resembles most, when that similarity reaches
the pack's same-person threshold, with overlap of the boxes as a bonus (two people who look alike standing
apart stay apart). Tracks and detections are paired by the Hungarian algorithm (``scipy``), so that two faces
of one frame never join one track. A track not seen for ``max_gap_s`` is closed.

Each track keeps only what its template needs, whatever the video's length: its best faces by quality (their
embeddings, for the template), the best one's frame time, box and landmarks, and its first and last times.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from facesearch.vision.packs import AnalysedFace, ModelPack
from facesearch.vision.video import DEFAULT_FPS, SampledFrame, VideoRejected, sampled_frames, video_info

TEMPLATE_FACES = 5
"""A track's template is the mean of its best faces (by quality): five, as a reviewer would pick."""


def _iou(first: tuple[float, float, float, float], second: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = first
    bx, by, bw, bh = second
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    overlap = width * height
    union = aw * ah + bw * bh - overlap
    return overlap / union if union > 0 else 0.0


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass
class Track:
    """One person's appearance in a video: when, the best face seen, and the faces its template is made of."""

    number: int
    start: float
    end: float
    best_time: float
    best: AnalysedFace
    faces: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (quality, embedding), best first
    seen: int = 1
    recent: np.ndarray | None = None  # a running mean of the latest embeddings: what the next face must match
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def add(self, time: float, face: AnalysedFace) -> None:
        """Take a face of this track seen at ``time``."""
        self.end = time
        self.seen += 1
        quality = float(face.quality.score)
        if quality > float(self.best.quality.score):
            self.best, self.best_time = face, time
        self.faces.append((quality, np.asarray(face.embedding, dtype=np.float32)))
        self.faces.sort(key=lambda item: -item[0])
        del self.faces[TEMPLATE_FACES:]
        embedding = _unit(np.asarray(face.embedding, dtype=np.float32))
        self.recent = embedding if self.recent is None else _unit(0.5 * self.recent + 0.5 * embedding)
        self.last_box = tuple(float(v) for v in face.detection.bbox)  # type: ignore[assignment]

    @property
    def template(self) -> np.ndarray:
        """The track's embedding: the normalised mean of its best faces' embeddings."""
        return _unit(np.mean([_unit(vector) for _, vector in self.faces], axis=0)).astype(np.float32)

    @property
    def time_span(self) -> tuple[float, float]:
        """First and last time (seconds) the face was seen."""
        return (round(self.start, 3), round(self.end, 3))


class FaceTracker:
    """Tracks built frame by frame (call :meth:`update` in time order, then :meth:`finish`)."""

    def __init__(
        self,
        threshold: float,
        *,
        max_gap_s: float = 1.5,
        overlap_bonus: float = 0.2,
        on_link: Callable[[Track, float, AnalysedFace], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.on_link = on_link  # told of every face a track takes (benchmarks measure tracks' purity with it)
        self.max_gap_s = max_gap_s
        self.overlap_bonus = overlap_bonus
        self.open: list[Track] = []
        self.closed: list[Track] = []
        self._numbers = 0

    def update(self, time: float, faces: list[AnalysedFace]) -> None:
        """The faces found in the frame at ``time`` (seconds) join open tracks or start new ones."""
        from scipy.optimize import linear_sum_assignment

        still_open: list[Track] = []
        for track in self.open:
            (still_open if time - track.end <= self.max_gap_s else self.closed).append(track)
        self.open = still_open
        unmatched = list(range(len(faces)))
        if self.open and faces:
            recent = np.stack([t.recent for t in self.open if t.recent is not None])
            found = np.stack([_unit(np.asarray(f.embedding, dtype=np.float32)) for f in faces])
            similarity = recent @ found.T
            overlap = np.array(
                [[_iou(t.last_box, f.detection.bbox) for f in faces] for t in self.open], dtype=np.float32
            )
            score = similarity + self.overlap_bonus * overlap
            rows, columns = linear_sum_assignment(-score)
            for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
                if similarity[row, column] >= self.threshold:
                    self._link(self.open[row], time, faces[column])
                    unmatched.remove(column)
        for column in unmatched:
            self._start(time, faces[column])

    def _start(self, time: float, face: AnalysedFace) -> None:
        self._numbers += 1
        track = Track(number=self._numbers, start=time, end=time, best_time=time, best=face)
        track.seen = 0
        self._link(track, time, face)
        self.open.append(track)

    def _link(self, track: Track, time: float, face: AnalysedFace) -> None:
        track.add(time, face)
        if self.on_link is not None:
            self.on_link(track, time, face)

    def finish(self) -> list[Track]:
        """Every track, in the order they started."""
        tracks = self.closed + self.open
        self.closed, self.open = [], []
        return sorted(tracks, key=lambda t: t.number)


ANALYSED_SIDE = 960
"""Video frames are analysed at most this large (longer side): detection is most of a video's cost, and at
960 a 720p frame costs half as much as at full size. A face smaller than about 16 pixels between the chin and
the brow of a 1280-pixel frame (20 of a 1920-pixel one) is then missed; the quality gate calls faces that
small too small to recognise anyway."""

FRAMES_PER_BATCH = 8
"""Sampled frames analysed together: their faces are embedded in one batch."""

MAX_DURATION_S = 12 * 3600.0
"""Longer videos are refused (a crafted container can claim days)."""


def file_sha256(path: str) -> str:
    """The sha256 of a file, read in chunks (a video may be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def video_tracks(
    pack: ModelPack,
    path: str,
    *,
    fps: float = DEFAULT_FPS,
    scenes: bool = False,
    on_link: Callable[[Track, float, AnalysedFace], None] | None = None,
) -> list[Track]:
    """The face tracks of a video (raises :class:`VideoRejected` when it cannot be read); ``on_link`` is told
    of every face a track takes."""
    info = video_info(path)
    if info.duration_s is not None and info.duration_s > MAX_DURATION_S:
        raise VideoRejected("too_large", f"the video lasts {info.duration_s / 3600:.1f} hours (at most 12)")
    tracker = FaceTracker(pack.threshold, on_link=on_link)
    batch: list[SampledFrame] = []

    def analyse(frames: Sequence[SampledFrame]) -> None:
        shrunk = [_shrunk(frame.rgb) for frame in frames]
        for frame, (_, factor), faces in zip(frames, shrunk, pack.analyse([s for s, _ in shrunk]), strict=True):
            tracker.update(frame.time, [_in_frame(face, factor) for face in faces] if factor != 1.0 else faces)

    for frame in decoded_ahead(sampled_frames(path, fps=fps, scenes=scenes)):
        batch.append(frame)
        if len(batch) >= FRAMES_PER_BATCH:
            analyse(batch)
            batch = []
    if batch:
        analyse(batch)
    return tracker.finish()


T = TypeVar("T")


def decoded_ahead(frames: Iterator[T], depth: int = 2 * FRAMES_PER_BATCH) -> Iterator[T]:
    """``frames``, decoded by a thread of their own while the caller analyses the ones before (FFmpeg and the
    models both leave Python's lock while they work), at most ``depth`` ahead so that memory stays flat.

    An error of the decoding is raised here, in the caller's thread; a caller that stops early stops it.
    """
    ahead: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def decode() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        ahead.put(("frame", frame), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put(("end", None))
        except BaseException as error:  # handed to the caller, who raises it
            ahead.put(("error", error))

    worker = threading.Thread(target=decode, name="video-decoder", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = ahead.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)


def _shrunk(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """A frame reduced to :data:`ANALYSED_SIDE` (area averaging), and the factor it was reduced by."""
    import cv2

    height, width = rgb.shape[:2]
    factor = min(1.0, ANALYSED_SIDE / max(height, width))
    if factor == 1.0:
        return rgb, 1.0
    size = (round(width * factor), round(height * factor))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), factor


def _in_frame(face: AnalysedFace, factor: float) -> AnalysedFace:
    """A face found in a reduced frame, its box and landmarks in the full frame's pixels."""
    detection = face.detection
    x, y, w, h = (v / factor for v in detection.bbox)
    landmarks = None if detection.landmarks is None else np.asarray(detection.landmarks) / factor
    raw = None if detection.raw_landmarks is None else np.asarray(detection.raw_landmarks) / factor
    moved = replace(detection, bbox=(x, y, w, h), landmarks=landmarks, raw_landmarks=raw)
    return AnalysedFace(moved, face.quality, face.embedding)
