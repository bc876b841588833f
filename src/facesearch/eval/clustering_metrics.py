"""How well a clustering matches the truth: pairwise precision and recall (every pair of faces put together,
right or wrong) and BCubed precision, recall and F (per face, so large identities do not drown small ones).

Pairwise precision is the measure that prices false merges: a wrong merge of two large clusters puts many
wrong pairs together at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _contingency(labels: Any, truth: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sizes of each (cluster, true identity) cell, of each cluster and of each identity; and per face the
    size of its cell."""
    _, found = np.unique(np.asarray(labels), return_inverse=True)
    _, real = np.unique(np.asarray(truth), return_inverse=True)
    cells, cell_of, cell_sizes = np.unique(
        found.astype(np.int64) * (real.max() + 1) + real, return_inverse=True, return_counts=True
    )
    del cells
    return cell_sizes, np.bincount(found), np.bincount(real), cell_sizes[cell_of]


def pairwise_scores(labels: Any, truth: Any) -> dict[str, Any]:
    """Pairwise precision and recall of ``labels`` (found clusters) against ``truth`` (identities), one entry
    per face, with the pair counts; precision is 1 when no pair was put together."""
    cell_sizes, cluster_sizes, identity_sizes, _ = _contingency(labels, truth)
    together_right = _pairs(cell_sizes)
    together = _pairs(cluster_sizes)
    should_be = _pairs(identity_sizes)
    precision = together_right / together if together else 1.0
    recall = together_right / should_be if should_be else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f": round(f, 5),
        "pairs_together": together,
        "pairs_wrong": together - together_right,
        "pairs_true": should_be,
    }


def bcubed_scores(labels: Any, truth: Any) -> dict[str, float]:
    """BCubed precision, recall and F: for each face, the share of its cluster that is its identity and the
    share of its identity that is in its cluster, averaged over faces."""
    _, found = np.unique(np.asarray(labels), return_inverse=True)
    _, real = np.unique(np.asarray(truth), return_inverse=True)
    _, cluster_sizes, identity_sizes, cell_of_face = _contingency(labels, truth)
    precision = float(np.mean(cell_of_face / cluster_sizes[found]))
    recall = float(np.mean(cell_of_face / identity_sizes[real]))
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 5), "recall": round(recall, 5), "f": round(f, 5)}
