"""Perceptual fingerprints of whole pictures: PDQ hashes, for finding the same picture again after it was
re-encoded, resized, mirrored or framed.

PDQ (Meta's open standard for near-duplicate matching, through ``pdqhash``) turns a picture into 256 bits;
two copies of one picture differ by a few bits after re-encoding or resizing, two different pictures by about
128. Its authors match at a Hamming distance of 31 or less (:data:`MATCH_DISTANCE`). A hash is computed on
the picture reduced to at most :data:`HASH_SIDE` pixels a side: PDQ itself looks at 64 x 64 blocks, and at 128
pixels a hash costs 0.25 ms instead of 1.3 ms for a 250-pixel LFW photo (measured: the two hashes differ by a
median of 4 bits), which kept ingest within a few percent of its speed without hashes.

PDQ does not survive cropping or added borders (a 10% crop moves it as far as a different picture): the
probe's borders are trimmed here (:func:`trim_borders`) and crops are matched by aligning the two pictures
(:mod:`facesearch.vision.near_duplicates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

HASH_BYTES = 32
"""A PDQ hash: 256 bits."""

MATCH_DISTANCE = 31
"""PDQ's authors' distance for "the same picture": at most 31 of the 256 bits differ."""

HASH_SIDE = 128
"""Pictures are reduced to at most this many pixels a side before hashing (PDQ looks at 64 x 64 blocks)."""


@dataclass(frozen=True)
class Fingerprint:
    """A picture's PDQ hash (32 bytes) and PDQ's quality of it (0-100: below 50, a flat or tiny picture whose
    hash says little)."""

    pdq: bytes
    quality: int


TRIM_SIDE = 512
"""Borders are looked for on the picture reduced to this size: finer than the hash's, so that a cut lands
within a pixel or two of the frame's edge."""


def reduced(rgb: np.ndarray, side: int = HASH_SIDE) -> np.ndarray:
    """``rgb`` shrunk (area averaging) so that its longer side is at most ``side``; as it is when smaller."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def fingerprint(rgb: np.ndarray) -> Fingerprint:
    """The PDQ hash of an upright RGB picture (``uint8``, H x W x 3)."""
    import pdqhash

    bits, quality = pdqhash.compute(reduced(rgb))
    return Fingerprint(np.packbits(bits.astype(np.uint8)).tobytes(), int(quality))


def mirrored(rgb: np.ndarray) -> np.ndarray:
    """The picture flipped left to right (a mirrored repost)."""
    return np.ascontiguousarray(rgb[:, ::-1])


def hamming(first: bytes, second: bytes) -> int:
    """How many of the bits of two hashes differ."""
    both = np.frombuffer(first, dtype=np.uint8) ^ np.frombuffer(second, dtype=np.uint8)
    return int(np.unpackbits(both).sum())


def trim_borders(rgb: np.ndarray, *, tolerance: float = 12.0, min_keep: float = 0.4) -> np.ndarray:
    """The picture without the plain bands around it (a frame, letterboxing, a screenshot's margins).

    A band is a run of rows or columns, from an edge inwards, whose pixels stay within ``tolerance`` grey
    levels of that edge's own colour; nothing is trimmed if less than ``min_keep`` of either side would stay.
    """
    grey = cv2.cvtColor(reduced(rgb, TRIM_SIDE), cv2.COLOR_RGB2GRAY).astype(np.float32)
    height, width = grey.shape
    if height < 8 or width < 8:
        return rgb

    def plain(lines: np.ndarray, colour: float) -> np.ndarray:
        return np.abs(lines - colour).max(axis=1) <= tolerance

    def run(flags: np.ndarray) -> int:
        return int(np.argmin(flags)) if not flags.all() else len(flags)

    top = run(plain(grey, float(np.median(grey[0]))))
    bottom = run(plain(grey[::-1], float(np.median(grey[-1]))))
    left = run(plain(grey.T, float(np.median(grey[:, 0]))))
    right = run(plain(grey.T[::-1], float(np.median(grey[:, -1]))))
    if height - top - bottom < min_keep * height or width - left - right < min_keep * width:
        return rgb
    if top == bottom == left == right == 0:
        return rgb
    scale_y, scale_x = rgb.shape[0] / height, rgb.shape[1] / width
    y0, y1 = round(top * scale_y), rgb.shape[0] - round(bottom * scale_y)
    x0, x1 = round(left * scale_x), rgb.shape[1] - round(right * scale_x)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def probe_fingerprints(rgb: np.ndarray) -> dict[str, Fingerprint]:
    """The hashes a probe is looked up with: as it is, mirrored, and (when it has plain borders) trimmed and
    trimmed-mirrored; by the name of the variant."""
    variants = {"as_is": rgb, "mirrored": mirrored(rgb)}
    trimmed = trim_borders(rgb)
    if trimmed.shape != rgb.shape:
        variants["trimmed"] = trimmed
        variants["trimmed_mirrored"] = mirrored(trimmed)
    return {name: fingerprint(picture) for name, picture in variants.items()}
