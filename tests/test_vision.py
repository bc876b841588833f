"""Alignment, quality, embedders and packs on real images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facesearch.vision.align import ARCFACE_TEMPLATE_112, align_face, similarity_transform
from facesearch.vision.embedders import OnnxArcFaceEmbedder
from facesearch.vision.packs import BUILTIN_PACKS, ModelPack, PackError, prominent_face, resolve_pack
from facesearch.vision.types import DetectedFace

from .conftest import SHARED_MODELS, require_shared


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle, scale, shift = np.radians(20), 2.5, np.array([30.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ARCFACE_TEMPLATE_112 @ rotation.T + shift
    matrix = similarity_transform(points, ARCFACE_TEMPLATE_112)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE_112, atol=1e-9)


def test_align_face_puts_landmarks_on_the_template(astronaut: np.ndarray) -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    landmarks = ARCFACE_TEMPLATE_112 * 1.5 + 10
    for x, y in landmarks.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    crop = align_face(image, landmarks)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE_112.round().astype(int):
        assert crop[y, x].max() > 100


def test_prominent_face_prefers_large_central_faces() -> None:
    faces = [
        DetectedFace((0, 0, 60, 60), 0.9),  # corner
        DetectedFace((100, 100, 50, 50), 0.9),  # centre
        DetectedFace((180, 180, 20, 20), 0.9),
    ]
    assert prominent_face(faces, (250, 250, 3)) == 1
    assert prominent_face([], (10, 10, 3)) is None


def test_dlib_pack_finds_and_embeds_the_astronaut(astronaut: np.ndarray) -> None:
    pack = ModelPack(resolve_pack("dlib", SHARED_MODELS), SHARED_MODELS)
    [faces] = pack.analyse([astronaut])
    assert pack.key == "dlib@2" and pack.dim == 128
    main = faces[0]
    x, y, w, h = main.detection.bbox
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 180  # her face, not the flag or the suit
    assert abs(float(np.linalg.norm(main.embedding)) - 1.0) < 1e-5
    left_eye, right_eye = main.detection.landmarks[0], main.detection.landmarks[1]
    assert left_eye[0] < right_eye[0]
    mirrored = pack.analyse([np.ascontiguousarray(astronaut[:, ::-1])])[0][0]
    assert float(main.embedding @ mirrored.embedding) > BUILTIN_PACKS["dlib"].threshold


def test_unknown_pack_and_missing_model_are_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PackError, match="unknown pack"):
        resolve_pack("nope", tmp_path)
    with pytest.raises(PackError, match="not found"):
        resolve_pack("yunet+missing.onnx", tmp_path)


def test_fixed_batch_onnx_embedder_runs_in_batches() -> None:
    model = require_shared(SHARED_MODELS / "mobilefacenet.onnx")
    embedder = OnnxArcFaceEmbedder(model)
    assert not embedder._fixed_batch and embedder.dim == 128
    crops = list(np.random.default_rng(1).integers(0, 255, (5, 112, 112, 3), dtype=np.uint8))
    batched = embedder.embed(crops)
    singles = np.concatenate([embedder.embed([crop]) for crop in crops])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_user_assembled_pack_is_versioned_by_its_embedder_file() -> None:
    require_shared(SHARED_MODELS / "mobilefacenet.onnx")
    spec = resolve_pack("yunet+mobilefacenet.onnx", SHARED_MODELS)
    assert spec.calibrated is False and len(spec.version) == 12 and spec.key.startswith("yunet+mobilefacenet.onnx@")


def test_flip_augmented_onnx_embedder_is_mirror_invariant_and_averages_both_views() -> None:
    from facesearch.vision.embedders import OnnxArcFaceEmbedder, l2_normalise

    from .conftest import SHARED_MODELS, require_shared

    model = require_shared(SHARED_MODELS / "mobilefacenet.onnx")
    plain = OnnxArcFaceEmbedder(model)
    flipped = OnnxArcFaceEmbedder(model, flip=True)
    rng = np.random.default_rng(1)
    crops = list(rng.integers(0, 255, size=(3, 112, 112, 3), dtype=np.uint8))
    mirrors = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    both = flipped.embed(crops)
    np.testing.assert_allclose(both, l2_normalise(plain.embed(crops) + plain.embed(mirrors)), atol=1e-5)
    np.testing.assert_allclose(flipped.embed(mirrors), both, atol=1e-5)
    assert not np.allclose(plain.embed(mirrors), plain.embed(crops), atol=1e-3)


def test_a_fused_pack_needs_refined_landmarks() -> None:
    """dlib's chip is cut from the dlib points that refined landmarks carry: fusion without them is refused."""
    with pytest.raises(ValueError, match="refined_landmarks"):
        dataclasses.replace(BUILTIN_PACKS["fused"], refined_landmarks=False)


def test_fused_pack_vectors_score_as_the_weighted_sum_of_both_embedders(astronaut: np.ndarray) -> None:
    from .conftest import SHARED_MODELS, require_shared

    models = require_shared(SHARED_MODELS / "mobilefacenet.onnx").parent
    fused = ModelPack(resolve_pack("fused", models), models)
    unrefined = dataclasses.replace(BUILTIN_PACKS["yunet-mobilefacenet-flip"], refined_landmarks=False)
    plain = ModelPack(unrefined, models)
    assert fused.dim == 256
    mirror = np.ascontiguousarray(astronaut[:, ::-1])
    first, second = (fused.analyse([image])[0][0].embedding for image in (astronaut, mirror))
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    weight = BUILTIN_PACKS["fused"].fusion_weight
    assert weight is not None
    # The first half is MobileFaceNet's (flip) vector of the crop aligned with refined landmarks, scaled by
    # sqrt(w); the inner product splits accordingly.
    refined = fused.detect(astronaut)[0]
    assert refined.raw_landmarks is not None  # dlib's five points, fitted jointly with YuNet's
    embedder = OnnxArcFaceEmbedder(models / "mobilefacenet.onnx", flip=True)
    np.testing.assert_allclose(
        first[:128], np.sqrt(weight) * embedder.embed([fused.align(astronaut, refined)])[0], atol=1e-5
    )
    # The same face as the plain pack's, aligned a little differently.
    plain_first = plain.analyse([astronaut])[0][0].embedding
    assert 0.9 < float(first[:128] @ plain_first) / np.sqrt(weight) < 0.9999
    dlib_part = float(first[128:] @ second[128:]) / (1 - weight)
    assert 0.9 < dlib_part <= 1.0  # the same face mirrored, for dlib
    assert float(first @ second) > BUILTIN_PACKS["fused"].threshold
