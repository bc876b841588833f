"""Identification of small faces (issue 16): lfw-dev probes shrunk to a few pixels between the eyes.

The seeded uses (crowds, CCTV stills, photos of photos) are full of small faces. The open-set protocol of
``facesearch eval identify`` (gallery: the first photo of each person with two or more, at full size, as a
good enrolment photo would be; mated probes: their other photos; non-mated probes: the people with one
photo), with every probe photo shrunk (OpenCV area resampling) so that its prominent face has ``--eyes``
pixels between the eyes (measured on the full-size photo by the pack's own detector; a photo whose face is
already smaller is left as it is). Reported per pack and size: rank-1, FNIR at FPIR 0.1 and 0.01, the share
of probes where no face was found at all, and the share the quality gate flags ``too_small``.

    python benchmarks/small_faces.py [--pack NAME ...] [--eyes 12,16,24,32] [--limit-people N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, machine, use_shared_models

EYES = (12, 16, 24, 32)
_pack: Any = None


def _load(spec: Any, models_dir: Path) -> None:
    """Worker start: load the pack once (one thread: the workers share the cores)."""
    global _pack
    from facesearch.vision.packs import ModelPack

    _pack = ModelPack(spec, models_dir, threads=1)


def _analyse(job: tuple[str, tuple[float, ...]]) -> list[tuple[np.ndarray | None, float, bool]]:
    """The prominent face of one photo, full size and shrunk to each inter-eye distance: (vector or None,
    inter-eye distance seen, flagged too small)."""
    import cv2

    from facesearch.vision.image import load_image

    path, eyes = job
    rgb = load_image(Path(path).read_bytes())
    out = []
    full = _prominent(rgb)
    out.append(full)
    measured = full[1]
    for target in eyes:
        scale = min(1.0, target / measured) if measured > 0 else 1.0
        small = rgb if scale >= 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(_prominent(small))
    return out


def _prominent(rgb: np.ndarray) -> tuple[np.ndarray | None, float, bool]:
    """The prominent face's vector, inter-eye distance and whether the quality gate calls it too small."""
    from facesearch.vision.packs import prominent_face

    faces = _pack.analyse([rgb])[0]
    main = prominent_face([f.detection for f in faces], rgb.shape)
    if main is None:
        return None, 0.0, False
    face = faces[main]
    return face.embedding, float(face.quality.inter_eye_px), "too_small" in face.quality.reasons


def run_pack(pack: str, eyes: tuple[int, ...], limit_people: int | None, workers: int) -> dict[str, Any]:
    """Every probe at full size and at each size; the open-set figures of each."""
    import tempfile

    from facesearch.eval.lfw import open_set_split
    from facesearch.eval.metrics import open_set_metrics

    split = open_set_split(LFW, limit_people=limit_people)
    gallery_people = sorted(split.gallery)
    probes = [(person, photo, True) for person, photo in split.mated]
    probes += [(person, photo, False) for person, photo in split.nonmated]
    started = time.perf_counter()
    import facesearch

    with tempfile.TemporaryDirectory(prefix="facesearch-small-") as home, facesearch.open(home, pack=pack) as engine:
        spec, models_dir = engine.packs.spec(pack), engine.packs.models_dir
        with ProcessPoolExecutor(workers, initializer=_load, initargs=(spec, models_dir)) as pool:
            gallery = list(pool.map(_analyse, [(str(split.gallery[p]), ()) for p in gallery_people], chunksize=8))
            analysed = list(
                pool.map(_analyse, [(str(photo), tuple(map(float, eyes))) for _, photo, _ in probes], chunksize=8)
            )
    enrolled = [(person, result[0][0]) for person, result in zip(gallery_people, gallery, strict=True)]
    names = [person for person, vector in enrolled if vector is not None]
    matrix = np.stack([vector for _, vector in enrolled if vector is not None])
    report: dict[str, Any] = {"pack": pack, "probes": len(probes), "gallery": len(names), "by_size": {}}
    report["seconds"] = round(time.perf_counter() - started, 1)
    for column, label in enumerate(["full size", *(f"{e} px" for e in eyes)]):
        mated_top, mated_is_mate, mated_rank, nonmated_top = [], [], [], []
        no_face = flagged = 0
        for (person, _photo, mated), result in zip(probes, analysed, strict=True):
            vector, _eyes, too_small = result[column]
            if vector is None:
                no_face += 1
                top, rank = -np.inf, 0
            else:
                scores = matrix @ vector
                order = np.argsort(-scores)[:20]
                top = float(scores[order[0]])
                rank = next((r + 1 for r, i in enumerate(order) if names[i] == person), 0)
                flagged += too_small
            if mated:
                mated_top.append(top)
                mated_is_mate.append(rank == 1)
                mated_rank.append(rank)
            else:
                nonmated_top.append(top)
        metrics = open_set_metrics(mated_top, mated_is_mate, mated_rank, nonmated_top)
        report["by_size"][label] = {
            "rank1": metrics["rank1"],
            "fnir_at_fpir_0_1": metrics["fnir_at_fpir"][0]["fnir"],
            "fnir_at_fpir_0_01": metrics["fnir_at_fpir"][1]["fnir"],
            "no_face": no_face / len(probes),
            "too_small": flagged / len(probes),
        }
    return report


def main() -> None:
    """Measure each pack at each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="append", help="packs to measure (default: yunet-mobilefacenet)")
    parser.add_argument("--eyes", default=",".join(map(str, EYES)), help="inter-eye distances in pixels")
    parser.add_argument("--limit-people", type=int)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    eyes = tuple(int(e) for e in options.eyes.split(","))
    reports = [
        run_pack(p, eyes, options.limit_people, options.workers) for p in options.pack or ["yunet-mobilefacenet"]
    ]
    if options.json:
        print(json.dumps({"machine": machine(), "packs": reports}))
        return
    for report in reports:
        print(f"{report['pack']}: {report['probes']} probes, {report['gallery']} enrolled, {report['seconds']} s")
        for label, f in report["by_size"].items():
            print(
                f"  {label:>9}: rank-1 {100 * f['rank1']:.2f}%, FNIR {100 * f['fnir_at_fpir_0_1']:.2f}% at FPIR 0.1, "
                f"{100 * f['fnir_at_fpir_0_01']:.2f}% at FPIR 0.01; no face {100 * f['no_face']:.1f}%, "
                f"flagged too small {100 * f['too_small']:.1f}%"
            )


if __name__ == "__main__":
    main()
