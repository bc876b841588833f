"""dlib's ResNet on onnxruntime against dlib-bin (issue 16): the same descriptors, and how much faster.

On ``--faces`` lfw-dev faces (dlib's HOG detector, its 5-point shape predictor and its 150x150 chip, the
largest face of each photo, photos taken evenly across the people), each chip is embedded by dlib-bin
(``dlib.face_recognition_model_v1``, one process) and by the converted ONNX graph (batches of 16, one thread
and all cores), without mirror averaging; reported: the cosine of each face's two descriptors (minimum,
percentiles, share at or above 0.999) and milliseconds per chip each way.

    python benchmarks/dlib_onnx.py [--faces 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, machine


def chips_of(photos: list[Path], wanted: int) -> list[np.ndarray]:
    """dlib's chip of the largest face of each photo, until ``wanted`` chips."""
    from facesearch.vision.dlib_models import DlibChipAligner, DlibHogDetector, dlib_model_paths
    from facesearch.vision.image import load_image

    detector, aligner = DlibHogDetector(dlib_model_paths()[0]), DlibChipAligner()
    chips = []
    for photo in photos:
        picture = load_image(photo.read_bytes())
        faces = sorted(detector.detect(picture), key=lambda face: face.area, reverse=True)
        if faces:
            chips.append(np.asarray(aligner.align(picture, faces[0])))
        if len(chips) == wanted:
            break
    return chips


def per_chip_ms(embed: object, chips: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The vectors and the milliseconds per chip of ``embed.embed(chips)``."""
    started = time.perf_counter()
    vectors = embed.embed(chips)  # type: ignore[attr-defined]
    return vectors, (time.perf_counter() - started) * 1000 / len(chips)


def main() -> None:
    """Embed the chips both ways and print the agreement and the speeds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    from facesearch.vision.dlib_models import dlib_model_paths
    from facesearch.vision.dlib_resnet_onnx import convert
    from facesearch.vision.embedders import DlibResNetEmbedder, OnnxDlibResNetEmbedder

    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    photos = [photo for person in people for photo in sorted(person.glob("*.jpg"))[:1]]
    photos += [photo for person in people for photo in sorted(person.glob("*.jpg"))[1:2]]
    chips = chips_of(photos, options.faces)
    with tempfile.TemporaryDirectory() as scratch:
        converted = convert(Path(scratch))
        dlib_vectors, dlib_ms = per_chip_ms(DlibResNetEmbedder(dlib_model_paths()[1], flip=False), chips)
        onnx_vectors, onnx_ms = per_chip_ms(OnnxDlibResNetEmbedder(converted, flip=False, threads=1), chips)
        cores = os.cpu_count() or 1
        _, onnx_all_ms = per_chip_ms(OnnxDlibResNetEmbedder(converted, flip=False, threads=cores), chips)
    cosine = (dlib_vectors * onnx_vectors).sum(axis=1)
    report = {
        "machine": machine(),
        "faces": len(chips),
        "cosine_min": round(float(cosine.min()), 7),
        "cosine_p1": round(float(np.percentile(cosine, 1)), 7),
        "cosine_median": round(float(np.median(cosine)), 7),
        "share_at_least_0_999": float((cosine >= 0.999).mean()),
        "dlib_ms_per_chip": round(dlib_ms, 2),
        "onnx_ms_per_chip_1_thread": round(onnx_ms, 2),
        f"onnx_ms_per_chip_{cores}_threads": round(onnx_all_ms, 2),
        "speedup_1_thread": round(dlib_ms / onnx_ms, 1),
    }
    if options.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
