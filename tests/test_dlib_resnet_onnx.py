"""dlib's ResNet converted to ONNX: the same descriptors as dlib-bin, made checksummed, used by the dlib packs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from facesearch.vision import dlib_resnet_onnx
from facesearch.vision.dlib_models import dlib_model_paths
from facesearch.vision.dlib_resnet_onnx import ConversionError, convert, converted_model, read_layers
from facesearch.vision.embedders import DlibResNetEmbedder, OnnxDlibResNetEmbedder
from facesearch.vision.models import KNOWN_MODELS, list_models, pull_model, sha256_file
from facesearch.vision.packs import BUILTIN_PACKS, ModelPack

from .conftest import LFW

SOURCE = dlib_model_paths()[1]


def real_chips(astronaut: np.ndarray, count: int) -> list[np.ndarray]:
    """dlib's own 150x150 chips of real faces: lfw-dev's when ../shared is there, else the astronaut's
    (with mirrored and shifted variants)."""
    from facesearch.vision.dlib_models import DlibChipAligner, DlibHogDetector

    detector, aligner = DlibHogDetector(dlib_model_paths()[0]), DlibChipAligner()
    if LFW.is_dir():
        from facesearch.vision.image import load_image

        pictures = [load_image(p.read_bytes()) for p in sorted(LFW.glob("*/*.jpg"))[::131][:count]]
    else:
        pictures = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), astronaut[10:, 20:]]
    chips = [np.asarray(aligner.align(picture, face)) for picture in pictures for face in detector.detect(picture)]
    assert len(chips) >= min(count, 3)
    return chips


def test_converted_descriptors_are_dlibs(converted_models: Path, astronaut: np.ndarray) -> None:
    """Each face's descriptor from the ONNX graph has a cosine of at least 0.9999 with dlib-bin's, with and
    without the mirror image, in one batch larger than the embedder's."""
    chips = real_chips(astronaut, 40)
    path = converted_models / KNOWN_MODELS["dlib_resnet_onnx"].filename
    for flip in (False, True):
        expected = DlibResNetEmbedder(SOURCE, flip=flip).embed(chips)
        got = OnnxDlibResNetEmbedder(path, flip=flip, batch_size=8).embed(chips)
        assert got.shape == expected.shape == (len(chips), 128)
        cosine = (got * expected).sum(axis=1)
        assert float(cosine.min()) >= 0.9999, cosine.min()
    assert OnnxDlibResNetEmbedder(path).embed([]).shape == (0, 128)


def test_conversion_is_verified_and_atomic(tmp_path: Path) -> None:
    """``models pull dlib_resnet_onnx`` converts locally (no request) into the registry's bytes; a tampered
    file is converted again; a source that is not dlib's known file is refused and nothing is left."""
    models = tmp_path / "models"
    made = pull_model("dlib_resnet_onnx", models)
    assert made == models / "dlib_face_recognition_resnet_model_v1.onnx"
    assert sha256_file(made) == KNOWN_MODELS["dlib_resnet_onnx"].sha256
    listed = {m.name: m for m in list_models(models)}["dlib_resnet_onnx"]
    assert listed.installed and listed.verified is True
    made.write_bytes(b"tampered")
    assert converted_model([models]) == made and sha256_file(made) == KNOWN_MODELS["dlib_resnet_onnx"].sha256

    elsewhere = tmp_path / "other"
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(SOURCE.read_bytes()[:-10])
    with pytest.raises(ConversionError, match="sha256"):
        convert(elsewhere, source=wrong)
    assert not elsewhere.exists() or not any(elsewhere.iterdir())


def test_unknown_network_is_refused() -> None:
    """The converter checks the network's structure, not only the file's checksum."""
    data = SOURCE.read_bytes()
    layers = read_layers(data)
    assert [layer.name for layer in layers].count("con_4") == 29
    assert layers[0].settings == (32, 7, 7, 2, 2, 0, 0)
    cut = data[: data.index(b"\x01\x04fc_2")]
    with pytest.raises(ConversionError, match="fc_2"):
        dlib_resnet_onnx.build_model(cut)


def test_packs_use_the_conversion_and_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, astronaut: np.ndarray
) -> None:
    """The dlib pack runs the ONNX graph (converted into a fresh models folder when none has it) and falls back
    to dlib-bin, with a warning, when the conversion fails; the two give the same vectors."""
    monkeypatch.setenv("FACESEARCH_MODEL_DIRS", "")
    models = tmp_path / "models"
    fast = ModelPack(BUILTIN_PACKS["dlib"], models, threads=1)
    assert isinstance(fast.embedder, OnnxDlibResNetEmbedder)
    assert (models / "dlib_face_recognition_resnet_model_v1.onnx").is_file()

    def refuse(*_args: object, **_kwargs: object) -> Path:
        raise ConversionError("refused for the test")

    monkeypatch.setattr(dlib_resnet_onnx, "convert", refuse)
    with caplog.at_level(logging.WARNING):
        slow = ModelPack(BUILTIN_PACKS["dlib"], tmp_path / "empty", threads=1)
    assert isinstance(slow.embedder, DlibResNetEmbedder)
    assert "refused for the test" in caplog.text
    fast_faces, slow_faces = fast.analyse([astronaut])[0], slow.analyse([astronaut])[0]
    assert len(fast_faces) == len(slow_faces) >= 1
    for one, other in zip(fast_faces, slow_faces, strict=True):
        assert float(one.embedding @ other.embedding) >= 0.9999
