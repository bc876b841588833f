"""Error rates per group of people at one threshold, the way NIST IR 8280 reports demographic differentials.

At a pack's operating threshold (its FMR 1e-3 point):

- the false-match rate of each group from impostor pairs *within* the group (one face per person, every pair
  of two different people of the group), and of pairs across two groups, each with a 95% Wilson interval;
- the ratio of false-match rates between every two groups, with a 95% interval from resampling the people
  (pairs share people, so a binomial interval on pairs would be too narrow);
- FNIR and FPIR of identification for each group's probes, with Wilson intervals.

A group comes from a column the user provides (``eval identify --attributes``); the pack never sees it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from facesearch.search.calibration import wilson_interval

RESAMPLES = 1000
"""Bootstrap resamples of the people for the interval of a ratio of false-match rates."""


def proportion(count: int, n: int) -> dict[str, Any]:
    """``count`` of ``n`` as a rate with its 95% Wilson interval (rate ``None`` when ``n`` is 0)."""
    low, high = wilson_interval(count, n)
    return {"count": int(count), "n": int(n), "rate": count / n if n else None, "low": low, "high": high}


def _pairs_above(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``i < j`` whose cosine similarity is at or above ``threshold``, computed in row blocks."""
    first, second = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(vectors), 1024):
        scores = vectors[start : start + 1024] @ vectors.T
        rows, columns = np.nonzero(scores >= threshold)
        rows = rows + start
        keep = rows < columns
        first.append(rows[keep])
        second.append(columns[keep])
    return np.concatenate(first), np.concatenate(second)


def false_match_rates(
    vectors: np.ndarray,
    groups: Sequence[str | None],
    threshold: float,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """False-match rates at ``threshold`` among the people of each group, across groups, and their ratios.

    ``vectors`` holds one unit vector per person (rows), ``groups`` each person's group (``None``: left out).
    Returns ``{"within": {group: proportion}, "between": {"a|b": proportion}, "ratios": {"a/b": {"ratio",
    "low", "high"}}, "largest_ratio"}``; a ratio is the higher group's rate over the lower's, and its interval
    comes from ``resamples`` bootstrap draws of each group's people (pairs of one person with itself left
    out). A ratio whose lower rate is 0 is ``None``.
    """
    labels = np.array([g if g is not None else "" for g in groups], dtype=object)
    names = sorted({g for g in groups if g is not None})
    first, second = _pairs_above(np.asarray(vectors, dtype=np.float32), threshold)
    members = {name: np.flatnonzero(labels == name) for name in names}
    within: dict[str, Any] = {}
    above_within: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, people in members.items():
        position = np.full(len(labels), -1)
        position[people] = np.arange(len(people))
        both = (position[first] >= 0) & (position[second] >= 0)
        above_within[name] = (position[first[both]], position[second[both]])
        n = len(people)
        within[name] = proportion(int(both.sum()), n * (n - 1) // 2)
    between = {}
    for a, b in itertools.combinations(names, 2):
        across = ((labels[first] == a) & (labels[second] == b)) | ((labels[first] == b) & (labels[second] == a))
        between[f"{a}|{b}"] = proportion(int(across.sum()), len(members[a]) * len(members[b]))
    rng = np.random.default_rng(seed)
    drawn = {name: _resampled_rates(above_within[name], len(members[name]), resamples, rng) for name in names}
    ratios: dict[str, Any] = {}
    for a, b in itertools.combinations(names, 2):
        high, low = (a, b) if (within[a]["rate"] or 0) >= (within[b]["rate"] or 0) else (b, a)
        if not within[low]["count"]:
            ratios[f"{high}/{low}"] = None
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            samples = drawn[high] / drawn[low]
        samples = samples[np.isfinite(samples)]
        ratios[f"{high}/{low}"] = {
            "ratio": within[high]["rate"] / within[low]["rate"],
            "low": float(np.percentile(samples, 2.5)) if samples.size else None,
            "high": float(np.percentile(samples, 97.5)) if samples.size else None,
        }
    known = [r["ratio"] for r in ratios.values() if r is not None]
    return {"within": within, "between": between, "ratios": ratios, "largest_ratio": max(known) if known else None}


def _resampled_rates(
    above: tuple[np.ndarray, np.ndarray], people: int, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The within-group false-match rate over ``resamples`` draws of the group's people with replacement.

    A person drawn ``c`` times takes part in pairs ``c`` times over: a pair above the threshold counts
    ``c_i c_j`` times among the ``(n^2 - sum c^2) / 2`` pairs of two different draws.
    """
    first, second = above
    rates = np.empty(resamples)
    for r in range(resamples):
        counts = np.bincount(rng.integers(0, people, size=people), minlength=people).astype(np.float64)
        pairs = (people * people - float(np.sum(counts * counts))) / 2
        rates[r] = float(np.sum(counts[first] * counts[second])) / pairs if pairs else np.nan
    return rates


def identification_rates(
    outcomes: Sequence[tuple[str | None, bool, float, bool]], threshold: float
) -> dict[str, dict[str, Any]]:
    """FNIR and FPIR at ``threshold`` for each group's probes: ``outcomes`` holds, per probe, its group,
    whether it is mated, its top score, and whether the top candidate is its mate."""
    by_group: dict[str, dict[str, Any]] = {}
    for name in sorted({group for group, *_ in outcomes if group is not None}):
        mine = [o for o in outcomes if o[0] == name]
        mated = [(top, is_mate) for _, is_mated, top, is_mate in mine if is_mated]
        nonmated = [top for _, is_mated, top, _ in mine if not is_mated]
        missed = sum(not (is_mate and top >= threshold) for top, is_mate in mated)
        by_group[name] = {
            "fnir": proportion(missed, len(mated)),
            "fpir": proportion(sum(top >= threshold for top in nonmated), len(nonmated)),
        }
    return by_group


def fairness_report(
    person_vectors: np.ndarray,
    person_groups: Sequence[str | None],
    outcomes: Sequence[tuple[str | None, bool, float, bool]],
    threshold: float,
    *,
    resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """Everything above at one threshold: ``{"threshold", "false_match", "identification"}``."""
    return {
        "threshold": float(threshold),
        "false_match": false_match_rates(person_vectors, person_groups, threshold, resamples=resamples),
        "identification": identification_rates(outcomes, threshold),
    }
