"""Reading videos (MP4, MOV, MKV, WebM, AVI) through PyAV, FFmpeg's libraries: sampled frames, and one frame
at a given time (a frame grab for a face crop or a reviewer).

Frames are decoded one after the other and dropped unless sampled, so a two-hour video needs the memory of a
frame, not of its length. Sampling takes the first frame at or after each sampling time (``fps`` a second),
or, with ``scenes``, also the first frame of each new shot (the picture changes more than ``cut_level``
between two decoded frames). A file PyAV cannot open or decode raises :class:`VideoRejected` with a reason
like a picture's (``corrupt``, ``unsupported_format``, ``too_large``, ``unreadable``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.vision.image import ImageRejected

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
"""File suffixes an ingest of a folder considers as videos (the content decides in the end)."""

DEFAULT_FPS = 2.0
"""Frames sampled a second by default: a face in view for a second is seen twice."""

MAX_FRAME_PIXELS = 8_300_000
"""Larger frames than 4K UHD (3840 x 2160) are refused: a crafted stream could claim any size."""

CUT_LEVEL = 20.0
"""Mean absolute change (grey levels, at 32 x 18) between two frames above which a new shot begins: a
drifting, zooming shot changes by 1-3 from frame to frame, a cut between two shots by 30-60 (tests' clips)."""


class VideoRejected(ImageRejected):
    """A video that cannot be used, with a reason from :data:`facesearch.vision.image.REASONS`."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: duration (seconds, ``None`` when it does not say), size and frame rate."""

    duration_s: float | None
    width: int
    height: int
    frame_rate: float | None


@dataclass(frozen=True)
class SampledFrame:
    """A frame taken for analysis: its time (seconds from the start) and its pixels (RGB)."""

    time: float
    rgb: np.ndarray


def is_video_file(source: object) -> bool:
    """Whether ``source`` is a path to a video, by its first bytes (a name is not trusted; bytes and arrays
    are never videos here)."""
    if not isinstance(source, str | os.PathLike):
        return False
    from facesearch.vision.image import sniff_format

    try:
        with open(source, "rb") as handle:
            head = handle.read(4096)
    except (OSError, ValueError):
        return False
    return sniff_format(head) == "video"


def _open(path: str | os.PathLike[str]) -> Any:
    import av

    try:
        return av.open(os.fspath(path), metadata_errors="ignore")
    except FileNotFoundError as error:
        raise VideoRejected("unreadable", f"cannot read {os.fspath(path)}: {error.strerror}") from error
    except PermissionError as error:
        raise VideoRejected("unreadable", f"cannot read {os.fspath(path)}: {error.strerror}") from error
    except av.FFmpegError as error:
        raise VideoRejected("corrupt", f"the video cannot be opened: {error}") from error


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        container.close()
        raise VideoRejected("unsupported_format", "the file has no video stream")
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width * height > MAX_FRAME_PIXELS:
        container.close()
        raise VideoRejected("too_large", f"frames of {width} x {height} are larger than 4K UHD")
    stream.thread_type = "AUTO"  # FFmpeg's own threads, frame by frame and slice by slice
    return stream


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """The duration, size and frame rate of a video (raises :class:`VideoRejected`)."""
    container = _open(path)
    try:
        stream = _video_stream(container)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(duration, int(stream.codec_context.width), int(stream.codec_context.height), rate)
    finally:
        container.close()


def stream_rate(stream: Any) -> float:
    """A stream's frames a second (25 when the container does not say)."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def _small_grey(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="gray", width=32, height=18).astype(np.float32)


def sampled_frames(
    path: str | os.PathLike[str], *, fps: float = DEFAULT_FPS, scenes: bool = False, start_s: float = 0.0
) -> Iterator[SampledFrame]:
    """Frames of a video, ``fps`` a second (and at each new shot with ``scenes``), from ``start_s`` on.

    Raises :class:`VideoRejected` when the video cannot be opened; a stream that breaks off part way ends the
    frames there (what came before is kept: a truncated upload is still partly useful).
    """
    import av

    if fps <= 0:
        raise ValueError("fps must be positive")
    container = _open(path)
    try:
        stream = _video_stream(container)
        if fps <= stream_rate(stream) / 4:
            # Frames no other frame refers to (most B-frames) are not even decoded when a sample in four or
            # fewer is kept: the next reference frame is at most a few hundredths of a second later.
            stream.codec_context.skip_frame = "NONREF"
        step = 1.0 / fps
        next_time = start_s
        previous: np.ndarray | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                time = float(frame.time)
                if time < start_s:
                    continue
                cut = False
                if scenes:
                    grey = _small_grey(frame)
                    cut = previous is not None and float(np.abs(grey - previous).mean()) > CUT_LEVEL
                    previous = grey
                if time + 1e-6 >= next_time or cut:
                    yield SampledFrame(time, frame.to_ndarray(format="rgb24"))
                    next_time = max(next_time + step, time + step / 2) if not cut else time + step
        except av.FFmpegError:
            return  # a truncated or damaged stream: the frames decoded so far stand
    finally:
        container.close()


def frame_at(path: str | os.PathLike[str], time: float) -> np.ndarray:
    """The frame shown at ``time`` seconds (RGB): the stream is sought to the keyframe before it and decoded
    forward (raises :class:`VideoRejected` when the video or that frame cannot be read)."""
    import av

    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream.time_base is not None and time > 0:
            try:
                container.seek(int(time / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        last = None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if float(frame.time) + 1e-6 >= time:
                    return frame.to_ndarray(format="rgb24")
                last = frame
        except av.FFmpegError as error:
            raise VideoRejected("corrupt", f"the frame at {time:.2f} s cannot be decoded: {error}") from error
        if last is not None:
            return last.to_ndarray(format="rgb24")
        raise VideoRejected("corrupt", f"the video has no frame at {time:.2f} s")
    finally:
        container.close()
