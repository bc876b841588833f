"""Alignment study: how much does MobileFaceNet gain from better five-point landmarks, alone and fused with dlib?

    python benchmarks/alignment.py [--json] [--limit-people N] [--scale S] [--variants yunet,refined,...]
    python benchmarks/alignment.py --measure     # re-measure the constants of vision/landmarks.py (needs SCRFD)

Each lfw-dev photo's prominent face (found by YuNet) is embedded by MobileFaceNet with flip, aligned by:

- ``yunet``: YuNet's five points as they are (the ``yunet-mobilefacenet-flip`` pack);
- ``mirror``: averaged with the points YuNet finds on the mirrored image;
- ``mirror+bias``: and moved by the measured mean offset to SCRFD's convention;
- ``refined``: and fitted jointly with dlib's five shape-predictor points (what the ``fused`` pack does);
- ``scrfd``: SCRFD-2.5GF's points (the reference that motivated this; its weights are non-commercial, so
  only when ``scrfd_2.5g.onnx`` is in the models folder).

The dlib part of the fused pack is computed once, from the refined points, and fused with ``refined`` by the
protocol of ``benchmarks/fusion.py``: z-normalised scores, weight fitted on one half of the people and tested
on the other (both ways), then the whole protocol at the pack's own weight. Embeddings are cached in
``~/.cache/facesearch-bench`` (``FACESEARCH_BENCH_CACHE``): the first run takes about 20 minutes on two cores.

``--scale 0.4 --variants yunet,refined``: the same on photos shrunk first (faces about 17 pixels between the
eyes instead of 44), to check that the refinement holds for small faces.

``--measure``: the two constants (YuNet's mean offset to SCRFD's points and dlib's points' median position,
both in the ArcFace template's frame) from 800 random lfw-dev photos, from geometry alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, SHARED, machine, use_shared_models
from fusion import WEIGHTS, figures, impostor_stats, protocol, verification
from scale import CACHE

VARIANTS = ("yunet", "mirror", "mirror+bias", "refined", "scrfd")
MEASURE_PHOTOS = 800


def _photos(limit_people: int | None) -> tuple[list[Path], np.ndarray]:
    people = sorted(p for p in LFW.iterdir() if p.is_dir())[:limit_people]
    photos = [photo for person in people for photo in sorted(person.glob("*.jpg"))]
    return photos, np.array([photo.parent.name for photo in photos])


def _models() -> Path:
    return Path(os.environ.get("FACESEARCH_MODEL_DIRS", str(SHARED / "models")).split(os.pathsep)[0])


def _mfn_embedder(variant: str) -> Callable[[np.ndarray], np.ndarray | None]:
    """A function: RGB photo -> MobileFaceNet-flip vector of its prominent face aligned as ``variant`` says."""
    from facesearch.vision.align import align_face, warp_crop
    from facesearch.vision.embedders import OnnxArcFaceEmbedder
    from facesearch.vision.landmarks import LandmarkRefiner, bias_corrected, joint_alignment, mirror_averaged
    from facesearch.vision.onnx_detectors import load_onnx_detector
    from facesearch.vision.packs import prominent_face

    models = _models()
    yunet = load_onnx_detector(models / "yunet_2023mar.onnx", "yunet")
    detector = load_onnx_detector(models / "scrfd_2.5g.onnx", "scrfd") if variant == "scrfd" else yunet
    embedder = OnnxArcFaceEmbedder(models / "mobilefacenet.onnx", flip=True)
    refiner = LandmarkRefiner(yunet.detect)

    def embed(rgb: np.ndarray) -> np.ndarray | None:
        faces = detector.detect(rgb)
        chosen = prominent_face(faces, rgb.shape)
        if chosen is None or faces[chosen].landmarks is None:
            return None
        points = np.asarray(faces[chosen].landmarks, dtype=np.float64)
        if variant in ("yunet", "scrfd"):
            crop = align_face(rgb, points)
        elif variant == "refined":
            face = refiner.refine(rgb, [faces[chosen]])[0]
            assert face.landmarks is not None and face.raw_landmarks is not None
            crop = warp_crop(rgb, joint_alignment(face.landmarks, face.raw_landmarks), 112)
        else:
            mirrored = yunet.detect(np.ascontiguousarray(rgb[:, ::-1]))
            points = mirror_averaged(points, mirrored, rgb.shape[1])
            crop = align_face(rgb, bias_corrected(points) if variant == "mirror+bias" else points)
        return np.asarray(embedder.embed([crop])[0])

    return embed


def _dlib_embedder() -> Callable[[np.ndarray], np.ndarray | None]:
    """RGB photo -> the fused pack's dlib vector of its prominent face (chip from the refined points)."""
    from facesearch.vision.dlib_models import DlibChipAligner, dlib_model_paths
    from facesearch.vision.embedders import DlibResNetEmbedder
    from facesearch.vision.landmarks import LandmarkRefiner
    from facesearch.vision.onnx_detectors import load_onnx_detector
    from facesearch.vision.packs import prominent_face

    yunet = load_onnx_detector(_models() / "yunet_2023mar.onnx", "yunet")
    refiner = LandmarkRefiner(yunet.detect)
    chips = DlibChipAligner()
    resnet = DlibResNetEmbedder(dlib_model_paths()[1])

    def embed(rgb: np.ndarray) -> np.ndarray | None:
        faces = yunet.detect(rgb)
        chosen = prominent_face(faces, rgb.shape)
        if chosen is None or faces[chosen].landmarks is None:
            return None
        face = refiner.refine(rgb, [faces[chosen]])[0]
        return np.asarray(resnet.embed([chips.align(rgb, face)])[0])

    return embed


def embeddings(
    name: str,
    photos: list[Path],
    make: Callable[[], Callable[[np.ndarray], np.ndarray | None]],
    scale: float = 1.0,
) -> np.ndarray:
    """(N, 128) vectors for ``photos`` resized by ``scale`` (NaN rows where no face was found), cached."""
    import cv2

    from facesearch.vision.image import load_image

    suffix = "" if scale == 1.0 else f"-x{scale:g}"
    path = CACHE / f"alignment-{name.replace('+', '-')}-{len(photos)}{suffix}.npy"
    if path.exists():
        return np.load(path)
    embed = make()
    rows = []
    started = time.perf_counter()
    for number, photo in enumerate(photos, 1):
        rgb = load_image(photo)
        if scale != 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        vector = embed(np.ascontiguousarray(rgb))
        rows.append(np.full(128, np.nan, dtype=np.float32) if vector is None else vector.astype(np.float32))
        if number % 1000 == 0:
            print(f"[{name}] {number}/{len(photos)} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    vectors = np.stack(rows)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def _alone(names: dict[str, int], subjects: np.ndarray, vectors: np.ndarray) -> dict[str, Any]:
    """Open-set figures and 10-fold accuracy of one part alone (the fusion code with all weight on it)."""
    whole = protocol(names, subjects, set(map(str, subjects)))
    scores = vectors @ vectors.T
    stats = [impostor_stats(vectors, whole["gallery"] + whole["nonmated"])] * 2
    return {
        **figures(whole, [scores, scores], stats, 1.0),
        "verification_10fold": verification(names, [vectors, vectors], stats, 1.0)["first"],
    }


def _fused(names: dict[str, int], subjects: np.ndarray, parts: list[np.ndarray], pack_weight: float) -> dict[str, Any]:
    """Fusion of the refined MobileFaceNet and dlib parts: cross-fitted by halves, then at the pack's weight."""
    scores = [p @ p.T for p in parts]
    people = sorted(set(map(str, subjects)))
    shuffled = list(np.random.default_rng(0).permutation(people))
    halves = [set(shuffled[: len(people) // 2]), set(shuffled[len(people) // 2 :])]
    splits = [protocol(names, subjects, half) for half in halves]
    cross = []
    for fit, test in ((0, 1), (1, 0)):
        stats = [impostor_stats(p, splits[fit]["gallery"] + splits[fit]["nonmated"]) for p in parts]
        best = min(WEIGHTS, key=lambda w: figures(splits[fit], scores, stats, float(w))["fnir@0.01"])
        cross.append({"weight_first": float(best), **figures(splits[test], scores, stats, float(best))})
    whole = protocol(names, subjects, set(people))
    stats = [impostor_stats(p, whole["gallery"] + whole["nonmated"]) for p in parts]
    # The pack stores sqrt(w) x and sqrt(1 - w) y: w is the weight on the raw cosine. Its z-score weight is
    # w * sd_first / (w * sd_first + (1 - w) * sd_second).
    z_weight = pack_weight * stats[0][1] / (pack_weight * stats[0][1] + (1 - pack_weight) * stats[1][1])
    return {
        "cross_fitted": cross,
        "pack_weight": pack_weight,
        "pack_weight_z": round(z_weight, 3),
        "whole": figures(whole, scores, stats, z_weight),
        "verification_10fold": verification(names, parts, stats, z_weight)["fused"],
        "sweep": {
            f"{w:.2f}": {
                **figures(whole, scores, stats, float(w)),
                "verification_10fold": verification(names, parts, stats, float(w))["fused"],
            }
            for w in WEIGHTS
            if 0.3 <= w <= 0.8
        },
    }


def measure() -> dict[str, Any]:
    """The constants of vision/landmarks.py, re-measured from SCRFD's and dlib's points on lfw-dev."""
    from facesearch.vision.align import ARCFACE_TEMPLATE_112, similarity_transform
    from facesearch.vision.image import load_image
    from facesearch.vision.landmarks import LandmarkRefiner
    from facesearch.vision.onnx_detectors import load_onnx_detector
    from facesearch.vision.packs import prominent_face

    models = _models()
    yunet = load_onnx_detector(models / "yunet_2023mar.onnx", "yunet")
    scrfd = load_onnx_detector(models / "scrfd_2.5g.onnx", "scrfd")
    refiner = LandmarkRefiner(yunet.detect, mirror=False)
    photos, _ = _photos(None)
    offsets, dlib_points = [], []
    for index in np.random.default_rng(0).choice(len(photos), MEASURE_PHOTOS, replace=False):
        rgb = np.ascontiguousarray(load_image(photos[index]))
        found = [detector.detect(rgb) for detector in (yunet, scrfd)]
        chosen = [prominent_face(faces, rgb.shape) for faces in found]
        if chosen[0] is None or chosen[1] is None:
            continue
        ours, reference = (np.asarray(f[c].landmarks, dtype=np.float64) for f, c in zip(found, chosen, strict=True))
        to_template = similarity_transform(ours, ARCFACE_TEMPLATE_112)
        offsets.append((reference - ours) @ to_template[:, :2].T)
        to_reference = similarity_transform(reference, ARCFACE_TEMPLATE_112)
        dlib = refiner.dlib_points(rgb, ours)
        dlib_points.append(dlib @ to_reference[:, :2].T + to_reference[:, 2])
    return {
        "faces": len(offsets),
        "yunet_to_template_offsets": np.round(np.mean(offsets, axis=0), 2).tolist(),
        "dlib_points_112": np.round(np.median(dlib_points, axis=0), 2).tolist(),
    }


def run(limit_people: int | None, scale: float = 1.0, variants: list[str] | None = None) -> dict[str, Any]:
    """Every alignment variant alone, then the fused pack's two parts (when both are among ``variants``)."""
    from facesearch.vision.packs import BUILTIN_PACKS

    photos, subjects = _photos(limit_people)
    have_scrfd = (_models() / "scrfd_2.5g.onnx").is_file()
    chosen = variants or [*VARIANTS, "dlib"]
    vectors = {
        variant: embeddings(variant, photos, functools.partial(_mfn_embedder, variant), scale)
        for variant in VARIANTS
        if variant in chosen and (variant != "scrfd" or have_scrfd)
    }
    if "dlib" in chosen:
        vectors["dlib"] = embeddings("dlib-refined", photos, _dlib_embedder, scale)
    found = np.all([np.isfinite(v).all(axis=1) for v in vectors.values()], axis=0)
    rows = np.flatnonzero(found)
    names = {photos[row].name: position for position, row in enumerate(rows)}
    kept = subjects[rows]
    result: dict[str, Any] = {"photos": len(photos), "scale": scale, "photos_with_a_face": int(found.sum())}
    result["alone"] = {name: _alone(names, kept, v[rows]) for name, v in vectors.items()}
    weight = BUILTIN_PACKS["fused"].fusion_weight
    assert weight is not None
    if "refined" in vectors and "dlib" in vectors:
        result["fused"] = _fused(names, kept, [vectors["refined"][rows], vectors["dlib"][rows]], weight)
    result["machine"] = machine()
    return result


def main() -> int:
    """Print the JSON result (one line with ``--json``, indented otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit-people", type=int, default=None, help="only the first N people (quick run)")
    parser.add_argument("--measure", action="store_true", help="re-measure the constants of vision/landmarks.py")
    parser.add_argument("--scale", type=float, default=1.0, help="resize every photo by this factor first")
    parser.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join((*VARIANTS, 'dlib'))}")
    args = parser.parse_args()
    use_shared_models()
    variants = args.variants.split(",") if args.variants else None
    result = measure() if args.measure else run(args.limit_people, args.scale, variants)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
