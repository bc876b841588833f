"""Calibrated scores: similarity -> false-match rate, its storage, and its use in search and verify."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facesearch.cli import app
from facesearch.eval.calibrate import calibration_from_embeddings, holdout_check, split_people
from facesearch.search import calibration as calibration_module
from facesearch.search.calibration import (
    SHIPPED_DIR,
    Calibration,
    calibration_filename,
    find_calibration,
    user_calibration_path,
    wilson_interval,
)
from facesearch.vision.packs import BUILTIN_PACKS
from tests.conftest import IndexedFolders

runner = CliRunner()


def uniform_calibration(n: int = 200_000, seed: int = 0) -> Calibration:
    """Impostor scores uniform on [0, 1): the true FMR at similarity s is 1 - s."""
    scores = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    return Calibration.from_scores("test@1", scores, source="uniform")


def test_fmr_matches_known_rate() -> None:
    cal = uniform_calibration()
    for s in (0.1, 0.5, 0.9, 0.99):
        assert cal.fmr(s) == pytest.approx(1.0 - s, rel=0.05)
    assert cal.fmr(0.999) == pytest.approx(1e-3, rel=0.2)
    estimate = cal.estimate(0.9)
    assert estimate.low < estimate.fmr < estimate.high and not estimate.beyond_data
    assert cal.fmr(-1.0) == 1.0


def test_threshold_for_inverts_fmr() -> None:
    cal = uniform_calibration()
    for fmr in (0.5, 1e-1, 1e-2, 1e-3, 1e-4):
        threshold = cal.threshold_for(fmr)
        assert threshold == pytest.approx(1.0 - fmr, abs=max(fmr * 0.2, 1e-4))
        assert cal.fmr(threshold) == pytest.approx(fmr, rel=1e-6)
    with pytest.raises(ValueError):
        cal.threshold_for(0.0)


def test_beyond_the_data_is_a_floor_with_a_flag() -> None:
    cal = uniform_calibration(n=10_000)
    estimate = cal.estimate(1.5)
    assert estimate.beyond_data and estimate.fmr == cal.floor == 1e-4
    assert str(estimate).startswith("<")
    # An FMR below the floor asks for a threshold above every impostor seen.
    assert cal.threshold_for(1e-6) > max(cal.similarities)


def test_table_is_monotone_and_round_trips(tmp_path: Path) -> None:
    cal = uniform_calibration()
    assert_monotone(cal)
    path = cal.save(tmp_path / "c.json")
    loaded = Calibration.load(path)
    assert loaded.similarities == cal.similarities and loaded.counts == cal.counts
    assert loaded.n_pairs == cal.n_pairs and loaded.pack == "test@1"
    assert loaded.fmr(0.95) == cal.fmr(0.95)


def test_ties_are_counted_at_or_above() -> None:
    cal = Calibration.from_scores("test@1", np.array([0.5] * 10 + [0.2] * 10))
    assert cal.fmr(0.5) == 0.5 and cal.fmr(0.2) == 1.0
    assert cal.counts == sorted(cal.counts, reverse=True)


def test_wilson_interval() -> None:
    low, high = wilson_interval(10, 10_000)
    assert low < 1e-3 < high
    assert wilson_interval(0, 1000)[0] == 0.0 and 0.0 < wilson_interval(0, 1000)[1] < 0.005


def test_holdout_on_random_people_is_within_a_factor_2() -> None:
    # Random unit vectors are impostors of each other: a calibration from some holds for the others.
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(900, 64)).astype(np.float32)
    names = [f"p{i:04d}" for i in range(900)]
    calibrate_on, held_out = split_people(names, 0.5, seed=3)
    assert not set(calibrate_on) & set(held_out) and len(held_out) == 450
    rows = {n: i for i, n in enumerate(names)}
    cal = calibration_from_embeddings("test@1", vectors[[rows[n] for n in calibrate_on]])
    assert cal.n_pairs == 450 * 449 // 2
    check = holdout_check(cal, vectors[[rows[n] for n in held_out]], 1e-3)
    assert check["within_factor_2"], check


def test_user_calibration_overrides_the_shipped_one(tmp_path: Path) -> None:
    key = BUILTIN_PACKS["yunet-mobilefacenet"].key
    uniform = Calibration.from_scores(key, np.linspace(0, 1, 1000))
    uniform.save(user_calibration_path(tmp_path, key))
    found = find_calibration(key, tmp_path)
    assert found is not None and found.n_pairs == 1000
    assert find_calibration("no-such-pack@1", tmp_path) is None


def assert_monotone(cal: Calibration) -> None:
    sims, fmrs = np.array(cal.similarities), np.array(cal.counts) / cal.n_pairs
    assert np.all(np.diff(sims) > 0) and np.all(np.diff(fmrs) < 0)
    assert np.all(np.array(cal.fmr_low) <= fmrs) and np.all(fmrs <= np.array(cal.fmr_high))
    grid = np.linspace(sims[0] - 0.1, sims[-1] + 0.1, 500)
    values = [cal.fmr(s) for s in grid]
    assert all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("pack", ["yunet-mobilefacenet", "dlib"])
def test_shipped_calibrations_load_and_are_monotone(pack: str) -> None:
    key = BUILTIN_PACKS[pack].key
    path = SHIPPED_DIR / calibration_filename(key)
    assert path.is_file(), f"no shipped calibration for {key}"
    cal = Calibration.load(path)
    assert cal.pack == key and cal.n_pairs > 1_000_000
    assert_monotone(cal)
    # FMR 1e-3 lies well inside the data.
    assert cal.threshold_for(1e-3) < max(cal.similarities) and cal.fmr(cal.threshold_for(1e-3)) > cal.floor * 100
    assert find_calibration(key) is not None


# Search and verify output ------------------------------------------------------------------------------


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(home), "--pack", "dlib", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_search_and_verify_carry_fmr(
    home: Path, indexed_folders: IndexedFolders, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, photo_folder = indexed_folders.copy(home, ("", "demo", True))
    key = BUILTIN_PACKS["dlib"].key
    # A calibration of this data folder (overrides a shipped one): impostor scores uniform on [0, 0.999).
    cal = Calibration.from_scores(key, np.linspace(0.0, 0.999, 100_000), source="test")
    cal.save(user_calibration_path(home, key))
    faces = json_lines(cli(home, "status", "--json")[1])[0]["faces"]

    probe = photo_folder / "Eileen_Collins" / "crop.png"
    code, output = cli(home, "search", str(probe), "--json")
    assert code == 0, output
    candidates = json_lines(output)[0]["faces"][0]["candidates"]
    assert len(candidates) >= 2
    for c in candidates:
        assert c["fmr"] == pytest.approx(cal.fmr(c["similarity"]), rel=1e-3)
        assert c["expected_false_matches"] == pytest.approx(c["fmr"] * faces, rel=1e-3)
    assert candidates[0]["similarity"] > 0.999 and candidates[0]["fmr_beyond_data"] is True
    fmrs = [c["fmr"] for c in candidates]
    assert fmrs == sorted(fmrs) and max(fmrs) > 1e-4

    code, output = cli(home, "search", str(probe), "--json", "--max-fmr", "1e-4")
    assert code == 0, output
    kept = json_lines(output)[0]["faces"][0]["candidates"]
    assert kept and len(kept) < len(candidates)
    assert all(c["fmr"] <= 1e-4 for c in kept)
    assert [c["rank"] for c in kept] == list(range(1, len(kept) + 1))

    code, output = cli(home, "search", str(probe))  # the table shows the new columns
    assert code == 0 and "fmr" in output

    portrait = photo_folder / "Eileen_Collins" / "portrait.jpg"
    for fmr in ("1e-3", "0.01"):
        code, output = cli(home, "verify", str(portrait), str(probe), "--fmr", fmr, "--json")
        verdict = json_lines(output)[0]
        assert code == 0 and verdict["decision_fmr"] == float(fmr)
        assert verdict["threshold"] == round(cal.threshold_for(float(fmr)), 4)
        assert verdict["fmr"] == pytest.approx(cal.fmr(verdict["similarity"]), rel=1e-3)
        assert verdict["same_person"] == (verdict["similarity"] >= verdict["threshold"])

    # Without any calibration for the pack: the pack's threshold, fmr fields null, max_fmr not applied.
    user_calibration_path(home, key).unlink()
    monkeypatch.setattr(calibration_module, "SHIPPED_DIR", home / "nothing-here")
    code, output = cli(home, "verify", str(portrait), str(probe), "--json")
    verdict = json_lines(output)[0]
    assert verdict["threshold"] == BUILTIN_PACKS["dlib"].threshold and verdict["fmr"] is None
    code, output = cli(home, "search", str(probe), "--json", "--max-fmr", "1e-4")
    result = json_lines(output)[0]
    assert all(c["fmr"] is None for c in result["faces"][0]["candidates"])
    assert any("max_fmr not applied" in w for w in result["warnings"])


def test_calibrate_command(home: Path, tmp_path: Path, photo_folder: Path) -> None:
    # Three "people" from the astronaut photo and its variants: enough to build and save a calibration.
    root = tmp_path / "people"
    for i, name in enumerate(["portrait.jpg", "crop.png", "mirror.webp"]):
        (root / f"P{i}").mkdir(parents=True)
        (root / f"P{i}" / name).write_bytes((photo_folder / "Eileen_Collins" / name).read_bytes())
    code, output = cli(home, "calibrate", "--images", str(root), "--holdout-share", "0", "--json")
    assert code == 0, output
    report = json_lines(output)[0]
    assert report["people"] == 3 and report["impostor_pairs"] == 3
    saved = Calibration.load(report["saved"])
    assert saved.pack == BUILTIN_PACKS["dlib"].key and math.isclose(saved.floor, 1 / 3)
    assert find_calibration(saved.pack, home) is not None
