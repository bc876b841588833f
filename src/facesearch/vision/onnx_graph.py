"""What the model converters share: an ONNX graph builder, the fixed serialisation and the atomic install.

The converters (``dlib_resnet_onnx``: dlib's ResNet from dlib's own file; ``facenet_onnx``: FaceNet from a
Keras file) rebuild a published network with the onnx helper API. Their output is checked against the
registry's sha256, so the bytes must not depend on the onnx version installed: :func:`finished_model` fixes
the IR version and opset.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 13
IR_VERSION = 8


class GraphBuilder:
    """Accumulates ONNX nodes and initialisers with unique names, tracking no shapes itself."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initialisers: list[Any] = []
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, value: np.ndarray, prefix: str) -> str:
        """An initialiser holding ``value``; its name."""
        from onnx import numpy_helper

        name = self._name(prefix)
        self.initialisers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes: Any) -> str:
        """A node of type ``op``; the name of its output."""
        from onnx import helper

        name = output or self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name


def finished_model(
    graph: GraphBuilder,
    name: str,
    input_name: str,
    input_shape: list[int | str],
    output_name: str,
    output_shape: list[int | str],
    producer: str,
) -> Any:
    """The checked ``onnx.ModelProto`` of ``graph`` (float32 input and output), opset 13 and IR 8 whatever the
    installed onnx's defaults, so that the bytes and their sha256 stay the same."""
    import onnx
    from onnx import TensorProto, helper

    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            name,
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)],
            graph.initialisers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=producer,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def install_bytes(data: bytes, target: Path) -> Path:
    """Write ``data`` to ``target`` through a synced temporary file in the same folder, so that the final name
    never holds half a file (the temporary file is removed on any failure, an interrupt included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o644 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
