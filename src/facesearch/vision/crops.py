"""Face crops, cut from the stored image on request (never stored, so erasing the face leaves none behind)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from facesearch.vision.image import ImageRejected, load_image, read_image_bytes

CROP_SIZE = 256
GRID_CROP_SIZE = 192  # a crop shown in a grid of candidates (128 CSS pixels, sharp on a 1.5x screen)
MARGIN = 0.25  # of the face box's size on each side: the hair and chin a reviewer needs to see
IMAGE_SIZE = 2048  # the longest side of a whole source photo shown on demand
PREVIEW_SIZE = 960  # the longest side of a probe photo shown with its faces boxed


def face_crop_jpeg(
    image_path: str, bbox: tuple[float, float, float, float], *, max_pixels: int, size: int = CROP_SIZE
) -> bytes:
    """A JPEG of the face at ``bbox`` (x, y, w, h) with a margin, at most ``size`` pixels a side.

    Raises :class:`ImageRejected` when the image can no longer be read.
    """
    return crop_jpeg(load_image(read_image_bytes(image_path), max_pixels=max_pixels), bbox, size=size)


def crop_jpeg(rgb: np.ndarray, bbox: Sequence[float], *, size: int = CROP_SIZE) -> bytes:
    """A JPEG of the face at ``bbox`` (x, y, w, h) of a decoded picture, with a margin, at most ``size``
    pixels a side. Raises :class:`ImageRejected` when the box lies outside the picture."""
    x, y, w, h = (float(v) for v in bbox)
    height, width = rgb.shape[:2]
    left = int(max(0, np.floor(x - MARGIN * w)))
    top = int(max(0, np.floor(y - MARGIN * h)))
    right = int(min(width, np.ceil(x + w + MARGIN * w)))
    bottom = int(min(height, np.ceil(y + h + MARGIN * h)))
    if right <= left or bottom <= top:
        raise ImageRejected("corrupt", "the face box lies outside the image")
    crop = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
    crop.thumbnail((size, size))
    return _jpeg(crop)


def preview_jpeg(rgb: np.ndarray, *, size: int = PREVIEW_SIZE) -> bytes:
    """A decoded picture as a JPEG at most ``size`` pixels a side (a probe shown beside its results)."""
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    picture.thumbnail((size, size))
    return _jpeg(picture)


def _jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def image_jpeg(image_path: str, *, max_pixels: int, size: int = IMAGE_SIZE) -> bytes:
    """The whole image as a JPEG, at most ``size`` pixels a side: decoded and re-encoded, so that what is
    sent is always a plain picture, whatever the stored file holds besides (metadata, other frames).

    Raises :class:`ImageRejected` when the image can no longer be read.
    """
    rgb = load_image(read_image_bytes(image_path), max_pixels=max_pixels)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    picture.thumbnail((size, size))
    return _jpeg(picture)
