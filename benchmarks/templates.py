"""Subject templates: how much a gallery of 1, 2 or 3 photos per person helps, and how to combine them.

    python benchmarks/templates.py [--pack NAME] [--json]

On ``../shared/data/lfw-dev`` (embedded once through the engine, cached like ``scale.py``'s embeddings):
the people with at least four photos are enrolled with their first 1, 2 or 3 photos; their photos from the
fourth on are the mated probes (the same probes for every gallery size, so the columns compare); the people
with a single photo are the non-mated probes. A subject's score for a probe is, by method:

- ``max``: the best of its faces (what a face-level search ranked by subject gives);
- ``mean_score``: the mean of the scores against its faces;
- ``template``: the score against the normalised mean of its face embeddings (one vector per subject).

Open-set figures per method and gallery size (NIST FRTE definitions, ``facesearch.eval.metrics``).

``impostor_pass_rates``: why a subject's ``fmr`` is read at its mean similarity. For templates of the first
1, 2, 3 and 5 photos of every person with that many, against the first photo of every other person: the
share of impostor comparisons at or above the pack's threshold, scored by template similarity and by mean
similarity. The single-face calibration holds for one photo; a template passes more strangers, a mean fewer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine
from facesearch.eval.metrics import open_set_metrics

METHODS = ("max", "mean_score", "template")


def subject_scores(probes: np.ndarray, gallery: list[np.ndarray], method: str) -> np.ndarray:
    """(probes, subjects) scores, each subject given by its stacked face embeddings."""
    if method == "template":
        templates = np.stack([faces.mean(axis=0) for faces in gallery])
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        return probes @ templates.T
    sizes = np.array([len(faces) for faces in gallery])
    scores = probes @ np.concatenate(gallery).T
    owners = np.repeat(np.arange(len(gallery)), sizes)
    result = np.full((len(probes), len(gallery)), -np.inf, dtype=np.float32)
    if method == "max":
        np.maximum.at(result.T, owners, scores.T)
        return result
    sums = np.zeros((len(gallery), len(probes)), dtype=np.float64)
    np.add.at(sums, owners, scores.T)
    return (sums / sizes[:, None]).T.astype(np.float32)


def run(pack: str) -> dict[str, Any]:
    """The whole comparison for one pack's cached lfw-dev embeddings."""
    from scale import lfw_embeddings, photos_by_person

    data = lfw_embeddings(pack)
    vectors = data["vectors"]
    by_person = photos_by_person(data)
    enrolled = sorted(p for p, rows in by_person.items() if len(rows) >= 4)
    singles = sorted(p for p, rows in by_person.items() if len(rows) == 1)
    probe_rows = [(i, row) for i, p in enumerate(enrolled) for row in by_person[p][3:]]
    mated = vectors[[row for _, row in probe_rows]]
    owners = np.array([i for i, _ in probe_rows])
    nonmated = vectors[[by_person[p][0] for p in singles]]
    results: dict[str, Any] = {
        "pack": pack,
        "enrolled_people": len(enrolled),
        "mated_probes": len(mated),
        "nonmated_probes": len(nonmated),
        "rows": [],
    }
    for size in (1, 2, 3):
        gallery = [vectors[by_person[p][:size]] for p in enrolled]
        for method in METHODS if size > 1 else ("max",):
            mated_scores = subject_scores(mated, gallery, method)
            order = np.argsort(-mated_scores, axis=1)
            ranks = np.argmax(order == owners[:, None], axis=1) + 1
            top = mated_scores[np.arange(len(mated)), order[:, 0]]
            nonmated_top = subject_scores(nonmated, gallery, method).max(axis=1)
            metrics = open_set_metrics(top, ranks == 1, np.where(ranks <= 20, ranks, 0), nonmated_top)
            results["rows"].append(
                {
                    "photos_per_subject": size,
                    "method": method,
                    "rank1": round(metrics["rank1"], 4),
                    "fnir_at_fpir_0.1": round(metrics["fnir_at_fpir"][0]["fnir"], 4),
                    "fnir_at_fpir_0.01": round(metrics["fnir_at_fpir"][1]["fnir"], 4),
                }
            )
    results["impostor_pass_rates"] = impostor_pass_rates(data, by_person, pack)
    results["machine"] = machine()
    return results


def impostor_pass_rates(data: dict[str, np.ndarray], by_person: dict[str, list[int]], pack: str) -> list[dict]:
    """Share of impostor comparisons at or above the pack's threshold, by template size and score."""
    from facesearch.vision.packs import BUILTIN_PACKS

    threshold = BUILTIN_PACKS[pack].threshold
    vectors = data["vectors"]
    people = sorted(by_person)
    firsts = vectors[[by_person[p][0] for p in people]]
    rows = []
    for size in (1, 2, 3, 5):
        chosen = [k for k, p in enumerate(people) if len(by_person[p]) >= size]
        means = np.stack([vectors[by_person[people[k]][:size]].mean(axis=0) for k in chosen])
        templates = means / np.linalg.norm(means, axis=1, keepdims=True)
        impostor = np.ones((len(chosen), len(people)), dtype=bool)
        impostor[np.arange(len(chosen)), chosen] = False
        rows.append(
            {
                "photos_per_subject": size,
                "subjects": len(chosen),
                "impostor_comparisons": int(impostor.sum()),
                "threshold": threshold,
                "template_pass_rate": float(((templates @ firsts.T) >= threshold)[impostor].mean()),
                "mean_similarity_pass_rate": float(((means @ firsts.T) >= threshold)[impostor].mean()),
            }
        )
    return rows


def main() -> int:
    """Print the comparison as a table, or as one JSON line with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default="yunet-mobilefacenet")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.pack)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['pack']}: {result['enrolled_people']} people enrolled, {result['mated_probes']} mated and "
        f"{result['nonmated_probes']} non-mated probes"
    )
    print("photos/subject  method       rank-1   FNIR@FPIR0.1  FNIR@FPIR0.01")
    for row in result["rows"]:
        print(
            f"{row['photos_per_subject']:>14}  {row['method']:<11} {100 * row['rank1']:6.2f}%  "
            f"{100 * row['fnir_at_fpir_0.1']:11.2f}%  {100 * row['fnir_at_fpir_0.01']:12.2f}%"
        )
    print("impostors at or above the threshold: photos/subject  by template  by mean similarity")
    for rate in result["impostor_pass_rates"]:
        print(
            f"{rate['photos_per_subject']:>51}  {rate['template_pass_rate']:11.2e}  "
            f"{rate['mean_similarity_pass_rate']:18.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
