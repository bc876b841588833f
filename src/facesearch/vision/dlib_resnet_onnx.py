"""dlib's face descriptor network on onnxruntime: a converter from dlib's own model file to ONNX.

dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``, shipped by ``face_recognition_models``) runs in
dlib-bin one batch on one core. Its weights are read here from dlib's serialisation format (as dlib's
``dnn`` sources write it: integers in a compact sign-and-length form, strings as length and bytes, tensors as
four dimensions and little-endian float32 values) and rebuilt as an ONNX graph with the onnx helper API:

- the input is a batch of 150x150 RGB chips in 0..255 (NCHW float32), normalised in the graph as dlib's
  ``input_rgb_image_sized`` does (minus the mean of each channel, divided by 256);
- dlib's ``affine`` layers (batch normalisation frozen at training's end) are folded into the convolution
  before them, in float64, then stored as float32;
- a residual block that halves the size adds its 2x2 average-pooled input to its output, and dlib sums two
  tensors of different sizes over the larger one with zeros where the smaller has nothing (more channels,
  and a 3x3 output against a 4x4 pooled input in the last levels): ``Pad`` nodes do the same here.

The graph's descriptors match dlib's to a cosine of 0.9999999 (``tests/test_dlib_resnet_onnx.py``); the
converted file is never committed nor downloaded: it is made from the installed package's file, whose
sha256 is checked first, and the result's sha256 is checked against the registry.

    python -m facesearch.vision.dlib_resnet_onnx [--to MODELS_FOLDER]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.vision.onnx_graph import GraphBuilder, finished_model, install_bytes

log = logging.getLogger(__name__)

SOURCE_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
"""sha256 of ``dlib_face_recognition_resnet_model_v1.dat`` as ``face_recognition_models`` 0.3.0 ships it."""

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
CHANNEL_MEANS = (122.782, 117.001, 104.298)  # dlib's input_rgb_image: red, green, blue
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptor"
MODEL_NAME = "dlib_resnet_onnx"
"""The converted model's name in the registry (``facesearch models pull dlib_resnet_onnx`` converts it)."""

# The network as dlib's dnn_face_recognition_ex.cpp declares it, from the input up: after the 7x7 stem and
# a 3x3 max pool, residual blocks of (channels, halves the size).
_BLOCKS: tuple[tuple[int, bool], ...] = (
    *((32, False),) * 3,
    (64, True),
    *((64, False),) * 3,
    (128, True),
    *((128, False),) * 2,
    (256, True),
    *((256, False),) * 2,
    (256, True),
)
# The serialised layers whose parameters or shape the graph needs, by the name dlib writes for each.
_LAYER_NAMES = (b"con_4", b"affine_", b"fc_2", b"max_pool_2", b"avg_pool_2")
_LAYER_MARK = re.compile(b"|".join(re.escape(bytes([0x01, len(name)]) + name) for name in _LAYER_NAMES))


class ConversionError(Exception):
    """dlib's model file is not the network this converter knows, or cannot be read."""


class _Reader:
    """Reads dlib's serialisation format from a byte string."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def integer(self) -> int:
        """dlib's compact integer: a byte with the length (low 4 bits) and sign (high bit), then little-endian."""
        head = self.data[self.position]
        size = head & 0x0F
        start = self.position + 1
        self.position = start + size
        value = int.from_bytes(self.data[start : self.position], "little")
        return -value if head & 0x80 else value

    def text(self) -> str:
        """A string: its length as an integer, then its bytes."""
        length = self.integer()
        start = self.position
        self.position += length
        return self.data[start : self.position].decode("latin-1")

    def tensor(self) -> np.ndarray:
        """A tensor (format version 2): four dimensions, then little-endian float32 values; returned flat."""
        version = self.integer()
        if version != 2:
            raise ConversionError(f"unknown tensor format version {version}")
        count = int(np.prod([self.integer() for _ in range(4)]))
        if self.position + 4 * count > len(self.data):
            raise ConversionError("the model file ends inside a tensor")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.position).astype(np.float32)
        self.position += 4 * count
        return values


@dataclass(frozen=True)
class _Layer:
    """One serialised layer: its dlib name, its parameters (flat) and its integer settings in file order."""

    name: str
    params: np.ndarray
    settings: tuple[int, ...]


def read_layers(data: bytes) -> list[_Layer]:
    """The convolution, affine, pooling and fully connected layers of a dlib network file, input first."""
    layers: list[_Layer] = []
    position = 0
    while (mark := _LAYER_MARK.search(data, position)) is not None:
        reader = _Reader(data, mark.start())
        name = reader.text()
        empty = np.zeros(0, dtype=np.float32)
        if name == "con_4":  # params, then filters, rows, columns, strides and paddings (y, x)
            params = reader.tensor()
            layers.append(_Layer(name, params, tuple(reader.integer() for _ in range(7))))
        elif name == "affine_":  # params: gamma then beta
            layers.append(_Layer(name, reader.tensor(), ()))
        elif name == "fc_2":  # outputs, inputs, then params (inputs x outputs)
            outputs, inputs = reader.integer(), reader.integer()
            layers.append(_Layer(name, reader.tensor(), (outputs, inputs)))
        else:  # a pooling layer: window rows, columns, strides, paddings (0x0 window: over everything)
            layers.append(_Layer(name, empty, tuple(reader.integer() for _ in range(6))))
        position = reader.position
    return layers


@dataclass
class _Flow:
    """A tensor in the graph with the channels and spatial size it has for a 150x150 input."""

    name: str
    channels: int
    size: tuple[int, int]


def _output_size(
    size: tuple[int, int], window: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]
) -> tuple[int, int]:
    """The spatial size after a convolution or pooling (no partial windows, as dlib and ONNX both do)."""
    return (
        (size[0] + 2 * pad[0] - window[0]) // stride[0] + 1,
        (size[1] + 2 * pad[1] - window[1]) // stride[1] + 1,
    )


def _expect(layer: _Layer | None, name: str) -> _Layer:
    if layer is None or layer.name != name:
        found = "the end of the file" if layer is None else layer.name
        raise ConversionError(f"expected dlib layer {name}, found {found}: not dlib's face recognition ResNet v1")
    return layer


def _conv_affine(graph: GraphBuilder, layers: Iterator[_Layer], flow: _Flow) -> _Flow:
    """A convolution with the affine layer after it folded in."""
    conv = _expect(next(layers, None), "con_4")
    affine = _expect(next(layers, None), "affine_")
    filters, rows, columns, stride_y, stride_x, pad_y, pad_x = conv.settings
    weight_count = filters * flow.channels * rows * columns
    if conv.params.size != weight_count + filters or affine.params.size != 2 * filters:
        raise ConversionError("a convolution's parameters do not fit the network's shape")
    weights = conv.params[:weight_count].reshape(filters, flow.channels, rows, columns).astype(np.float64)
    gamma, beta = affine.params[:filters].astype(np.float64), affine.params[filters:].astype(np.float64)
    folded = (weights * gamma[:, None, None, None]).astype(np.float32)
    bias = (conv.params[weight_count:].astype(np.float64) * gamma + beta).astype(np.float32)
    output = graph.node(
        "Conv",
        [flow.name, graph.constant(folded, "weight"), graph.constant(bias, "bias")],
        kernel_shape=[rows, columns],
        strides=[stride_y, stride_x],
        pads=[pad_y, pad_x, pad_y, pad_x],
    )
    return _Flow(output, filters, _output_size(flow.size, (rows, columns), (stride_y, stride_x), (pad_y, pad_x)))


def _padded(graph: GraphBuilder, flow: _Flow, channels: int, size: tuple[int, int]) -> str:
    """``flow`` zero-padded after its last channel, row and column to ``channels`` and ``size``."""
    extra = [0, 0, 0, 0, 0, channels - flow.channels, size[0] - flow.size[0], size[1] - flow.size[1]]
    if not any(extra):
        return flow.name
    return graph.node("Pad", [flow.name, graph.constant(np.array(extra, dtype=np.int64), "pads")])


def _residual(graph: GraphBuilder, layers: Iterator[_Layer], flow: _Flow, channels: int, halves: bool) -> _Flow:
    """One residual block: two convolutions, the input (2x2 average-pooled when halving) added, then ReLU."""
    inner = _conv_affine(graph, layers, flow)
    inner = _conv_affine(graph, layers, _Flow(graph.node("Relu", [inner.name]), inner.channels, inner.size))
    if inner.channels != channels:
        raise ConversionError(f"a residual block has {inner.channels} channels where {channels} were expected")
    if halves:
        pool = _expect(next(layers, None), "avg_pool_2")
        if pool.settings != (2, 2, 2, 2, 0, 0):
            raise ConversionError(f"unexpected average pooling {pool.settings}")
        pooled = graph.node("AveragePool", [flow.name], kernel_shape=[2, 2], strides=[2, 2])
        shortcut = _Flow(pooled, flow.channels, _output_size(flow.size, (2, 2), (2, 2), (0, 0)))
    elif inner.size != flow.size or inner.channels != flow.channels:
        raise ConversionError("a residual block changes its input's shape without pooling it")
    else:
        shortcut = flow
    size = (max(inner.size[0], shortcut.size[0]), max(inner.size[1], shortcut.size[1]))
    width = max(inner.channels, shortcut.channels)
    total = graph.node("Add", [_padded(graph, inner, width, size), _padded(graph, shortcut, width, size)])
    return _Flow(graph.node("Relu", [total]), width, size)


def build_model(data: bytes) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) of dlib's face recognition ResNet read from its file's bytes."""
    layers = iter(read_layers(data))
    graph = GraphBuilder()
    means = np.array(CHANNEL_MEANS, dtype=np.float32).reshape(1, 3, 1, 1)
    centred = graph.node("Sub", [INPUT_NAME, graph.constant(means, "channel_means")])
    scaled = graph.node("Mul", [centred, graph.constant(np.array(1 / 256, dtype=np.float32), "input_scale")])
    flow = _conv_affine(graph, layers, _Flow(scaled, 3, (CHIP_SIZE, CHIP_SIZE)))
    pool = _expect(next(layers, None), "max_pool_2")
    rows, columns, stride_y, stride_x, pad_y, pad_x = pool.settings
    pooled = graph.node(
        "MaxPool",
        [graph.node("Relu", [flow.name])],
        kernel_shape=[rows, columns],
        strides=[stride_y, stride_x],
        pads=[pad_y, pad_x, pad_y, pad_x],
    )
    flow = _Flow(pooled, flow.channels, _output_size(flow.size, (rows, columns), (stride_y, stride_x), (pad_y, pad_x)))
    for channels, halves in _BLOCKS:
        flow = _residual(graph, layers, flow, channels, halves)
    everything = _expect(next(layers, None), "avg_pool_2")
    if everything.settings[:2] != (0, 0):
        raise ConversionError("the network does not end with an average over everything")
    fully_connected = _expect(next(layers, None), "fc_2")
    outputs, inputs = fully_connected.settings
    if inputs != flow.channels or outputs != DESCRIPTOR_DIM or fully_connected.params.size != inputs * outputs:
        raise ConversionError("the last layer does not give a 128-d descriptor")
    if next(layers, None) is not None:
        raise ConversionError("the model file has layers after the descriptor")
    flat = graph.node("Flatten", [graph.node("GlobalAveragePool", [flow.name])], axis=1)
    graph.node("MatMul", [flat, graph.constant(fully_connected.params.reshape(inputs, outputs), "fc")], OUTPUT_NAME)
    return finished_model(
        graph,
        "dlib_face_recognition_resnet_model_v1",
        INPUT_NAME,
        ["batch", 3, CHIP_SIZE, CHIP_SIZE],
        OUTPUT_NAME,
        ["batch", DESCRIPTOR_DIM],
        "facesearch dlib_resnet_onnx",
    )


def chips_blob(chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """150x150 RGB uint8 chips as the graph's input: NCHW float32 in 0..255."""
    return np.ascontiguousarray(np.asarray(chips, dtype=np.float32).transpose(0, 3, 1, 2))


def _self_check(model_bytes: bytes, source: Path) -> None:
    """Compare the converted graph with dlib-bin on a few deterministic chips (when dlib is importable)."""
    try:
        import dlib
    except ImportError:  # nothing to compare with; the checksum still holds the bytes to the registry's
        return
    import onnxruntime as ort

    rng = np.random.default_rng(150)
    # Blocky random pictures (noise enlarged in 10x10 blocks): structure for the network rather than static.
    noise = rng.integers(0, 256, size=(3, CHIP_SIZE // 10, CHIP_SIZE // 10, 3)).astype(np.uint8)
    chips = [np.ascontiguousarray(np.kron(n, np.ones((10, 10, 1), dtype=np.uint8))) for n in noise]
    expected = np.array(
        [np.array(d) for d in dlib.face_recognition_model_v1(str(source)).compute_face_descriptor(chips)]
    )
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: chips_blob(chips)})[0]
    cosine = (expected * got).sum(axis=1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)
    if float(cosine.min()) < 0.9999:
        raise ConversionError(f"the converted network disagrees with dlib's (cosine {cosine.min():.6f})")


def convert(models_dir: Path, *, source: Path | None = None) -> Path:
    """Convert dlib's installed ResNet into ``models_dir`` (once: a verified file already there is kept).

    The source's sha256 is checked, the graph is compared with dlib-bin on a few chips, and the result's
    sha256 with the registry's before it is moved into place (written to a temporary file first, so the
    final name never holds half a file). Raises :class:`ConversionError` when any check fails.
    """
    from facesearch.vision.dlib_models import dlib_model_paths
    from facesearch.vision.models import KNOWN_MODELS

    known = KNOWN_MODELS[MODEL_NAME]
    target = Path(models_dir) / known.filename
    if target.is_file() and _verified(target, known.sha256):
        return target
    source = source or dlib_model_paths()[1]
    try:
        data = source.read_bytes()
    except OSError as error:
        raise ConversionError(f"cannot read dlib's model file {source}: {error}") from error
    if hashlib.sha256(data).hexdigest() != SOURCE_SHA256:
        raise ConversionError(f"{source} is not the dlib model file this converter knows (its sha256 differs)")
    model_bytes = bytes(build_model(data).SerializeToString())
    got = hashlib.sha256(model_bytes).hexdigest()
    if got != known.sha256:
        raise ConversionError(f"the converted model's sha256 is {got}, the registry expects {known.sha256}")
    _self_check(model_bytes, source)
    install_bytes(model_bytes, target)
    log.info("converted dlib's ResNet to %s", target)
    return target


def converted_model(folders: list[Path]) -> Path | None:
    """The converted model: a verified file in one of ``folders``, else converted into the first of them;
    ``None`` (with a warning) when it can be neither found nor made, so that dlib-bin is used instead."""
    from facesearch.vision.models import KNOWN_MODELS, find_model_file

    known = KNOWN_MODELS[MODEL_NAME]
    found = find_model_file(MODEL_NAME, folders[0], folders[1:])
    if found is not None and _verified(found, known.sha256):
        return found
    try:
        return convert(folders[0])
    except (ConversionError, OSError, ImportError) as error:
        log.warning("dlib's ResNet runs through dlib-bin (slower): no ONNX conversion (%s)", error)
        return None


def _verified(path: Path, sha256: str) -> bool:
    """Whether ``path`` holds the registry's bytes (read once per process for an unchanged file)."""
    from facesearch.vision.models import cached_sha256

    try:
        return cached_sha256(path) == sha256
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Convert dlib's ResNet into a models folder and print the path (the set-up step, as a script)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", type=Path, default=Path("models"), help="The models folder (default: ./models).")
    options = parser.parse_args(argv)
    print(convert(options.to))


if __name__ == "__main__":
    main()
