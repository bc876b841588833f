"""Plain value types shared by detectors, aligners, quality checks and embedders."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Order of the five landmarks everywhere in facesearch (image coordinates, x to the right):
# the eye on the image's left, the eye on the image's right, the nose tip, the mouth corner on the
# image's left, the mouth corner on the image's right. This is the order of the ArcFace template.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@dataclass(frozen=True)
class DetectedFace:
    """One face found by a detector.

    ``bbox`` is ``(x, y, w, h)`` in pixels of the decoded image; ``landmarks`` is a (5, 2) float array in
    :data:`LANDMARK_NAMES` order, or ``None`` when the detector gives none; ``score`` is the detector's
    confidence in [0, 1].
    ``raw_landmarks`` keeps a detector's own points when they are not the standard five.
    """

    bbox: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = field(default=None, compare=False)
    # The detector's own landmark points when they differ from the five above (dlib's shape predictor gives
    # eye corners and the base of the nose); its aligner needs them as they are.
    raw_landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def area(self) -> float:
        """Area of the bounding box in square pixels."""
        return max(self.bbox[2], 0.0) * max(self.bbox[3], 0.0)

    @property
    def inter_eye_distance(self) -> float | None:
        """Distance in pixels between the two eye landmarks, or ``None`` without landmarks."""
        if self.landmarks is None:
            return None
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))
