"""Is a stored picture the same picture as a probe, cropped, framed, mirrored, rescaled or written over?

Whole-picture hashes (:mod:`facesearch.vision.fingerprints`) find re-encodes and resizes, but a crop or a
frame moves a PDQ hash as far as a different picture. Here the two pictures are aligned instead: ORB
keypoints matched between them, a similarity transform (scale, rotation, shift) fitted with RANSAC, the
stored picture warped onto the probe, and the part both show compared in two ways:

- ``distance``: the PDQ Hamming distance between the probe and the warped stored picture over that part (what
  a fact-checker's tools report; a few bits for a crop or a frame, 40-80 under a caption band);
- ``agreement``: the share of 8 x 8 blocks of that part (at 64 x 64) whose pixels correlate (NCC > 0.8) or are
  both plain. Copies agree on 0.66 or more of their blocks even under a caption; different photographs, even
  of the same person at the same event, on 0.3 or less.

Two photographs of one scene taken a moment apart align too (the background is the same). Most differ in too
many blocks to pass, but frames of one burst, where only a mouth or a hand moved, can: on lfw-dev two such
pairs were taken for copies (benchmarks/provenance.py; docs/provenance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.vision.fingerprints import fingerprint, hamming, mirrored

FEATURE_SIDE = 512
"""Pictures are compared at this size (longer side): enough keypoints, bounded cost (~5 ms a pair)."""

MIN_FEATURE_SIDE = 256
"""Smaller pictures are enlarged to this size first: ORB finds too few keypoints in a 60-pixel thumbnail."""

MIN_INLIERS = 10
"""Keypoint matches that must agree on one transform before the pictures count as aligned."""

MIN_AGREEMENT = 0.5
"""Share of agreeing blocks above which two aligned pictures are the same picture (see the module's note)."""

MIN_OVERLAP = 0.2
"""The part both pictures show must cover at least this share of the probe."""


@dataclass(frozen=True)
class Alignment:
    """How a stored picture lines up with the probe: keypoints that agree, the PDQ distance and block
    agreement over the part both show, that part's share of the probe, and whether the probe is mirrored."""

    inliers: int
    distance: int
    agreement: float
    overlap: float
    mirrored: bool

    @property
    def same_picture(self) -> bool:
        """Whether the alignment shows one picture (see :data:`MIN_AGREEMENT`)."""
        return self.inliers >= MIN_INLIERS and self.agreement >= MIN_AGREEMENT


@dataclass
class _Features:
    grey: np.ndarray
    scale: float  # of the grey picture against the original
    keypoints: np.ndarray  # (n, 2) in original pixels
    descriptors: np.ndarray | None


def _features(rgb: np.ndarray) -> _Features:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    longer = max(grey.shape)
    scale = FEATURE_SIDE / longer if longer > FEATURE_SIDE else max(1.0, MIN_FEATURE_SIDE / longer)
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=interpolation)
    keypoints, descriptors = cv2.ORB_create(1000).detectAndCompute(grey, None)  # type: ignore[attr-defined]
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2) / scale
    return _Features(grey, scale, points, descriptors)


def _blocks(grey: np.ndarray) -> np.ndarray:
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    blocks = small.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    return blocks - blocks.mean(axis=1, keepdims=True)


def block_agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Share of the 64 blocks (8 x 8 at 64 x 64) of two grey pictures of one size that correlate or are plain."""
    a, b = _blocks(first), _blocks(second)
    plain = (np.abs(a).mean(axis=1) < 2) & (np.abs(b).mean(axis=1) < 2)
    ncc = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1) + 1e-6)
    return float(np.mean((ncc > 0.8) | plain))


def _align(probe_features: _Features, stored_features: _Features) -> tuple[int, np.ndarray] | None:
    if probe_features.descriptors is None or stored_features.descriptors is None:
        return None
    if len(probe_features.keypoints) < MIN_INLIERS or len(stored_features.keypoints) < MIN_INLIERS:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(probe_features.descriptors, stored_features.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    to_points = probe_features.keypoints[[m.queryIdx for m in good]]
    from_points = stored_features.keypoints[[m.trainIdx for m in good]]
    transform, inliers = cv2.estimateAffinePartial2D(
        from_points, to_points, ransacReprojThreshold=3.0 / probe_features.scale, maxIters=2000
    )
    if transform is None or inliers is None:
        return None
    return int(inliers.sum()), transform


def _compare(probe: np.ndarray, stored: np.ndarray, transform: np.ndarray) -> tuple[int, float, float] | None:
    height, width = probe.shape[:2]
    warped = cv2.warpAffine(stored, transform, (width, height), flags=cv2.INTER_AREA)
    inside = cv2.warpAffine(np.full(stored.shape[:2], 255, np.uint8), transform, (width, height)) > 0
    rows, columns = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    if not len(rows) or not len(columns):
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    overlap = (y1 - y0) * (x1 - x0) / (height * width)
    if overlap < MIN_OVERLAP:
        return None
    shown, copy = probe[y0:y1, x0:x1], warped[y0:y1, x0:x1]
    distance = hamming(fingerprint(shown).pdq, fingerprint(copy).pdq)
    agreement = block_agreement(
        cv2.cvtColor(np.ascontiguousarray(shown), cv2.COLOR_RGB2GRAY),
        cv2.cvtColor(np.ascontiguousarray(copy), cv2.COLOR_RGB2GRAY),
    )
    return distance, agreement, float(overlap)


class ProbePicture:
    """A probe prepared once (keypoints of it and of its mirror image) for comparing with many stored pictures."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = np.ascontiguousarray(rgb)
        self.flipped = mirrored(self.rgb)
        self._features = _features(self.rgb)
        self._flipped_features = _features(self.flipped)

    def align(self, stored: np.ndarray) -> Alignment | None:
        """The best alignment of ``stored`` with the probe, as it is or mirrored; ``None`` if neither lines up."""
        stored = np.ascontiguousarray(stored)
        stored_features = _features(stored)
        best: Alignment | None = None
        for is_mirrored, picture, features in (
            (False, self.rgb, self._features),
            (True, self.flipped, self._flipped_features),
        ):
            found = _align(features, stored_features)
            if found is None:
                continue
            inliers, transform = found
            compared = _compare(picture, stored, transform)
            if compared is None:
                continue
            candidate = Alignment(inliers, compared[0], round(compared[1], 3), round(compared[2], 3), is_mirrored)
            if best is None or (candidate.agreement, -candidate.distance) > (best.agreement, -best.distance):
                best = candidate
            if best.same_picture and not is_mirrored:
                break  # the picture as it is lines up: no need to try its mirror image
        return best
