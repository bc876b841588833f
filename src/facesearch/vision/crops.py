"""Face crops, cut from the stored image on request (never stored, so erasing the face leaves none behind)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from facesearch.vision.image import ImageRejected, load_image, read_image_bytes

CROP_SIZE = 256
MARGIN = 0.25  # of the face box's size on each side: the hair and chin a reviewer needs to see
IMAGE_SIZE = 2048  # the longest side of a whole source photo shown on demand


def face_crop_jpeg(image_path: str, bbox: tuple[float, float, float, float], *, max_pixels: int) -> bytes:
    """A JPEG of the face at ``bbox`` (x, y, w, h) with a margin, at most :data:`CROP_SIZE` pixels a side.

    Raises :class:`ImageRejected` when the image can no longer be read.
    """
    rgb = load_image(read_image_bytes(image_path), max_pixels=max_pixels)
    x, y, w, h = (float(v) for v in bbox)
    height, width = rgb.shape[:2]
    left = int(max(0, np.floor(x - MARGIN * w)))
    top = int(max(0, np.floor(y - MARGIN * h)))
    right = int(min(width, np.ceil(x + w + MARGIN * w)))
    bottom = int(min(height, np.ceil(y + h + MARGIN * h)))
    if right <= left or bottom <= top:
        raise ImageRejected("corrupt", "the face box lies outside the image")
    crop = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
    crop.thumbnail((CROP_SIZE, CROP_SIZE))
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def image_jpeg(image_path: str, *, max_pixels: int, size: int = IMAGE_SIZE) -> bytes:
    """The whole image as a JPEG, at most ``size`` pixels a side: decoded and re-encoded, so that what is
    sent is always a plain picture, whatever the stored file holds besides (metadata, other frames).

    Raises :class:`ImageRejected` when the image can no longer be read.
    """
    rgb = load_image(read_image_bytes(image_path), max_pixels=max_pixels)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
