"""Per-group error rates at one threshold (eval/fairness.py), checked against counting by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facesearch.eval.fairness import fairness_report, false_match_rates, identification_rates, proportion


def people(rng: np.random.Generator, count: int, spread: float, dim: int = 16) -> np.ndarray:
    """``count`` unit vectors around one direction: the smaller ``spread``, the more alike two strangers."""
    centre = np.zeros(dim)
    centre[0] = 1.0
    vectors = centre + spread * rng.standard_normal((count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_false_match_rates_count_every_pair() -> None:
    """Within- and between-group counts equal a count over every pair; a group of look-alikes gets the
    higher rate, and the ratio's interval holds the ratio."""
    rng = np.random.default_rng(3)
    vectors = np.vstack([people(rng, 60, 0.35), people(rng, 90, 0.6), people(rng, 5, 0.6)])
    groups: list[str | None] = ["a"] * 60 + ["b"] * 90 + [None] * 5
    threshold = 0.8
    report = false_match_rates(vectors, groups, threshold, resamples=300)
    scores = vectors @ vectors.T
    for name, members in (("a", range(60)), ("b", range(60, 150))):
        pairs = list(itertools.combinations(members, 2))
        above = sum(scores[i, j] >= threshold for i, j in pairs)
        assert report["within"][name]["count"] == above and report["within"][name]["n"] == len(pairs)
    across = sum(scores[i, j] >= threshold for i in range(60) for j in range(60, 150))
    assert report["between"]["a|b"] == proportion(across, 60 * 90)
    ratio = report["ratios"]["a/b"]
    assert report["within"]["a"]["rate"] > report["within"]["b"]["rate"] > 0
    assert ratio["ratio"] == pytest.approx(report["within"]["a"]["rate"] / report["within"]["b"]["rate"])
    assert ratio["low"] < ratio["ratio"] < ratio["high"]
    assert report["largest_ratio"] == ratio["ratio"]


def test_no_false_match_in_a_group_gives_no_ratio() -> None:
    """A group without any false match has rate 0 (its interval still bounds it) and no ratio is claimed."""
    rng = np.random.default_rng(4)
    vectors = np.vstack([people(rng, 30, 0.3), people(rng, 30, 3.0)])
    report = false_match_rates(vectors, ["a"] * 30 + ["b"] * 30, 0.9, resamples=50)
    assert report["within"]["b"]["count"] == 0 and report["within"]["b"]["high"] > 0
    assert report["ratios"] == {"a/b": None} and report["largest_ratio"] is None


def test_identification_rates_per_group() -> None:
    """FNIR counts a mated probe whose mate is not first at or above the threshold; FPIR a non-mated probe
    whose best candidate reaches it."""
    outcomes = [
        ("a", True, 0.9, True),  # found
        ("a", True, 0.9, False),  # a stranger first: a miss
        ("a", True, 0.5, True),  # below the threshold: a miss
        ("a", False, 0.8, False),  # a false positive
        ("a", False, 0.2, False),
        ("b", True, 0.95, True),
        ("b", False, 0.1, False),
        (None, True, 0.1, False),  # no group: left out
    ]
    rates = identification_rates(outcomes, 0.7)
    assert set(rates) == {"a", "b"}
    assert rates["a"]["fnir"]["count"] == 2 and rates["a"]["fnir"]["n"] == 3
    assert rates["a"]["fpir"]["count"] == 1 and rates["a"]["fpir"]["n"] == 2
    assert rates["b"]["fnir"]["rate"] == 0.0 and rates["b"]["fpir"]["rate"] == 0.0
    report = fairness_report(people(np.random.default_rng(5), 4, 0.5), ["a", "a", "b", "b"], outcomes, 0.7)
    assert report["threshold"] == 0.7 and set(report) == {"threshold", "false_match", "identification"}


def test_no_labelled_person_gives_empty_figures() -> None:
    """Nobody with a group (or nobody at all): no group, no ratio, nothing raised."""
    report = fairness_report(np.zeros((0, 4), dtype=np.float32), [], [], 0.5)
    assert report["false_match"] == {"within": {}, "between": {}, "ratios": {}, "largest_ratio": None}
    assert report["identification"] == {}
