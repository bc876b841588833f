"""Score calibration on LFW: build the shipped calibration files and check them on held-out people.

    python benchmarks/calibration.py [--pack NAME ...] [--seeds 10] [--write] [--cache DIR] [--json]

For each pack: embed the prominent face of the first photo of every person of ``../shared/data/lfw-dev``
(people with no face found are left out), then

- held-out check: split the people in two halves at random (seeds 0..N-1), calibrate on the impostor pairs
  of one half, and count how many impostor pairs of the other half (people the calibration never saw) pass
  the threshold for FMR 1e-3; the claim is that this lies within [5e-4, 2e-3];
- with ``--write``: the calibration from all people, written to
  ``src/facesearch/search/calibrations/<pack>@<version>.json`` (shipped with the package).

``--cache DIR`` reuses ``DIR/<pack>_first.npy`` when present: the same embeddings (rows in sorted person order,
people without a face left out), as written by an earlier run of this script or the threshold measurement of
docs/benchmarks.md; otherwise they are computed and saved there. The split is then over rows (one row per
person), which is a split by person.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, REPO, machine, use_shared_models

DEFAULT_PACKS = ("yunet-mobilefacenet", "dlib")


def embeddings(pack: str, cache: Path | None) -> tuple[np.ndarray, str]:
    """One row per person (first photo's prominent face), from the cache when there is one."""
    cached = cache / f"{pack}_first.npy" if cache is not None else None
    if cached is not None and cached.is_file():
        return np.load(cached), f"cached {cached}"
    import facesearch
    from facesearch.eval.calibrate import embed_people

    with tempfile.TemporaryDirectory(prefix="facesearch-calib-") as home, facesearch.open(home, pack=pack) as engine:
        _names, vectors = embed_people(engine.packs, LFW, pack)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)
    return vectors, "computed"


def run_pack(pack: str, seeds: int, write: bool, cache: Path | None) -> dict[str, Any]:
    from facesearch.eval.calibrate import calibration_from_embeddings, holdout_check
    from facesearch.search.calibration import SHIPPED_DIR, calibration_filename
    from facesearch.vision.packs import BUILTIN_PACKS

    key = BUILTIN_PACKS[pack].key
    started = time.perf_counter()
    vectors, origin = embeddings(pack, cache)
    embed_s = time.perf_counter() - started
    checks = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(vectors))
        half = len(order) // 2
        calibration = calibration_from_embeddings(key, vectors[np.sort(order[half:])], source=f"seed {seed}")
        check = holdout_check(calibration, vectors[np.sort(order[:half])], 1e-3)
        check["seed"] = seed
        checks.append(check)
    observed = [c["observed_fmr"] for c in checks]
    full = calibration_from_embeddings(
        key, vectors, source=f"lfw-dev: first photo of each of {len(vectors)} people (all cross-person pairs)"
    )
    result: dict[str, Any] = {
        "pack": key,
        "people": len(vectors),
        "embeddings": origin,
        "embed_s": round(embed_s, 1),
        "impostor_pairs": full.n_pairs,
        "threshold_fmr_1e-2": round(full.threshold_for(1e-2), 4),
        "threshold_fmr_1e-3": round(full.threshold_for(1e-3), 4),
        "threshold_fmr_1e-4": round(full.threshold_for(1e-4), 4),
        "threshold_fmr_1e-5": round(full.threshold_for(1e-5), 4),
        "holdout": checks,
        "holdout_observed_min": min(observed),
        "holdout_observed_max": max(observed),
        "holdout_all_within_factor_2": all(c["within_factor_2"] for c in checks),
    }
    if write:
        result["written"] = str(full.save(SHIPPED_DIR / calibration_filename(key)).relative_to(REPO))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", action="append", help="Pack(s) to calibrate (default: yunet-mobilefacenet, dlib).")
    parser.add_argument("--seeds", type=int, default=10, help="Random half/half splits by person to check.")
    parser.add_argument("--write", action="store_true", help="Write the all-people calibration files into the package.")
    parser.add_argument("--cache", type=Path, default=None, help="Folder of <pack>_first.npy embeddings to reuse.")
    parser.add_argument("--json", action="store_true", help="One JSON object per pack per line.")
    args = parser.parse_args()
    use_shared_models()
    for pack in args.pack or DEFAULT_PACKS:
        result = run_pack(pack, args.seeds, args.write, args.cache)
        result["machine"] = machine()
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            first = result["holdout"][0]
            print(
                f"{result['pack']}: {result['people']} people, {result['impostor_pairs']:,} impostor pairs; "
                f"threshold at FMR 1e-3 {result['threshold_fmr_1e-3']}; held out (seed 0): "
                f"{first['passed']}/{first['held_out_pairs']} = {first['observed_fmr']:.2e}; over "
                f"{len(result['holdout'])} splits "
                f"{result['holdout_observed_min']:.2e}..{result['holdout_observed_max']:.2e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
