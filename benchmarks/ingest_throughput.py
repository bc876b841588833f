"""Ingest throughput, end to end (decode -> detect -> align -> embed -> catalog commit -> index saved).

Compares each pack with the ``face_recognition`` library doing the same work on the same images (HOG
detection with one upsample and 128-d encodings, one process, as its documentation shows).

    python benchmarks/ingest_throughput.py [--images N] [--pack NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, lfw_images, machine, use_shared_models


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (worker pools included)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def link_folder(images: list[Path], folder: Path) -> None:
    """Symlink the images into ``folder`` (one subfolder per person)."""
    for image in images:
        target = folder / image.parent.name / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(image)


def bench_pack(pack: str, images: list[Path], workers: int) -> dict[str, float | int | str]:
    """Index the images with one pack into a fresh data folder; images/s over the whole command."""
    import facesearch

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        link_folder(images, folder)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        with facesearch.open(Path(scratch) / "home", pack=pack) as engine:
            summary = engine.index([folder], collection="bench", workers=workers)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return _row(pack, len(images), summary.faces, elapsed, cpu, workers)


def _row(name: str, images: int, faces: int, elapsed: float, cpu: float, workers: int) -> dict[str, float | int | str]:
    # images_per_s is wall-clock; images_per_s_cpu is what the same CPU time gives on `workers` dedicated
    # cores, the fair figure when other work shares the machine (both are reported).
    return {
        "pack": name,
        "images": images,
        "faces": faces,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "images_per_s": round(images / elapsed, 1),
        "images_per_s_cpu": round(images / (cpu / workers), 1),
        "workers": workers,
    }


def bench_face_recognition(images: list[Path]) -> dict[str, float | int | str] | None:
    """The reference: the face_recognition library's documented pipeline, one process."""
    if not images:  # --reference-images 0: packs only
        return None
    try:
        import face_recognition
    except ImportError:
        return None
    faces = 0
    started, cpu_started = time.perf_counter(), cpu_seconds()
    for image in images:
        pixels = face_recognition.load_image_file(str(image))
        locations = face_recognition.face_locations(pixels)
        faces += len(face_recognition.face_encodings(pixels, locations))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return _row("face_recognition (reference)", len(images), faces, elapsed, cpu, 1)


def main() -> None:
    """Run the comparison and print a table (or JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--dlib-images", type=int, default=200, help="images for the slower dlib pack")
    parser.add_argument("--reference-images", type=int, default=200, help="images for face_recognition")
    parser.add_argument("--pack", action="append", help="packs to measure (default: yunet-mobilefacenet, dlib)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not LFW.is_dir():
        sys.exit(f"{LFW} is absent: this benchmark needs ../shared/data/lfw-dev")
    use_shared_models()
    images = lfw_images(args.images)
    rows = [
        bench_pack(pack, images[: args.dlib_images] if pack == "dlib" else images, args.workers)
        for pack in args.pack or ["yunet-mobilefacenet", "dlib"]
    ]
    reference = bench_face_recognition(images[: args.reference_images])
    if reference is not None:
        rows.append(reference)
        for row in rows[:-1]:
            row["speedup_vs_face_recognition"] = round(float(row["images_per_s"]) / float(reference["images_per_s"]), 1)
            row["speedup_vs_face_recognition_cpu"] = round(
                float(row["images_per_s_cpu"]) / float(reference["images_per_s_cpu"]), 1
            )
    info = machine()
    if args.json:
        for row in rows:
            print(json.dumps({**row, "machine": info}))
        return
    print(f"ingest throughput on {info['cpu']} ({info['cores']} cores), {info['date']}")
    for row in rows:
        speedup = row.get("speedup_vs_face_recognition")
        extra = (
            f"  {speedup}x / {row.get('speedup_vs_face_recognition_cpu')}x (CPU) face_recognition" if speedup else ""
        )
        print(
            f"  {row['pack']:<32} {row['images']:>5} images {row['faces']:>5} faces "
            f"{row['seconds']:>7.1f} s {row['images_per_s']:>7.1f} images/s "
            f"({row['images_per_s_cpu']:.1f} images/s on {row['workers']} dedicated cores by CPU time){extra}"
        )


if __name__ == "__main__":
    main()
