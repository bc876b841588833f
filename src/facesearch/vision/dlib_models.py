"""dlib's always-available models (from PyPI): HOG face detector, 5-point shape predictor, face chips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facesearch.vision.align import ARCFACE_TEMPLATE_112, similarity_transform
from facesearch.vision.types import DetectedFace

DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25


def dlib_model_paths() -> tuple[Path, Path]:
    """Paths of dlib's 5-point shape predictor and ResNet embedder shipped by ``face_recognition_models``.

    The package is located without importing it: its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer provides.
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face_recognition_models package is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return (
        folder / "shape_predictor_5_face_landmarks.dat",
        folder / "dlib_face_recognition_resnet_model_v1.dat",
    )


def _standard_landmarks(points: np.ndarray) -> np.ndarray:
    """Map dlib's 5 points (two corners of each eye, base of the nose) to our five standard landmarks.

    dlib's model gives no mouth corners; they are placed where the ArcFace template puts them relative to
    the eyes and nose, so quality and pose checks work the same for every pack.
    """
    eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    left_eye, right_eye = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    nose = points[4]
    known = np.stack([left_eye, right_eye, nose])
    to_image = similarity_transform(ARCFACE_TEMPLATE_112[:3], known)
    mouth = ARCFACE_TEMPLATE_112[3:] @ to_image[:, :2].T + to_image[:, 2]
    return np.vstack([known, mouth]).astype(np.float32)


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector followed by the 5-point shape predictor.

    ``upsample`` doubles the image that many times before detection (1 finds faces down to about 40 px,
    as the ``face_recognition`` library does by default). Images whose long side exceeds ``max_side`` are
    reduced first, since HOG cost grows with the pixel count.
    """

    name = "dlib_hog"

    def __init__(self, shape_predictor_path: Path, *, upsample: int = 1, max_side: int = 1600) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(shape_predictor_path))
        self.upsample = upsample
        self.max_side = max_side

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Find faces in an RGB uint8 image; boxes and landmarks are in the image's own pixel coordinates."""
        import cv2

        scale = 1.0
        work = rgb
        long_side = max(rgb.shape[:2])
        if long_side > self.max_side:
            scale = self.max_side / long_side
            work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        work = np.ascontiguousarray(work)
        rects, scores, _ = self._detector.run(work, self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._predictor(work, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) / scale
            x, y = rect.left() / scale, rect.top() / scale
            w, h = rect.width() / scale, rect.height() / scale
            faces.append(
                DetectedFace(
                    bbox=(float(x), float(y), float(w), float(h)),
                    # The SVM margin is unbounded; a logistic squashes it into [0, 1] (margin 0 -> 0.5).
                    score=float(1.0 / (1.0 + math.exp(-2.0 * score))),
                    landmarks=_standard_landmarks(points),
                    raw_landmarks=points,
                )
            )
        return faces


class DlibChipAligner:
    """Cuts the 150x150 face chip that dlib's ResNet was trained on, from the shape predictor's points."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib

    def align(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """Return the dlib face chip (150x150 RGB uint8) for a face found by :class:`DlibHogDetector`."""
        dlib = self._dlib
        if face.raw_landmarks is None:
            raise ValueError("dlib alignment needs the shape predictor's points")
        x, y, w, h = face.bbox
        rect = dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        points = dlib.points([dlib.point(round(px), round(py)) for px, py in face.raw_landmarks])
        shape = dlib.full_object_detection(rect, points)
        return np.asarray(dlib.get_face_chip(np.ascontiguousarray(rgb), shape, DLIB_CHIP_SIZE, DLIB_CHIP_PADDING))
