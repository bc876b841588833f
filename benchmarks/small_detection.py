"""Detection of small faces (issue 16): each detector's recall and precision by face size on the group photos.

``../shared/data/group-photos`` holds PASCAL VOC photos with hand-drawn face boxes (``training.xml``,
``testing.xml``: 43 faces, 37-109 px wide). To reach the sizes of crowds and CCTV stills, every photo is also
shrunk (OpenCV area resampling) by ``--scales`` with its boxes, so each face is seen at several sizes.
A detection matches an annotated face at IoU >= ``--iou`` (greedy, best overlap first); hand-drawn boxes are
squares from the eyebrows to the chin while YuNet and SCRFD include the forehead, so 0.4 is also reported
(``tests/test_detectors.py`` measured true matches' IoU at median 0.70, worst 0.49).

Detectors: YuNet as the packs run it; YuNet with the photo enlarged first so its short side is at least
``--upscale-side`` (its ``min_side``: a higher input scale); SCRFD-2.5GF and SCRFD-0.5GF when their files are
there; dlib's HOG (one upsample, as the ``dlib`` pack). Reported: recall per face width bin (of the shrunk
photo), and precision over all detections (an unannotated real face counts against it: the annotations
are not exhaustive).

    python benchmarks/small_detection.py [--scales 1,0.5,0.35,0.25] [--iou 0.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, machine, use_shared_models

PHOTOS = SHARED / "data" / "group-photos"
BINS = ((0, 12), (12, 16), (16, 24), (24, 32), (32, 48), (48, 10_000))
"""Face width bins, in pixels of the photo as detected (about 2.5 times the distance between the eyes)."""


def annotated() -> dict[str, list[tuple[float, float, float, float]]]:
    """Photo file name -> its hand-drawn boxes (x, y, w, h)."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ElementTree.parse(PHOTOS / name).getroot().iter("image"):
            boxes.setdefault(image.attrib["file"], []).extend(
                (float(b.attrib["left"]), float(b.attrib["top"]), float(b.attrib["width"]), float(b.attrib["height"]))
                for b in image.iter("box")
                if b.attrib.get("ignore") != "1"
            )
    return boxes


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def matched(truth: list[tuple[float, ...]], found: list[tuple[float, ...]], threshold: float) -> list[bool]:
    """For each annotated box, whether a detection matches it (greedy by overlap, each detection used once)."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    hit, used = [False] * len(truth), set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if not hit[i] and j not in used:
            hit[i] = True
            used.add(j)
    return hit


def detectors(upscale_side: int) -> dict[str, Any]:
    """The detectors measured, by label (those whose files are missing are left out)."""
    from facesearch.vision.dlib_models import DlibHogDetector, dlib_model_paths
    from facesearch.vision.models import find_model_file
    from facesearch.vision.onnx_detectors import ScrfdDetector, YuNetDetector

    shared = SHARED / "models"
    found: dict[str, Any] = {}
    yunet = find_model_file("yunet", shared)
    if yunet is not None:
        found["yunet"] = YuNetDetector(yunet)
        found[f"yunet, short side >= {upscale_side}"] = YuNetDetector(yunet, min_side=upscale_side)
    for name in ("scrfd_2.5g", "scrfd_500m"):
        path = find_model_file(name, shared)
        if path is not None:
            found[name] = ScrfdDetector(path)
    found["dlib_hog"] = DlibHogDetector(dlib_model_paths()[0])
    return found


def main() -> None:
    """Detect every face of every photo at every scale with every detector; print recall by size."""
    import cv2

    from facesearch.vision.image import load_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,0.5,0.35,0.25")
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--upscale-side", type=int, default=960)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    scales = [float(s) for s in options.scales.split(",")]
    truth = annotated()
    pictures = {name: load_image((PHOTOS / name).read_bytes()) for name in truth}
    report: dict[str, Any] = {"machine": machine(), "faces": sum(map(len, truth.values())), "detectors": {}}
    for label, detector in detectors(options.upscale_side).items():
        hits: dict[float, list[tuple[float, bool]]] = {options.iou: [], 0.4: []}
        detections = correct = 0
        started = time.perf_counter()
        for name, boxes in truth.items():
            for scale in scales:
                rgb = pictures[name]
                if scale != 1.0:
                    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                shrunk = [tuple(v * scale for v in box) for box in boxes]
                found = [tuple(float(v) for v in face.bbox) for face in detector.detect(rgb)]
                detections += len(found)
                for threshold in hits:
                    flags = matched(shrunk, found, threshold)
                    hits[threshold].extend((box[2], flag) for box, flag in zip(shrunk, flags, strict=True))
                    if threshold == options.iou:
                        correct += sum(flags)
        seconds = time.perf_counter() - started
        by_size = {}
        for low, high in BINS:
            key = f"{low}-{high}" if high < 10_000 else f"{low}+"
            row = {}
            for threshold, values in hits.items():
                inside = [flag for width, flag in values if low <= width < high]
                row[f"recall_iou_{threshold:g}"] = float(np.mean(inside)) if inside else None
                row["faces"] = len(inside)
            by_size[key] = row
        report["detectors"][label] = {
            "by_width": by_size,
            "recall": float(np.mean([flag for _, flag in hits[options.iou]])),
            "recall_iou_0.4": float(np.mean([flag for _, flag in hits[0.4]])),
            "precision": correct / detections if detections else None,
            "ms_per_photo": round(1000 * seconds / (len(truth) * len(scales)), 1),
        }
    if options.json:
        print(json.dumps(report))
        return
    print(f"{report['faces']} annotated faces x {len(scales)} scales; recall at IoU {options.iou:g} (0.4)")
    for label, row in report["detectors"].items():
        cells = ", ".join(
            f"{width} px: {_pct(v[f'recall_iou_{options.iou:g}'])} ({_pct(v['recall_iou_0.4'])}) of {v['faces']}"
            for width, v in row["by_width"].items()
        )
        speed = f"{row['ms_per_photo']} ms a photo"
        print(f"{label}: recall {_pct(row['recall'])}, precision {_pct(row['precision'])}, {speed}")
        print(f"    {cells}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


if __name__ == "__main__":
    main()
