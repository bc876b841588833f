"""Accuracy metrics for 1:1 verification and open-set 1:N identification, as NIST FRTE defines them.

Pure numpy, no I/O. Conventions shared by every function:

- A higher score means more alike; a comparison is a *match* (or a candidate is *returned*) when its score
  is ``>= T`` for a threshold ``T``.
- A comparison that could not be made (no face found in a photo) is passed as ``-inf`` (``NaN`` is read the
  same way). It never matches at any threshold: for a genuine pair or a mated probe it is an error (a false
  non-match / a miss), for an impostor pair or a non-mated probe it is never a false positive. This is how
  NIST counts failures to make a template.
- A threshold for a target false-positive rate ``r`` over ``N`` negative scores is the smallest threshold
  whose measured rate is ``<= r``: at most ``floor(r * N)`` negatives may reach it. No interpolation is done,
  so with ties at the boundary the achieved rate can be below the target; the achieved rate is reported
  next to every such threshold, and ``resolvable`` is false when ``r * N < 1`` (the target is below what
  ``N`` negatives can measure, and the threshold is simply above the highest negative score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# Slack for floating-point error in ``rate * N`` (0.29 * 100 is 28.999999999999996).
_COUNT_EPS = 1e-9


def _clean(scores: Any) -> np.ndarray:
    """Scores as float64 with ``NaN`` (a failed comparison) turned into ``-inf``."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    return np.where(np.isnan(values), -np.inf, values)


def _accepted(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which scores reach ``threshold``; a failed comparison (``-inf``) never does."""
    return np.isfinite(scores) & (scores >= threshold)


def threshold_at_rate(negative_scores: Any, rate: float) -> dict[str, Any]:
    """The smallest threshold at which at most a share ``rate`` of ``negative_scores`` is accepted.

    With ``N`` negatives, at most ``k = floor(rate * N)`` of them may have a score ``>= T``; ``T`` is the
    smallest float above the ``(k + 1)``-th highest negative score (or ``-inf`` when ``k >= N``). Returns
    ``{"threshold", "achieved_rate", "negatives", "resolvable"}``; ``threshold`` is ``NaN`` when there are
    no negatives.
    """
    negatives = np.sort(_clean(negative_scores))[::-1]
    count = int(negatives.size)
    if count == 0:
        return {"threshold": math.nan, "achieved_rate": math.nan, "negatives": 0, "resolvable": False}
    allowed = math.floor(rate * count + _COUNT_EPS)
    threshold = -math.inf if allowed >= count else float(np.nextafter(negatives[allowed], np.inf))
    return {
        "threshold": threshold,
        "achieved_rate": float(np.mean(_accepted(negatives, threshold))),
        "negatives": count,
        "resolvable": rate * count >= 1.0 - _COUNT_EPS,
    }


# Verification -------------------------------------------------------------------------------------------


def best_accuracy_threshold(scores: Any, labels: Any) -> float:
    """The threshold that classifies ``(scores, labels)`` best (match when ``score >= T``).

    Candidates are the midpoints between consecutive distinct finite scores, plus one below the lowest and
    one above the highest. Among thresholds of equal accuracy the middle one (by position) is taken, so the
    choice does not lean to either end of a flat optimum. ``NaN`` for empty input.
    """
    values = _clean(scores)
    truth = np.asarray(labels).ravel().astype(bool)
    finite = np.isfinite(values)
    distinct = np.unique(values[finite])
    if distinct.size == 0:
        return math.nan
    candidates = np.concatenate(([distinct[0] - 1.0], (distinct[:-1] + distinct[1:]) / 2.0, [distinct[-1] + 1.0]))
    positives = np.sort(values[truth & finite])
    negatives = np.sort(values[~truth & finite])
    correct = (positives.size - np.searchsorted(positives, candidates, side="left")) + np.searchsorted(
        negatives, candidates, side="left"
    )
    # Non-finite negatives are always rejected (correct); non-finite positives always wrong: constants.
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[(best.size - 1) // 2]])


def verification_10fold(scores: Any, labels: Any, folds: Any, *, failed: Any | None = None) -> dict[str, Any]:
    """k-fold verification accuracy (10 folds on LFW): each fold is tested at the threshold fitted on the rest.

    ``scores``: similarity of each pair; ``labels``: 1 for the same person, 0 otherwise; ``folds``: the
    fold of each pair. For each test fold, the threshold of best accuracy on the other folds is found
    (:func:`best_accuracy_threshold`) and the fold's accuracy measured at it. ``failed`` marks pairs that
    could not be compared (a face not found): they are left out of the threshold fitting and count as
    wrong in their test fold, whatever their label; pairs with a non-finite score are treated as failed too.

    Returns ``{"accuracy_mean", "accuracy_std", "threshold_mean", "fold_accuracies", "fold_thresholds",
    "folds", "pairs", "failed"}``; the std is the population std (``ddof=0``) over folds, as the LFW
    protocol reports it.
    """
    values = _clean(scores)
    truth = np.asarray(labels).ravel().astype(bool)
    fold_of = np.asarray(folds).ravel()
    broken = ~np.isfinite(values)
    if failed is not None:
        broken |= np.asarray(failed).ravel().astype(bool)
    if not (values.size == truth.size == fold_of.size == broken.size):
        raise ValueError("scores, labels, folds (and failed) must have the same length")
    accuracies: list[float] = []
    thresholds: list[float] = []
    for fold in np.unique(fold_of):
        test = fold_of == fold
        train = ~test & ~broken
        threshold = best_accuracy_threshold(values[train], truth[train])
        predicted = _accepted(values[test], threshold)
        correct = (predicted == truth[test]) & ~broken[test]
        accuracies.append(float(np.mean(correct)))
        thresholds.append(threshold)
    fold_accuracies = np.array(accuracies)
    return {
        "accuracy_mean": float(fold_accuracies.mean()) if accuracies else math.nan,
        "accuracy_std": float(fold_accuracies.std()) if accuracies else math.nan,
        "threshold_mean": float(np.nanmean(thresholds)) if accuracies else math.nan,
        "fold_accuracies": accuracies,
        "fold_thresholds": thresholds,
        "folds": len(accuracies),
        "pairs": int(values.size),
        "failed": int(broken.sum()),
    }


def roc_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC: ``(far, tar, thresholds)`` with thresholds decreasing from ``+inf``.

    At each distinct finite score ``t``: ``far`` is the share of impostor pairs (label 0) with score
    ``>= t`` (FMR), ``tar`` the share of genuine pairs (label 1) with score ``>= t`` (1 - FNMR). The first
    point is ``(0, 0, +inf)``. Failed comparisons (``-inf``) stay below every threshold, so ``tar`` may end
    below 1. An empty class gives ``NaN`` for its rate.
    """
    values = _clean(scores)
    truth = np.asarray(labels).ravel().astype(bool)
    thresholds = np.concatenate(([np.inf], np.unique(values[np.isfinite(values)])[::-1]))
    positives = np.sort(values[truth])
    negatives = np.sort(values[~truth])

    def rate(sorted_scores: np.ndarray) -> np.ndarray:
        if sorted_scores.size == 0:
            return np.full(thresholds.size, np.nan)
        reached = sorted_scores.size - np.searchsorted(sorted_scores, thresholds, side="left")
        return np.asarray(reached / sorted_scores.size, dtype=np.float64)

    return rate(negatives), rate(positives), thresholds


def tar_at_far(scores: Any, labels: Any, fars: Sequence[float] = (1e-2, 1e-3)) -> list[dict[str, Any]]:
    """True accept rate at each target false accept rate (FMR), with the threshold that gives it.

    The threshold for a target ``far`` comes from the impostor scores by :func:`threshold_at_rate`; the
    TAR is the share of genuine pairs with a score ``>= threshold``. One dict per target: ``{"far",
    "threshold", "tar", "achieved_far", "impostors", "genuine", "resolvable"}``, where ``resolvable`` is
    false when ``far * impostors < 1`` (too few impostor pairs to measure that rate).
    """
    values = _clean(scores)
    truth = np.asarray(labels).ravel().astype(bool)
    genuine = values[truth]
    results = []
    for far in fars:
        point = threshold_at_rate(values[~truth], far)
        tar = float(np.mean(_accepted(genuine, point["threshold"]))) if genuine.size else math.nan
        results.append(
            {
                "far": float(far),
                "threshold": point["threshold"],
                "tar": tar,
                "achieved_far": point["achieved_rate"],
                "impostors": point["negatives"],
                "genuine": int(genuine.size),
                "resolvable": point["resolvable"],
            }
        )
    return results


def rates_at_threshold(scores: Any, labels: Any, threshold: float) -> dict[str, Any]:
    """TAR and FAR (FMR) at a given threshold, e.g. a pack's shipped one: ``{"threshold", "tar", "far"}``."""
    values = _clean(scores)
    truth = np.asarray(labels).ravel().astype(bool)
    accepted = _accepted(values, threshold)
    return {
        "threshold": float(threshold),
        "tar": float(np.mean(accepted[truth])) if truth.any() else math.nan,
        "far": float(np.mean(accepted[~truth])) if (~truth).any() else math.nan,
    }


# Open-set identification --------------------------------------------------------------------------------


def open_set_metrics(
    mated_top_scores: Any,
    mated_top_is_mate: Any,
    mated_mate_ranks: Any,
    nonmated_top_scores: Any,
    fpirs: Sequence[float] = (0.1, 0.01, 0.001),
    max_rank: int = 20,
) -> dict[str, Any]:
    """Open-set identification accuracy (NIST FRTE 1:N): rank-1, CMC, and FNIR at fixed FPIRs.

    Inputs, one entry per probe search:

    - ``mated_top_scores``: for each mated probe (its person is enrolled in the gallery), the score of its
      rank-1 candidate;
    - ``mated_top_is_mate``: whether that rank-1 candidate is the probe's mate;
    - ``mated_mate_ranks``: the 1-based rank of the mate in the candidate list, ``0`` when it is not in the
      list (the list is at least ``max_rank`` long, or the whole gallery);
    - ``nonmated_top_scores``: for each non-mated probe (person not enrolled), the score of its rank-1
      candidate.

    A probe in which no face was found is a miss: pass ``-inf`` (or ``NaN``) as its top score, ``False``
    and ``0`` for a mated probe: it is counted as not found at every rank and threshold. A non-mated probe
    with no face is never a false positive, but stays in the FPIR denominator.

    Definitions:

    - rank-1 = share of mated probes whose rank-1 candidate is their mate, with no threshold;
    - CMC(r) = share of mated probes whose mate is at rank ``<= r``, for ``r = 1 .. max_rank``;
    - FPIR(T) = share of non-mated probes whose top score is ``>= T``; for each target FPIR the threshold is
      chosen by :func:`threshold_at_rate` (the smallest ``T`` with FPIR(T) ``<= target``; no interpolation,
      ties make the achieved FPIR lower, and ``resolvable`` is false when ``target * non-mated < 1``);
    - FNIR(T) = share of mated probes whose mate is *not* at rank 1 with a score ``>= T``.

    Returns ``{"mated", "nonmated", "rank1", "cmc" (list, index r-1), "fnir_at_fpir" (one dict per target:
    ``fpir, threshold, fnir, achieved_fpir, resolvable``)}``; a rate with an empty denominator is ``NaN``.
    """
    top = _clean(mated_top_scores)
    is_mate = np.asarray(mated_top_is_mate).ravel().astype(bool)
    ranks = np.asarray(mated_mate_ranks).ravel().astype(np.int64)
    nonmated = _clean(nonmated_top_scores)
    if not (top.size == is_mate.size == ranks.size):
        raise ValueError("the three mated arrays must have the same length")
    is_mate &= np.isfinite(top)
    mated = int(top.size)
    found = ranks > 0
    cmc = [float(np.mean(found & (ranks <= r))) if mated else math.nan for r in range(1, max_rank + 1)]
    points = []
    for fpir in fpirs:
        point = threshold_at_rate(nonmated, fpir)
        defined = mated > 0 and not math.isnan(point["threshold"])
        hit = is_mate & _accepted(top, point["threshold"])
        points.append(
            {
                "fpir": float(fpir),
                "threshold": point["threshold"],
                "fnir": float(1.0 - np.mean(hit)) if defined else math.nan,
                "achieved_fpir": point["achieved_rate"],
                "resolvable": point["resolvable"],
            }
        )
    return {
        "mated": mated,
        "nonmated": int(nonmated.size),
        "rank1": float(np.mean(is_mate)) if mated else math.nan,
        "cmc": cmc,
        "fnir_at_fpir": points,
    }


def open_set_at_threshold(
    mated_top_scores: Any, mated_top_is_mate: Any, nonmated_top_scores: Any, threshold: float
) -> dict[str, Any]:
    """FPIR and FNIR at a given threshold (e.g. a pack's shipped one), as :func:`open_set_metrics` defines them.

    Returns ``{"threshold", "fpir", "fnir"}``; probes without a face follow the same conventions.
    """
    top = _clean(mated_top_scores)
    is_mate = np.asarray(mated_top_is_mate).ravel().astype(bool)
    if top.size != is_mate.size:
        raise ValueError("mated_top_scores and mated_top_is_mate must have the same length")
    nonmated = _clean(nonmated_top_scores)
    return {
        "threshold": float(threshold),
        "fpir": float(np.mean(_accepted(nonmated, threshold))) if nonmated.size else math.nan,
        "fnir": float(1.0 - np.mean(is_mate & _accepted(top, threshold))) if top.size else math.nan,
    }


def det_curve(
    mated_top_scores: Any, mated_top_is_mate: Any, nonmated_top_scores: Any, points: int = 100
) -> dict[str, list[float]]:
    """FNIR against FPIR as the threshold sweeps the non-mated probes' top scores (an open-set DET curve).

    Thresholds are the non-mated top scores at ``points`` log-spaced FPIRs from 1 down to one probe, so the
    curve is compact whatever the number of probes. Conventions as in :func:`open_set_metrics`.
    """
    top = _clean(mated_top_scores)
    is_mate = np.asarray(mated_top_is_mate).ravel().astype(bool) & np.isfinite(top)
    nonmated = np.sort(_clean(nonmated_top_scores))[::-1]
    finite = nonmated[np.isfinite(nonmated)]
    if not top.size or not finite.size:
        return {"threshold": [], "fpir": [], "fnir": []}
    positions = np.unique(np.geomspace(1, finite.size, num=points).astype(np.int64)) - 1
    thresholds, fpirs, fnirs = [], [], []
    for position in positions:
        threshold = float(finite[position])
        thresholds.append(threshold)
        fpirs.append(float(np.mean(_accepted(nonmated, threshold))))
        fnirs.append(float(1.0 - np.mean(is_mate & _accepted(top, threshold))))
    return {"threshold": thresholds, "fpir": fpirs, "fnir": fnirs}
