"""Per-face quality: a score in [0, 1] with named reasons, from the landmarks and the aligned crop."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facesearch.vision.types import DetectedFace

# Below these a face is flagged. Inter-eye distance in pixels of the original image; Laplacian variance on
# the 112-pixel aligned grey crop; yaw as the nose's offset from the eyes' midpoint in inter-eye distances.
MIN_INTER_EYE_PX = 20.0  # where lfw-dev FNIR starts to rise by a third (docs/accuracy.md, "Small faces")
MIN_SHARPNESS = 40.0
MAX_YAW = 0.45
MAX_ROLL_DEG = 35.0
MIN_DETECTOR_SCORE = 0.7
# Where each factor of the score reaches 1 (a comfortable face); between the flag and this, a milder reason.
GOOD_INTER_EYE_PX = 2.0 * MIN_INTER_EYE_PX
GOOD_SHARPNESS = 2.0 * MIN_SHARPNESS
GOOD_YAW = 0.2
GOOD_ROLL_DEG = 20.0
GOOD_DETECTOR_SCORE = 0.9

POOR_REASONS = ("too_small", "blurred", "extreme_pose", "low_confidence")
"""Reasons that make a face poor: probes with one are warned about, and set aside in evaluations."""
MILD_REASONS = ("small", "soft_focus", "turned", "tilted", "uncertain_detection")
"""Reasons a face's score is below 1 without it being poor: each names a factor short of comfortable."""


def is_poor(reasons: tuple[str, ...] | list[str]) -> bool:
    """True when one of ``reasons`` makes the face poor (see :data:`POOR_REASONS`)."""
    return any(reason in POOR_REASONS for reason in reasons)


@dataclass(frozen=True)
class FaceQuality:
    """Quality measurements of one face and the reasons it falls short, if any: every score below 1 has at least
    one (poor reasons, :data:`POOR_REASONS`, or milder ones, :data:`MILD_REASONS`)."""

    score: float
    inter_eye_px: float
    sharpness: float
    yaw: float
    roll_deg: float
    reasons: tuple[str, ...] = field(default=())


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high``, linear in between."""
    if high == low:
        return 1.0
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def assess_quality(face: DetectedFace, aligned: np.ndarray) -> FaceQuality:
    """Measure size, sharpness, pose and detector confidence of a face; see the module constants for limits.

    The score multiplies one factor per measurement, each rising from 0 to 1 between a hopeless value and a
    comfortable one, so a face is only as good as its weakest aspect.
    """
    landmarks = face.landmarks
    if landmarks is None:
        inter_eye = face.bbox[2] * 0.4
        yaw = roll = 0.0
    else:
        left_eye, right_eye, nose = landmarks[0], landmarks[1], landmarks[2]
        eye_vector = right_eye - left_eye
        inter_eye = float(np.linalg.norm(eye_vector))
        roll = float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0])))
        # Project the nose onto the eye line: a frontal face has the nose under the eyes' midpoint.
        midpoint = (left_eye + right_eye) / 2.0
        yaw = float(np.dot(nose - midpoint, eye_vector) / max(inter_eye**2, 1e-6))
    grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY) if aligned.ndim == 3 else aligned
    if grey.shape[0] != 112:
        grey = cv2.resize(grey, (112, 112), interpolation=cv2.INTER_AREA)
    # The border of an aligned crop is background; the central part is the face whose focus matters.
    sharpness = float(cv2.Laplacian(grey[16:96, 16:96], cv2.CV_64F).var())

    # Every factor short of 1 names itself: a poor reason past the flag limit, a mild one before it.
    reasons = []
    if inter_eye < MIN_INTER_EYE_PX:
        reasons.append("too_small")
    elif inter_eye < GOOD_INTER_EYE_PX:
        reasons.append("small")
    if sharpness < MIN_SHARPNESS:
        reasons.append("blurred")
    elif sharpness < GOOD_SHARPNESS:
        reasons.append("soft_focus")
    if abs(yaw) > MAX_YAW or abs(roll) > MAX_ROLL_DEG:
        reasons.append("extreme_pose")
    else:
        if abs(yaw) > GOOD_YAW:
            reasons.append("turned")
        if abs(roll) > GOOD_ROLL_DEG:
            reasons.append("tilted")
    if face.score < MIN_DETECTOR_SCORE:
        reasons.append("low_confidence")
    elif face.score < GOOD_DETECTOR_SCORE:
        reasons.append("uncertain_detection")
    score = (
        _ramp(inter_eye, 8.0, GOOD_INTER_EYE_PX)
        * _ramp(sharpness, 5.0, GOOD_SHARPNESS)
        * _ramp(-abs(yaw), -0.7, -GOOD_YAW)
        * _ramp(-abs(roll), -60.0, -GOOD_ROLL_DEG)
        * _ramp(face.score, 0.3, GOOD_DETECTOR_SCORE)
    )
    return FaceQuality(
        score=round(score, 4),
        inter_eye_px=round(inter_eye, 2),
        sharpness=round(sharpness, 2),
        yaw=round(yaw, 4),
        roll_deg=round(roll, 2),
        reasons=tuple(reasons),
    )
