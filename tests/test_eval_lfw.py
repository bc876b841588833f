"""A small real run of the LFW identification protocol (dlib pack, 30 people) through ingest and search."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.eval.lfw import open_set_split, read_pairs, run_identification, select_pairs

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-dev"
PEOPLE = 30
# Measured: the dlib pack finds every one of the 36 mated probes of the first 30 people at rank 1.
# The floor leaves room for a different dlib build without letting a broken pipeline through.
RANK1_FLOOR = 0.9


@pytest.fixture(scope="module")
def lfw() -> Path:
    """The LFW development half from ../shared (skip when it is not there)."""
    if not (LFW / "images").is_dir() or not (LFW / "pairs.tsv").is_file():
        pytest.skip(f"LFW data not found at {LFW}; this test needs ../shared/data/lfw-dev")
    return LFW


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No data folder, catalog, pack or worker overrides from the caller's environment."""
    for name in ("FACESEARCH_HOME", "FACESEARCH_CATALOG_URL", "FACESEARCH_PACK", "FACESEARCH_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def test_open_set_split_shape(lfw: Path) -> None:
    split = open_set_split(lfw / "images", limit_people=PEOPLE)
    assert len(split.gallery) + len(split.nonmated) == PEOPLE
    gallery_photos = set(split.gallery.values())
    assert all(photo not in gallery_photos for _, photo in split.mated)
    assert {person for person, _ in split.mated} == set(split.gallery)
    assert all(photo.name.endswith("_0001.jpg") for photo in split.gallery.values())


def test_select_pairs_limits_by_first_person(lfw: Path) -> None:
    pairs = read_pairs(lfw / "pairs.tsv")
    assert len(pairs) == 2313
    chosen = select_pairs(pairs, 5)
    assert 0 < len(chosen) < len(pairs)
    assert len({pair.name_a for pair in chosen}) == 5


def test_identification_on_a_subset(lfw: Path, tmp_path: Path) -> None:
    result = run_identification(tmp_path / "home", lfw / "images", "dlib", 2, limit_people=PEOPLE)
    counts, metrics = result["counts"], result["metrics"]
    assert counts["people"] == PEOPLE
    assert counts["gallery_enrolled"] == counts["gallery_photos"] > 0
    assert metrics["mated"] == counts["mated_probes"] > 0
    assert metrics["nonmated"] == counts["nonmated_probes"] > 0
    assert metrics["rank1"] >= RANK1_FLOOR, result["rank1_misses"]
    assert metrics["cmc"][-1] >= metrics["rank1"]
    assert len(result["rank1_misses"]) == round((1 - metrics["rank1"]) * metrics["mated"])
    assert result["pack"] == "dlib@2"
