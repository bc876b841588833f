"""Near-duplicate recall and precision of `facesearch provenance`, and the hash lookup's time at a million pictures
(issue 14: recall >= 0.95 at precision >= 0.99 for the default edits; lookup p50 <= 20 ms at 1M images).

The gallery is lfw-dev (less ``--strangers`` people's photos, kept out) and the group photos, indexed with the
default pack into a fresh data folder. ``--originals`` of its pictures (every group photo among them) are
edited the ways a picture is changed as it circulates, and each edit is looked up as a probe:

- ``jpeg``: re-encoded at a JPEG quality drawn from 30-90;
- ``resize25``: shrunk to 25% of its size;
- ``crop``: 10-20% of its width and height cut away, unevenly between the sides;
- ``border``: a plain frame of 5-15% added (black, white or grey);
- ``mirror``: flipped left to right;
- ``screenshot``: rescaled by 0.6-0.9 and set in an app's chrome (a title bar and a tool bar with text);
- ``caption``: a band with text written over the lower part.

Recall is the share of edits whose original is among the duplicates found. Precision counts every duplicate
returned, for the edits and for the held-out strangers' photos (which have no copy in the gallery): a returned
picture other than the original is a false one.

The hash lookup is timed on its own at ``--scale`` random hashes (a real picture's PDQ bits are close to
uniform): the four variants of a real probe (as it is, mirrored, trimmed, trimmed and mirrored) against a
FAISS binary index of that size, as `provenance` asks it.

    python benchmarks/provenance.py [--originals 300] [--strangers 300] [--scale 1000000] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, SHARED, machine, use_shared_models

EDITS = ("jpeg", "resize25", "crop", "border", "mirror", "screenshot", "caption")


def jpeg_copy(picture: Image.Image, quality: int) -> Image.Image:
    """``picture`` after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def edit(picture: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """One edit of ``picture`` (see the module's note), re-encoded as JPEG as a platform would."""
    width, height = picture.size
    if kind == "jpeg":
        return jpeg_copy(picture, rng.randint(30, 90))
    if kind == "resize25":
        return jpeg_copy(picture.resize((max(1, width // 4), max(1, height // 4)), Image.Resampling.LANCZOS), 85)
    if kind == "crop":
        cut_x, cut_y = int(width * rng.uniform(0.1, 0.2)), int(height * rng.uniform(0.1, 0.2))
        left, top = rng.randint(0, cut_x), rng.randint(0, cut_y)
        return jpeg_copy(picture.crop((left, top, width - (cut_x - left), height - (cut_y - top))), 85)
    if kind == "border":
        size = int(max(width, height) * rng.uniform(0.05, 0.15))
        colour = rng.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128)])
        return jpeg_copy(ImageOps.expand(picture, border=size, fill=colour), 85)
    if kind == "mirror":
        return jpeg_copy(ImageOps.mirror(picture), 85)
    if kind == "screenshot":
        scale = rng.uniform(0.6, 0.9)
        shown = picture.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.Resampling.BILINEAR)
        bar = max(24, shown.height // 8)
        screen = Image.new("RGB", (shown.width + 20, shown.height + 3 * bar), (246, 246, 246))
        screen.paste(shown, (10, bar + bar // 2))
        draw = ImageDraw.Draw(screen)
        draw.rectangle((0, 0, screen.width, bar), fill=(30, 60, 120))
        draw.text((8, bar // 3), "09:41   News feed   @someone shared a photo", fill=(255, 255, 255))
        draw.text((8, screen.height - bar), "Like   Comment   Share   1.2k views", fill=(40, 40, 40))
        return jpeg_copy(screen, 80)
    if kind == "caption":
        captioned = picture.copy()
        draw = ImageDraw.Draw(captioned)
        draw.rectangle((0, int(height * 0.82), width, height), fill=(0, 0, 0))
        draw.text((6, int(height * 0.85)), "BREAKING: seen at the border crossing today", fill=(255, 255, 255))
        return jpeg_copy(captioned, 85)
    raise ValueError(kind)


def gallery_and_strangers(strangers: int, rng: random.Random) -> tuple[list[Path], list[Path]]:
    """The gallery's pictures (lfw-dev less the strangers' people, and the group photos) and the strangers'."""
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    rng.shuffle(people)
    kept_out: list[Path] = []
    gallery: list[Path] = []
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if len(kept_out) < strangers:
            kept_out.extend(photos[:1])
        else:
            gallery.extend(photos)
    gallery.extend(sorted((SHARED / "data" / "group-photos").glob("*.jpg")))
    return gallery, kept_out


def time_hash_lookup(scale: int, probe: np.ndarray, runs: int = 200) -> dict[str, float]:
    """Median and p99 of a lookup's hash search (the probe's four variants) among ``scale`` random hashes."""
    from facesearch.index.picture_hashes import PictureHashIndex
    from facesearch.search.provenance import CANDIDATE_RADIUS
    from facesearch.vision.fingerprints import probe_fingerprints

    generator = np.random.default_rng(7)
    codes = generator.integers(0, 256, (scale, 32), dtype=np.uint8)

    class RandomHashes:
        def hashed_count(self) -> int:
            return scale

        def hashes_after(self, after_id: int, limit: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            ids = np.arange(after_id + 1, min(scale, after_id + limit) + 1, dtype=np.int64)
            return ids, np.ones(len(ids), dtype=np.int64), codes[ids - 1]

    index = PictureHashIndex(RandomHashes())
    started = time.perf_counter()
    index.catch_up(1)
    built = time.perf_counter() - started
    variants = {name: found.pdq for name, found in probe_fingerprints(probe).items()}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        index.near(variants, CANDIDATE_RADIUS)
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "pictures": scale,
        "variants": len(variants),
        "build_s": round(built, 2),
        "p50_ms": round(statistics.median(times) * 1000, 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 2),
    }


def main() -> None:
    """Build the gallery, look up every edit and stranger, print recall per edit, precision and lookup times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=300)
    parser.add_argument("--strangers", type=int, default=300)
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    import facesearch

    rng = random.Random(20261202)
    gallery, strangers = gallery_and_strangers(options.strangers, rng)
    groups = [p for p in gallery if "group-photos" in str(p)]
    originals = groups + rng.sample([p for p in gallery if p not in groups], options.originals - len(groups))
    report: dict[str, Any] = {"machine": machine(), "gallery": len(gallery), "originals": len(originals)}
    with tempfile.TemporaryDirectory(prefix="facesearch-provenance-") as scratch:
        home = Path(scratch) / "home"
        with facesearch.open(home) as fs:
            started = time.perf_counter()
            fs.index([str(p) for p in gallery], collection="archive", workers=options.workers)
            report["index_s"] = round(time.perf_counter() - started, 1)
            context = fs.searching.context(purpose=None, case_id=None)
            found: dict[str, list[bool]] = defaultdict(list)
            returned, false_ones, times = 0, 0, []
            examples: list[str] = []

            def look(data: bytes) -> list[str]:
                started = time.perf_counter()
                result = fs.provenance.lookup(data, context=context)
                times.append(time.perf_counter() - started)
                return [d.image for d in result.duplicates]

            for original in originals:
                picture = Image.open(original).convert("RGB")
                for kind in EDITS:
                    buffer = io.BytesIO()
                    edit(picture, kind, rng).save(buffer, "JPEG", quality=95)
                    images = look(buffer.getvalue())
                    hit = str(original) in images
                    found[kind].append(hit)
                    returned += len(images)
                    wrong = [image for image in images if image != str(original)]
                    false_ones += len(wrong)
                    if wrong and len(examples) < 10:
                        examples.append(f"{kind} of {original.name}: {[Path(w).name for w in wrong]}")
            for stranger in strangers:
                images = look(stranger.read_bytes())
                returned += len(images)
                false_ones += len(images)
                if images and len(examples) < 10:
                    examples.append(f"stranger {stranger.name}: {[Path(w).name for w in images]}")
        report["recall"] = {kind: round(float(np.mean(hits)), 4) for kind, hits in found.items()}
        report["recall_all"] = round(float(np.mean([h for hits in found.values() for h in hits])), 4)
        report["duplicates_returned"] = returned
        report["false_duplicates"] = false_ones
        report["precision"] = round(1 - false_ones / returned, 4) if returned else None
        report["false_examples"] = examples
        times.sort()
        report["lookup_p50_ms"] = round(statistics.median(times) * 1000, 1)
        report["lookup_p99_ms"] = round(times[int(len(times) * 0.99) - 1] * 1000, 1)
    probe = np.asarray(Image.open(originals[0]).convert("RGB"))
    report["hash_lookup"] = time_hash_lookup(options.scale, probe)
    if options.json:
        print(json.dumps(report))
        return
    print(report["machine"])
    print(f"gallery {report['gallery']} pictures (indexed in {report['index_s']} s), {report['originals']} edited")
    for kind, value in report["recall"].items():
        print(f"  recall {kind:11s} {value:.4f}")
    print(f"  recall, every edit: {report['recall_all']:.4f}")
    print(
        f"  precision {report['precision']} ({report['false_duplicates']} false of {report['duplicates_returned']} "
        f"returned, {len(strangers)} strangers included)"
    )
    for example in examples:
        print(f"    false: {example}")
    print(f"  whole lookup on this gallery: p50 {report['lookup_p50_ms']} ms, p99 {report['lookup_p99_ms']} ms")
    lookup = report["hash_lookup"]
    print(
        f"hash lookup at {lookup['pictures']:,} pictures ({lookup['variants']} variants): p50 {lookup['p50_ms']} ms, "
        f"p99 {lookup['p99_ms']} ms (index built in {lookup['build_s']} s)"
    )


if __name__ == "__main__":
    main()
