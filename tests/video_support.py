"""Test videos made from real photos: shots of one or two people whose photos drift and zoom across the frame,
cut one after the other, with the truth of who is where and when (for tests and benchmarks/video.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    """``seconds`` of video showing ``people`` (their photos, side by side, left to right)."""

    seconds: float
    people: tuple[Path, ...]


@dataclass(frozen=True)
class Appearance:
    """Who was shown when: a person (the photo's folder name), from ``start`` to ``end`` seconds, and the
    horizontal band of the frame they were in (to tell two people of one shot apart)."""

    person: str
    start: float
    end: float
    left: float
    right: float


def make_video(
    path: Path, shots: list[Shot], *, width: int = 1280, height: int = 720, fps: int = 25, codec: str = "libx264"
) -> list[Appearance]:
    """Write the shots as a video (H.264 in MP4 unless told otherwise); who appears when and where."""
    import av

    truth: list[Appearance] = []
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if codec == "libx264":
        stream.options = {"preset": "veryfast", "crf": "23"}
    started = 0.0
    rng = np.random.default_rng(len(shots))
    for number, shot in enumerate(shots):
        frames = round(shot.seconds * fps)
        band = width / max(1, len(shot.people))
        side = int(min(band * 0.8, height * 0.75))
        photos = [
            np.asarray(Image.open(p).convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
            for p in shot.people
        ]
        background = np.array([40 + 30 * (number % 5), 60, 90 + 20 * (number % 3)], dtype=np.uint8)
        drift = rng.uniform(-0.15, 0.15) * band
        for person, photo in enumerate(shot.people):
            truth.append(
                Appearance(photo.parent.name, started, started + shot.seconds, person * band, (person + 1) * band)
            )
        for frame_number in range(frames):
            progress = frame_number / max(1, frames - 1)
            canvas = np.empty((height, width, 3), dtype=np.uint8)
            canvas[:] = background
            zoom = 1.0 + 0.15 * progress
            size = int(side * zoom)
            for person, photo in enumerate(photos):
                shown = np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BILINEAR))
                left = int(person * band + (band - size) / 2 + drift * (progress - 0.5))
                top = int((height - size) / 2)
                x0, y0 = max(0, left), max(0, top)
                x1, y1 = min(width, left + size), min(height, top + size)
                canvas[y0:y1, x0:x1] = shown[y0 - top : y1 - top, x0 - left : x1 - left]
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        started += shot.seconds
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return truth


def person_at(truth: list[Appearance], time: float, centre_x: float) -> str | None:
    """Who was shown at ``time`` around ``centre_x`` (``None``: nobody)."""
    for appearance in truth:
        if appearance.start <= time < appearance.end and appearance.left <= centre_x < appearance.right:
            return appearance.person
    return None
