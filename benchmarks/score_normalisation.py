"""Cohort score normalisation for open-set search: does it help a single pack? (An experiment, kept to rerun.)

    python benchmarks/score_normalisation.py [--pack NAME] [--json]

The open-set protocol of ``accuracy.py`` on lfw-dev embeddings (cached as by ``scale.py``), scored four ways:
raw cosine similarity; probe-side normalisation (each probe's scores standardised by the mean and standard
deviation of its ``K`` best gallery scores, i.e. an adaptive threshold per probe); gallery-side
normalisation (each gallery face's scores standardised by its ``K`` best scores against the rest of the
gallery, the cohort); and their average (adaptive symmetric normalisation, AS-norm).
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


def _figures(mated_scores: np.ndarray, owners: np.ndarray, nonmated_scores: np.ndarray) -> dict[str, float]:
    order = np.argsort(-mated_scores, axis=1)
    top = mated_scores[np.arange(len(mated_scores)), order[:, 0]]
    ranks = np.argmax(order == owners[:, None], axis=1) + 1
    metrics = open_set_metrics(top, ranks == 1, np.where(ranks <= 20, ranks, 0), nonmated_scores.max(axis=1))
    return {
        "rank1": round(metrics["rank1"], 4),
        **{f"fnir_at_fpir_{p['fpir']:g}": round(p["fnir"], 4) for p in metrics["fnir_at_fpir"]},
    }


def _top_stats(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    best = -np.sort(-scores, axis=1)[:, :k]
    return best.mean(axis=1, keepdims=True), best.std(axis=1, keepdims=True)


def run(pack: str) -> dict[str, Any]:
    """Every normalisation at several cohort sizes, on one pack's cached lfw-dev embeddings."""
    from scale import lfw_embeddings, photos_by_person

    data = lfw_embeddings(pack)
    vectors = data["vectors"]
    by_person = photos_by_person(data)
    enrolled = sorted(p for p, rows in by_person.items() if len(rows) >= 2)
    gallery = vectors[[by_person[p][0] for p in enrolled]]
    mated_rows = [(i, row) for i, p in enumerate(enrolled) for row in by_person[p][1:]]
    owners = np.array([i for i, _ in mated_rows])
    mated = vectors[[row for _, row in mated_rows]] @ gallery.T
    nonmated = vectors[[rows[0] for p, rows in sorted(by_person.items()) if len(rows) == 1]] @ gallery.T
    cohort = gallery @ gallery.T
    np.fill_diagonal(cohort, -np.inf)
    rows: list[dict[str, Any]] = [{"method": "raw", "k": None, **_figures(mated, owners, nonmated)}]
    for k in (50, 100, 300):
        gallery_mean, gallery_std = (a.T for a in _top_stats(cohort, k))
        mated_mean, mated_std = _top_stats(mated, k)
        nonmated_mean, nonmated_std = _top_stats(nonmated, k)
        probe = ((mated - mated_mean) / mated_std, (nonmated - nonmated_mean) / nonmated_std)
        side = ((mated - gallery_mean) / gallery_std, (nonmated - gallery_mean) / gallery_std)
        for method, (m, n) in (
            ("probe", probe),
            ("gallery", side),
            ("as-norm", ((probe[0] + side[0]) / 2, (probe[1] + side[1]) / 2)),
        ):
            rows.append({"method": method, "k": k, **_figures(m, owners, n)})
    return {"pack": pack, "gallery": len(gallery), "rows": rows, "machine": machine()}


def main() -> int:
    """Print a table, or one JSON line with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default="yunet-mobilefacenet")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.pack)
    if args.json:
        print(json.dumps(result))
        return 0
    for row in result["rows"]:
        figures = "  ".join(f"{key} {100 * value:.2f}%" for key, value in row.items() if key not in ("method", "k"))
        print(f"{row['method']:<8} K={row['k'] or '-':<4} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
