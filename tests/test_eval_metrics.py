"""Tests for facesearch.eval.metrics on small hand-made arrays whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facesearch.eval.metrics import (
    best_accuracy_threshold,
    open_set_at_threshold,
    open_set_metrics,
    rates_at_threshold,
    roc_curve,
    tar_at_far,
    threshold_at_rate,
    verification_10fold,
)


def _folded(genuine: list[float], impostor: list[float], folds: int = 10) -> tuple[np.ndarray, ...]:
    """The same genuine and impostor scores repeated in every fold."""
    scores = np.tile(np.array(genuine + impostor), folds)
    labels = np.tile(np.array([1] * len(genuine) + [0] * len(impostor)), folds)
    fold_ids = np.repeat(np.arange(folds), len(genuine) + len(impostor))
    return scores, labels, fold_ids


# Verification ------------------------------------------------------------------------------------------


def test_perfect_separation_gives_accuracy_one() -> None:
    scores, labels, folds = _folded([0.9, 0.8, 0.7], [0.3, 0.2])
    result = verification_10fold(scores, labels, folds)
    assert result["accuracy_mean"] == 1.0
    assert result["accuracy_std"] == 0.0
    assert result["folds"] == 10
    assert result["pairs"] == 50
    # The optimum is flat between 0.3 and 0.7: the midpoint of the two is the only midpoint candidate there.
    assert result["threshold_mean"] == pytest.approx(0.5)
    assert all(0.3 < t < 0.7 for t in result["fold_thresholds"])


def test_one_unseparable_genuine_pair_per_fold() -> None:
    # Each fold: genuine 0.9, 0.8, 0.05 and impostor 0.1, 0.2. The best threshold lies between 0.2 and 0.8
    # and gets 4 of 5 pairs right in every fold.
    scores, labels, folds = _folded([0.9, 0.8, 0.05], [0.1, 0.2])
    result = verification_10fold(scores, labels, folds)
    assert result["accuracy_mean"] == pytest.approx(0.8)
    assert result["accuracy_std"] == pytest.approx(0.0)
    assert result["fold_accuracies"] == pytest.approx([0.8] * 10)


def test_threshold_is_chosen_on_the_other_folds() -> None:
    # Fold 0 alone would want a threshold below 0.4; the other folds put it at 0.5, so fold 0 loses one pair.
    scores = np.array([0.45, 0.2] + [0.9, 0.1] * 9)
    labels = np.array([1, 0] * 10)
    folds = np.repeat(np.arange(10), 2)
    result = verification_10fold(scores, labels, folds)
    assert result["fold_accuracies"][0] == pytest.approx(0.5)
    assert result["fold_accuracies"][1:] == pytest.approx([1.0] * 9)
    assert result["accuracy_mean"] == pytest.approx(0.95)
    assert result["accuracy_std"] == pytest.approx(float(np.std([0.5] + [1.0] * 9)))


def test_failed_pairs_count_as_wrong_whatever_their_label() -> None:
    scores, labels, folds = _folded([0.9, 0.8, 0.7], [0.3, 0.2])
    failed = np.zeros(scores.size, dtype=bool)
    failed[0] = True  # a genuine pair of fold 0
    failed[3] = True  # an impostor pair of fold 0: rejected by any threshold, but still a failure
    scores = np.where(failed, -1.0, scores)
    result = verification_10fold(scores, labels, folds, failed=failed)
    assert result["fold_accuracies"][0] == pytest.approx(3 / 5)
    assert result["accuracy_mean"] == pytest.approx((3 / 5 + 9) / 10)
    assert result["failed"] == 2


def test_nan_scores_are_failed_pairs() -> None:
    scores, labels, folds = _folded([0.9, 0.8], [0.3, 0.2])
    scores[2] = np.nan  # an impostor of fold 0
    result = verification_10fold(scores, labels, folds)
    assert result["failed"] == 1
    assert result["fold_accuracies"][0] == pytest.approx(3 / 4)


def test_best_accuracy_threshold_takes_the_middle_of_a_flat_optimum() -> None:
    assert best_accuracy_threshold([0.2, 0.8], [0, 1]) == pytest.approx(0.5)
    # Two separate optima (0.15 and 0.35, 3 of 4 right each): the first of the middle pair is taken.
    assert best_accuracy_threshold([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]) == pytest.approx(0.15)
    assert math.isnan(best_accuracy_threshold([], []))


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        verification_10fold([0.1, 0.2], [0, 1], [0])


def test_roc_curve_points() -> None:
    far, tar, thresholds = roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert thresholds.tolist() == [math.inf, 0.9, 0.8, 0.7, 0.6]
    assert far.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tar.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]


def test_roc_curve_failed_genuine_pair_never_accepted() -> None:
    _far, tar, _thresholds = roc_curve([0.9, -np.inf, 0.1], [1, 1, 0])
    assert tar[-1] == 0.5


def test_tar_at_far_with_known_answer() -> None:
    impostors = [i / 10 for i in range(10)]  # 0.0 .. 0.9
    genuine = [0.95, 0.85, 0.5]
    scores = np.array(genuine + impostors)
    labels = np.array([1] * 3 + [0] * 10)
    at_10, at_1 = tar_at_far(scores, labels, (0.1, 0.01))
    # FAR 0.1 over 10 impostors: one may pass (0.9); the threshold sits just above 0.8.
    assert at_10["threshold"] == pytest.approx(0.8) and at_10["threshold"] > 0.8
    assert at_10["achieved_far"] == pytest.approx(0.1)
    assert at_10["tar"] == pytest.approx(2 / 3)
    assert at_10["resolvable"] is True
    # FAR 0.01 cannot be measured with 10 impostors: the threshold is just above the highest one.
    assert at_1["threshold"] > 0.9 and at_1["threshold"] == pytest.approx(0.9)
    assert at_1["tar"] == pytest.approx(1 / 3)
    assert at_1["achieved_far"] == 0.0
    assert at_1["resolvable"] is False
    assert at_1["impostors"] == 10 and at_1["genuine"] == 3


def test_threshold_at_rate_is_conservative_on_ties() -> None:
    point = threshold_at_rate([0.5, 0.5, 0.5, 0.1], 0.5)
    # Accepting the tie at 0.5 would make the rate 0.75 > 0.5, so all three are excluded.
    assert point["threshold"] > 0.5
    assert point["achieved_rate"] == 0.0
    everything = threshold_at_rate([0.3, 0.2], 1.0)
    assert everything["threshold"] == -math.inf and everything["achieved_rate"] == 1.0
    assert math.isnan(threshold_at_rate([], 0.1)["threshold"])


# Open-set identification -------------------------------------------------------------------------------


def test_open_set_perfect_separation() -> None:
    result = open_set_metrics(
        mated_top_scores=[0.9, 0.8, 0.95],
        mated_top_is_mate=[True, True, True],
        mated_mate_ranks=[1, 1, 1],
        nonmated_top_scores=[0.1, 0.2, 0.3, 0.4],
        fpirs=(0.5, 0.25, 0.001),
    )
    assert result["rank1"] == 1.0
    assert result["cmc"] == [1.0] * 20
    assert [p["fnir"] for p in result["fnir_at_fpir"]] == [0.0, 0.0, 0.0]
    assert result["mated"] == 3 and result["nonmated"] == 4


def test_open_set_fnir_at_fpir_half_is_known() -> None:
    # Non-mated top scores 0.1 .. 0.4: FPIR 0.5 allows two, so T is just above 0.2.
    # Mated: 0.9 mate (hit), 0.35 mate (hit, >= T), 0.15 mate (below T: miss), 0.8 not the mate (miss).
    result = open_set_metrics(
        mated_top_scores=[0.9, 0.35, 0.15, 0.8],
        mated_top_is_mate=[True, True, True, False],
        mated_mate_ranks=[1, 1, 1, 3],
        nonmated_top_scores=[0.1, 0.2, 0.3, 0.4],
        fpirs=(0.5,),
        max_rank=5,
    )
    (point,) = result["fnir_at_fpir"]
    assert point["threshold"] == pytest.approx(0.2) and point["threshold"] > 0.2
    assert point["achieved_fpir"] == pytest.approx(0.5)
    assert point["fnir"] == pytest.approx(0.5)
    assert point["resolvable"] is True
    assert result["rank1"] == pytest.approx(0.75)
    assert result["cmc"] == pytest.approx([0.75, 0.75, 1.0, 1.0, 1.0])


def test_probes_without_a_face() -> None:
    # Mated probe without a face: a miss everywhere. Non-mated without a face: never a false positive,
    # but still counted in the FPIR denominator.
    result = open_set_metrics(
        mated_top_scores=[0.9, -np.inf, np.nan, 0.7],
        mated_top_is_mate=[True, False, False, True],
        mated_mate_ranks=[1, 0, 0, 1],
        nonmated_top_scores=[-np.inf, np.nan, 0.3, 0.4],
        fpirs=(0.5, 0.25),
        max_rank=3,
    )
    assert result["rank1"] == pytest.approx(0.5)
    assert result["cmc"] == pytest.approx([0.5, 0.5, 0.5])
    half, quarter = result["fnir_at_fpir"]
    # FPIR 0.5 allows both non-mated probes that have a face: T is just above -inf.
    assert half["achieved_fpir"] == pytest.approx(0.5)
    assert half["fnir"] == pytest.approx(0.5)
    # FPIR 0.25 allows one: T just above 0.3, both found mates (0.9, 0.7) pass.
    assert quarter["threshold"] == pytest.approx(0.3)
    assert quarter["achieved_fpir"] == pytest.approx(0.25)
    assert quarter["fnir"] == pytest.approx(0.5)


def test_cmc_is_monotone_and_reaches_one() -> None:
    rng = np.random.default_rng(7)
    ranks = rng.integers(1, 21, size=500)
    result = open_set_metrics(
        mated_top_scores=rng.random(500),
        mated_top_is_mate=ranks == 1,
        mated_mate_ranks=ranks,
        nonmated_top_scores=rng.random(300),
    )
    cmc = np.array(result["cmc"])
    assert cmc.size == 20
    assert np.all(np.diff(cmc) >= 0)
    assert cmc[-1] == 1.0
    assert cmc[0] == pytest.approx(result["rank1"])


def test_cmc_stays_below_one_when_mates_are_missing() -> None:
    result = open_set_metrics([0.5, 0.5], [False, False], [0, 25], [0.1])
    assert result["cmc"][-1] == 0.0
    assert result["rank1"] == 0.0


def test_open_set_rejects_mismatched_mated_arrays() -> None:
    with pytest.raises(ValueError):
        open_set_metrics([0.5, 0.4], [True], [1, 1], [0.1])


def test_open_set_empty_denominators_give_nan() -> None:
    result = open_set_metrics([], [], [], [0.1, 0.2])
    assert math.isnan(result["rank1"])
    assert math.isnan(result["fnir_at_fpir"][0]["fnir"])
    no_nonmated = open_set_metrics([0.9], [True], [1], [])
    assert math.isnan(no_nonmated["fnir_at_fpir"][0]["fnir"])


def test_rates_at_a_fixed_threshold() -> None:
    point = rates_at_threshold([0.9, 0.6, -np.inf, 0.7, 0.2], [1, 1, 1, 0, 0], 0.65)
    assert point == {"threshold": 0.65, "tar": pytest.approx(1 / 3), "far": pytest.approx(0.5)}


def test_open_set_at_a_fixed_threshold() -> None:
    point = open_set_at_threshold([0.9, 0.35, 0.15, 0.8], [True, True, True, False], [0.1, 0.2, 0.3, 0.4], 0.25)
    assert point["fpir"] == pytest.approx(0.5)
    assert point["fnir"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        open_set_at_threshold([0.9], [True, False], [0.1], 0.5)
