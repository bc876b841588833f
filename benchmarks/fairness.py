"""False-match rates between groups of people, and whether cohort score normalisation narrows them (issue 16).

For each pack: the prominent face of every lfw-dev person's first photo (impostor pairs) and of the second
photo of every person with two or more (genuine pairs, first against second), the group of each person from
``../shared/data/lfw-dev/gender.csv``. The people are split into two halves at random (``--seeds`` splits);
one half is the *cohort*, the other is evaluated, then the other way round (cross-fitted: no face is ever
normalised against itself or its own people). Scores, each without any group as input:

- ``raw``: cosine similarity, as the pack scores today;
- ``cohort``: ``s(a, b) - (m_a + m_b) / 2``, where ``m_x`` is the mean of face x's ``--top`` highest
  similarities to the cohort (a face that looks like many strangers has its scores lowered);
- ``s-norm``: ``((s - mu_a) / sd_a + (s - mu_b) / sd_b) / 2`` against the whole cohort;
- ``pc-removed``: cosine after taking away the cohort's mean and its first principal component (the
  direction along which faces differ most, learnt without labels) and normalising again;
- for ``fused`` only, ``weight-W``: the cosine with MobileFaceNet's part weighted W and dlib's 1 - W
  (the pack's own weight is 0.338; 1.0 is MobileFaceNet alone).

For each score, the threshold giving FMR 1e-3 over all impostor pairs of the evaluated half is found, and at
it: FMR within each group, the ratio of the two (higher over lower), and FNMR of the genuine pairs overall and
per group. Figures are means over the splits and halves.

    python benchmarks/fairness.py [--pack NAME ...] [--seeds 5] [--top 50] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, machine, use_shared_models

GENDER = LFW.parent / "gender.csv"
TARGET_FMR = 1e-3


def faces(pack: str, cache: Path | None) -> dict[str, Any]:
    """Names, first-photo vectors, and second-photo vectors (``None`` rows for people without one)."""
    cached = cache / f"{pack}_fairness.npz" if cache is not None else None
    if cached is not None and cached.is_file():
        stored = np.load(cached, allow_pickle=False)
        return {key: stored[key] for key in stored.files}
    import facesearch
    from facesearch.eval.calibrate import embed_people
    from facesearch.eval.lfw import list_people
    from facesearch.search.service import analysis_lock
    from facesearch.vision.image import ImageRejected, load_image
    from facesearch.vision.packs import prominent_face

    with tempfile.TemporaryDirectory(prefix="facesearch-fair-") as home, facesearch.open(home, pack=pack) as engine:
        names, first = embed_people(engine.packs, LFW, pack)
        model_pack = engine.packs.pack(pack)
        folders = list_people(LFW)
        second = np.full_like(first, np.nan)
        for row, name in enumerate(names):
            if len(folders[name]) < 2:
                continue
            try:
                rgb = load_image(folders[name][1])
            except ImageRejected:
                continue
            with analysis_lock(model_pack):
                analysed = model_pack.analyse([rgb])[0]
            main = prominent_face([f.detection for f in analysed], rgb.shape)
            if main is not None:
                second[row] = analysed[main].embedding
    result = {"names": np.array(names), "first": first, "second": second}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, names=result["names"], first=first, second=second)
    return result


def cohort_means(vectors: np.ndarray, cohort: np.ndarray, top: int) -> np.ndarray:
    """Each vector's mean similarity to its ``top`` nearest cohort faces."""
    scores = vectors @ cohort.T
    return np.sort(np.partition(scores, -top, axis=1)[:, -top:], axis=1).mean(axis=1)


FUSED_WEIGHT = 0.338  # the fused pack's weight of MobileFaceNet's similarity
WEIGHTS = (0.5, 0.7, 1.0)


def reweighted(vectors: np.ndarray, weight: float) -> np.ndarray:
    """Fused vectors ``[sqrt(w0) x, sqrt(1 - w0) y]`` rebuilt with weight ``weight`` in place of ``w0``."""
    half = vectors.shape[1] // 2
    first, second = vectors[:, :half] / np.sqrt(FUSED_WEIGHT), vectors[:, half:] / np.sqrt(1 - FUSED_WEIGHT)
    return np.hstack([np.sqrt(weight) * first, np.sqrt(1 - weight) * second]).astype(np.float32)


def without_first_component(vectors: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """``vectors`` less the cohort's mean and first principal component, unit length again."""
    mean = cohort.mean(axis=0)
    component = np.linalg.svd(cohort - mean, full_matrices=False)[2][:1]
    moved = vectors - mean
    moved = moved - (moved @ component.T) @ component
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def scored(kind: str, a: np.ndarray, b: np.ndarray, cohort: np.ndarray, top: int) -> np.ndarray:
    """The ``kind`` score of every pair of rows of ``a`` and ``b`` (a matrix), against ``cohort``."""
    if kind.startswith("weight-"):
        weight = float(kind.removeprefix("weight-"))
        return reweighted(a, weight) @ reweighted(b, weight).T
    if kind == "pc-removed":
        return without_first_component(a, cohort) @ without_first_component(b, cohort).T
    raw = a @ b.T
    if kind == "raw":
        return raw
    if kind == "cohort":
        return raw - (cohort_means(a, cohort, top)[:, None] + cohort_means(b, cohort, top)[None, :]) / 2
    to_a, to_b = a @ cohort.T, b @ cohort.T
    mu_a, sd_a = to_a.mean(axis=1)[:, None], to_a.std(axis=1)[:, None]
    mu_b, sd_b = to_b.mean(axis=1)[None, :], to_b.std(axis=1)[None, :]
    return ((raw - mu_a) / sd_a + (raw - mu_b) / sd_b) / 2


def evaluate(kind: str, data: dict[str, Any], groups: np.ndarray, evaluated: np.ndarray, top: int) -> dict[str, Any]:
    """FMR per group, their ratio and FNMR at the FMR 1e-3 threshold of the evaluated people."""
    cohort_rows = np.setdiff1d(np.arange(len(groups)), evaluated)
    cohort = data["first"][cohort_rows]
    first = data["first"][evaluated]
    impostor = scored(kind, first, first, cohort, top)
    upper = np.triu_indices(len(evaluated), k=1)
    pairs = impostor[upper]
    threshold = float(np.quantile(pairs, 1 - TARGET_FMR))
    mine = groups[evaluated]
    figures: dict[str, Any] = {"threshold": threshold}
    fmr = {}
    for name in sorted(set(groups)):
        inside = (mine[upper[0]] == name) & (mine[upper[1]] == name)
        fmr[name] = float(np.mean(pairs[inside] >= threshold))
    low, high = sorted(fmr.values())
    figures["fmr"] = fmr
    figures["fmr_ratio"] = high / low if low else None
    has_second = ~np.isnan(data["second"][evaluated][:, 0])
    second = data["second"][evaluated][has_second]
    genuine = np.diag(scored(kind, first[has_second], second, cohort, top))
    figures["fnmr"] = float(np.mean(genuine < threshold))
    figures["fnmr_by_group"] = {
        name: float(np.mean(genuine[mine[has_second] == name] < threshold)) for name in sorted(set(groups))
    }
    return figures


def run_pack(pack: str, seeds: int, top: int, cache: Path | None) -> dict[str, Any]:
    """Every score kind over ``seeds`` random halvings of the people, both halves evaluated in turn."""
    data = faces(pack, cache)
    with GENDER.open() as handle:
        gender = {row["person"]: row["group"] for row in csv.DictReader(handle)}
    keep = np.array([str(name) in gender for name in data["names"]])
    data = {key: value[keep] for key, value in data.items()}
    groups = np.array([gender[str(name)] for name in data["names"]])
    report: dict[str, Any] = {"pack": pack, "people": len(groups), "by_score": {}}
    kinds = ["raw", "cohort", "s-norm", "pc-removed"]
    if pack == "fused":
        kinds += [f"weight-{w}" for w in WEIGHTS]
    for kind in kinds:
        runs = []
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(len(groups))
            for half in (order[: len(order) // 2], order[len(order) // 2 :]):
                runs.append(evaluate(kind, data, groups, np.sort(half), top))
        names = sorted(set(groups))
        report["by_score"][kind] = {
            "fmr": {n: float(np.mean([r["fmr"][n] for r in runs])) for n in names},
            "fmr_ratio": float(np.mean([r["fmr_ratio"] for r in runs if r["fmr_ratio"] is not None])),
            "fmr_ratio_range": [
                float(min(r["fmr_ratio"] for r in runs if r["fmr_ratio"])),
                float(max(r["fmr_ratio"] for r in runs if r["fmr_ratio"])),
            ],
            "fnmr": float(np.mean([r["fnmr"] for r in runs])),
            "fnmr_by_group": {n: float(np.mean([r["fnmr_by_group"][n] for r in runs])) for n in names},
        }
    return report


def main() -> None:
    """Measure each pack and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="append", help="packs to measure (default: fused)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--top", type=int, default=50, help="cohort neighbours averaged by the cohort score")
    parser.add_argument("--cache", type=Path, help="keep each pack's vectors here between runs")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    reports = [run_pack(pack, options.seeds, options.top, options.cache) for pack in options.pack or ["fused"]]
    if options.json:
        print(json.dumps({"machine": machine(), "packs": reports}))
        return
    for report in reports:
        print(f"{report['pack']} ({report['people']} people), at FMR {TARGET_FMR:g} over all impostor pairs:")
        for kind, figures in report["by_score"].items():
            fmr = ", ".join(f"{name} {value:.2e}" for name, value in figures["fmr"].items())
            fnmr = ", ".join(f"{name} {100 * value:.2f}%" for name, value in figures["fnmr_by_group"].items())
            low, high = figures["fmr_ratio_range"]
            print(
                f"  {kind:>10}: FMR {fmr}; ratio {figures['fmr_ratio']:.2f} ({low:.2f}-{high:.2f}); "
                f"FNMR {100 * figures['fnmr']:.2f}% ({fnmr})"
            )


if __name__ == "__main__":
    main()
