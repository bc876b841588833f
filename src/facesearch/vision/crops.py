"""Face crops, cut from the stored image on request (never stored, so erasing the face leaves none behind)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from facesearch.vision.image import ImageRejected, decode_upright, load_image, read_image_bytes, to_rgb_image
from facesearch.vision.video import frame_at

CROP_SIZE = 256
GRID_CROP_SIZE = 192  # a crop shown in a grid of candidates (128 CSS pixels, sharp on a 1.5x screen)
MARGIN = 0.25  # of the face box's size on each side: the hair and chin a reviewer needs to see
IMAGE_SIZE = 2048  # the longest side of a whole source photo shown on demand
PREVIEW_SIZE = 960  # the longest side of a probe photo shown with its faces boxed


def face_crop_jpeg(
    image_path: str,
    bbox: tuple[float, float, float, float],
    *,
    max_pixels: int,
    size: int = CROP_SIZE,
    frame_time: float | None = None,
) -> bytes:
    """A JPEG of the face at ``bbox`` (x, y, w, h) with a margin, at most ``size`` pixels a side; of a video,
    from its frame at ``frame_time`` seconds.

    A JPEG is decoded only as large as the crop needs (its decoder's 1/2 to 1/8 reduction): a face in a large
    photo is cut for a fraction of the cost of decoding the whole photo. Raises :class:`ImageRejected` when
    the image (or the video's frame) can no longer be read.
    """
    if frame_time is not None:
        return crop_jpeg(frame_at(image_path, frame_time), bbox, size=size)
    x, y, w, h = (float(v) for v in bbox)
    region = max(w, h) * (1 + 2 * MARGIN)
    at_least = min(1.0, size / region) if region > 0 else 1.0

    def cut(picture: Image.Image, scale: float) -> bytes:
        box = _region(picture.size, (x * scale, y * scale, w * scale, h * scale))
        crop = to_rgb_image(picture.crop(box))
        crop.thumbnail((size, size))
        return _jpeg(crop)

    return decode_upright(read_image_bytes(image_path), max_pixels=max_pixels, convert=cut, scale_at_least=at_least)


def _region(size: tuple[int, int], bbox: Sequence[float]) -> tuple[int, int, int, int]:
    """The face box (x, y, w, h) with its margin, clipped to a picture of ``size``, as (left, top, right,
    bottom); raises :class:`ImageRejected` when nothing of it lies inside."""
    x, y, w, h = bbox
    width, height = size
    left = int(max(0, np.floor(x - MARGIN * w)))
    top = int(max(0, np.floor(y - MARGIN * h)))
    right = int(min(width, np.ceil(x + w + MARGIN * w)))
    bottom = int(min(height, np.ceil(y + h + MARGIN * h)))
    if right <= left or bottom <= top:
        raise ImageRejected("corrupt", "the face box lies outside the image")
    return left, top, right, bottom


def crop_jpeg(rgb: np.ndarray, bbox: Sequence[float], *, size: int = CROP_SIZE) -> bytes:
    """A JPEG of the face at ``bbox`` (x, y, w, h) of a decoded picture, with a margin, at most ``size``
    pixels a side. Raises :class:`ImageRejected` when the box lies outside the picture."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = _region((width, height), [float(v) for v in bbox])
    region = rgb[top:bottom, left:right]
    scale = size / max(region.shape[:2])
    if scale < 1:
        # OpenCV's area resampling and encoder: a group photo's 25 crops in 15 ms instead of Pillow's 21.
        target = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        region = cv2.resize(region, target, interpolation=cv2.INTER_AREA)
    encoded, data = cv2.imencode(".jpg", np.ascontiguousarray(region[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not encoded:  # pragma: no cover - OpenCV encodes any 8-bit picture
        raise ImageRejected("corrupt", "the face could not be encoded")
    return bytes(data.tobytes())


def crops_jpeg(rgb: np.ndarray, bboxes: Sequence[Sequence[float]], *, size: int = CROP_SIZE) -> list[bytes | None]:
    """The crops of several faces of one decoded picture (as :func:`crop_jpeg`, ``None`` for a box outside
    it)."""
    crops: list[bytes | None] = []
    for bbox in bboxes:
        try:
            crops.append(crop_jpeg(rgb, bbox, size=size))
        except ImageRejected:
            crops.append(None)
    return crops


def preview_jpeg(rgb: np.ndarray, *, size: int = PREVIEW_SIZE) -> bytes:
    """A decoded picture as a JPEG at most ``size`` pixels a side (a probe shown beside its results)."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    if scale < 1:
        # OpenCV's area resampling: as sharp as Pillow's thumbnail, a quarter of its time on a large photo.
        rgb = cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    return _jpeg(Image.fromarray(np.ascontiguousarray(rgb)))


def _jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def image_jpeg(image_path: str, *, max_pixels: int, size: int = IMAGE_SIZE, frame_time: float | None = None) -> bytes:
    """The whole image as a JPEG, at most ``size`` pixels a side: decoded and re-encoded, so that what is
    sent is always a plain picture, whatever the stored file holds besides (metadata, other frames); of a
    video, its frame at ``frame_time`` seconds (a frame grab).

    Raises :class:`ImageRejected` when the image can no longer be read.
    """
    if frame_time is not None:
        rgb = frame_at(image_path, frame_time)
    else:
        rgb = load_image(read_image_bytes(image_path), max_pixels=max_pixels)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    picture.thumbnail((size, size))
    return _jpeg(picture)
