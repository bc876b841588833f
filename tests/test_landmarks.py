"""Refined landmarks (vision/landmarks.py): geometry on synthetic points, then on real photos and models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesearch.vision.align import ARCFACE_TEMPLATE_112, similarity_transform
from facesearch.vision.landmarks import (
    DLIB_POINTS_112,
    YUNET_TO_TEMPLATE_OFFSETS,
    LandmarkRefiner,
    bias_corrected,
    dlib_box_from_eyes,
    joint_alignment,
    mirror_averaged,
)
from facesearch.vision.types import DetectedFace

from .conftest import SHARED_MODELS, require_shared


def _placed(points: np.ndarray, angle_degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.radians(angle_degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.asarray(points @ rotation.T + np.array(shift))


def _mirrored_face(points: np.ndarray, width: int) -> DetectedFace:
    """The detection a detector would report for ``points`` in the mirrored image (left and right swapped)."""
    mirrored = points.copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    return DetectedFace((0.0, 0.0, 10.0, 10.0), 0.9, landmarks=mirrored[[1, 0, 2, 4, 3]])


def test_mirror_averaging_averages_with_the_twin_and_ignores_other_faces() -> None:
    width = 300
    points = _placed(ARCFACE_TEMPLATE_112, 5, 1.4, (60, 40))
    twin_points = points + np.array([[2.0, -1.0], [0.0, 1.0], [-2.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    elsewhere = _placed(ARCFACE_TEMPLATE_112, 0, 1.0, (180, 150))
    found = [_mirrored_face(elsewhere, width), _mirrored_face(twin_points, width)]
    np.testing.assert_allclose(mirror_averaged(points, found, width), (points + twin_points) / 2, atol=1e-9)
    # No twin close enough (only another face): the points are kept as they are.
    np.testing.assert_allclose(mirror_averaged(points, found[:1], width), points)
    np.testing.assert_allclose(mirror_averaged(points, [], width), points)


def test_bias_correction_moves_points_by_the_offsets_in_the_faces_own_frame() -> None:
    np.testing.assert_allclose(
        bias_corrected(ARCFACE_TEMPLATE_112), ARCFACE_TEMPLATE_112 + YUNET_TO_TEMPLATE_OFFSETS, atol=1e-9
    )
    # A face twice as large and turned by 30 degrees gets the offsets scaled and turned with it.
    placed = _placed(ARCFACE_TEMPLATE_112, 30, 2.0, (15, 25))
    expected = _placed(ARCFACE_TEMPLATE_112 + YUNET_TO_TEMPLATE_OFFSETS, 30, 2.0, (15, 25))
    np.testing.assert_allclose(bias_corrected(placed), expected, atol=1e-6)


def test_joint_alignment_maps_both_point_sets_onto_their_templates() -> None:
    placed = _placed(ARCFACE_TEMPLATE_112, -12, 1.7, (40, 70))
    dlib = _placed(DLIB_POINTS_112, -12, 1.7, (40, 70))
    for size in (112, 224):
        matrix = joint_alignment(placed, dlib, size)
        np.testing.assert_allclose(
            placed @ matrix[:, :2].T + matrix[:, 2], ARCFACE_TEMPLATE_112 * size / 112, atol=1e-6
        )
        np.testing.assert_allclose(dlib @ matrix[:, :2].T + matrix[:, 2], DLIB_POINTS_112 * size / 112, atol=1e-6)
    # When the two sets disagree, the fit lies between the fits of each set alone.
    shifted = dlib + np.array([4.0, 0.0])
    centre = np.array([56.0, 60.0, 1.0])
    joint = joint_alignment(placed, shifted) @ centre
    alone = similarity_transform(placed, ARCFACE_TEMPLATE_112) @ centre
    dlib_alone = similarity_transform(shifted, DLIB_POINTS_112) @ centre
    assert min(alone[0], dlib_alone[0]) < joint[0] < max(alone[0], dlib_alone[0])


def test_dlib_box_is_a_square_below_the_eyes_scaled_by_their_distance() -> None:
    x0, y0, x1, y1 = dlib_box_from_eyes(np.array([[100.0, 100.0], [140.0, 100.0]]))
    assert x1 - x0 == pytest.approx(2.41 * 40) and y1 - y0 == pytest.approx(2.41 * 40)
    assert (x0 + x1) / 2 == pytest.approx(120.0) and (y0 + y1) / 2 == pytest.approx(100 + 0.49 * 40)


@pytest.fixture(scope="module")
def refiner() -> LandmarkRefiner:
    from facesearch.vision.onnx_detectors import load_onnx_detector

    yunet = load_onnx_detector(require_shared(SHARED_MODELS / "yunet_2023mar.onnx"), "yunet")
    return LandmarkRefiner(yunet.detect)


def test_refined_landmarks_stay_on_the_face_and_add_dlibs_points(
    refiner: LandmarkRefiner, astronaut: np.ndarray
) -> None:
    from facesearch.vision.onnx_detectors import load_onnx_detector

    yunet = load_onnx_detector(Path(SHARED_MODELS / "yunet_2023mar.onnx"), "yunet")
    face = yunet.detect(astronaut)[0]
    assert face.landmarks is not None and face.raw_landmarks is None
    refined = refiner.refine(astronaut, [face])[0]
    assert refined.landmarks is not None and refined.raw_landmarks is not None
    assert refined.bbox == face.bbox and refined.score == face.score
    eye_distance = float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))
    # Refinement moves points by a few percent of the eye distance, not across the face.
    assert 0 < np.abs(refined.landmarks - face.landmarks).max() < 0.15 * eye_distance
    # dlib's points: two corners around each eye, the base of the nose below the eyes.
    corners = refined.raw_landmarks[:4]
    for eye in refined.landmarks[:2]:
        assert np.linalg.norm(corners - eye, axis=1).min() < 0.3 * eye_distance
    assert refined.raw_landmarks[4, 1] > refined.landmarks[:2, 1].max()


def test_refinement_is_symmetric_under_mirroring(refiner: LandmarkRefiner, astronaut: np.ndarray) -> None:
    """Averaging with the mirror image makes the refined points of a photo and of its mirror agree."""
    from facesearch.vision.onnx_detectors import load_onnx_detector

    yunet = load_onnx_detector(Path(SHARED_MODELS / "yunet_2023mar.onnx"), "yunet")
    mirror = np.ascontiguousarray(astronaut[:, ::-1])
    width = astronaut.shape[1]
    plain = [mirror_averaged(yunet.detect(image)[0].landmarks, [], width) for image in (astronaut, mirror)]
    averaged = [
        mirror_averaged(yunet.detect(image)[0].landmarks, yunet.detect(np.ascontiguousarray(image[:, ::-1])), width)
        for image in (astronaut, mirror)
    ]

    def disagreement(pair: list[np.ndarray]) -> float:
        back = pair[1][[1, 0, 2, 4, 3]].copy()
        back[:, 0] = width - 1 - back[:, 0]
        return float(np.abs(pair[0] - back).max())

    assert disagreement(averaged) < 1e-3 < disagreement(plain)
