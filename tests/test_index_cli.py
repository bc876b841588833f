"""The scale commands end to end with the dlib pack: index-stats, reindex, crossmatch, Milvus via --index-url."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesearch.cli import app
from tests.conftest import IndexedFolders

runner = CliRunner()


def cli(home: Path, *args: str, index_url: str | None = None) -> tuple[int, str]:
    """Run the CLI in-process with the dlib pack; returns (exit code, stdout)."""
    extra = ["--index-url", index_url] if index_url else []
    result = runner.invoke(app, ["--home", str(home), "--pack", "dlib", *extra, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.fixture()
def two_collections(home: Path, indexed_folders: IndexedFolders) -> Path:
    """The astronaut photos indexed twice: as "registered" and, with the other photos, as "missing"."""
    return indexed_folders.copy(home, ("Eileen_Collins", "registered", False), ("", "missing", True))[0]


def test_crossmatch_writes_ranked_pairs_as_csv_and_json(two_collections: Path, tmp_path: Path) -> None:
    home = two_collections
    code, output = cli(home, "crossmatch", "-c", "missing", "--against", "registered", "--top-k", "2")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert rows and list(rows[0]) == [
        "pair_rank",
        "similarity",
        "probe_face_id",
        "probe_image",
        "probe_subject",
        "rank",
        "face_id",
        "image",
        "subject",
    ]
    similarities = [float(r["similarity"]) for r in rows]
    assert similarities == sorted(similarities, reverse=True)
    assert [int(r["pair_rank"]) for r in rows] == list(range(1, len(rows) + 1))
    # The same photo in both collections is the best pair; no face is paired with itself.
    assert similarities[0] > 0.99 and all(r["probe_face_id"] != r["face_id"] for r in rows)
    assert rows[0]["probe_subject"] == "Eileen_Collins", rows

    target = tmp_path / "pairs.json"
    code, output = cli(home, "crossmatch", "-c", "missing", "--against", "registered", "-o", str(target), "--json")
    summary = last_json(output)
    written = json.loads(target.read_text())["pairs"]
    assert code == 0 and summary["pairs"] == len(written) > 0
    # The JSON pairs say what each score means for a cross-match of this many comparisons.
    comparisons = summary["probe_faces"] * summary["target_faces"]
    for pair in written:
        assert 0 <= pair["fmr"] <= 1
        assert pair["expected_false_pairs"] == pytest.approx(pair["fmr"] * comparisons, rel=0.01)
    assert summary["probe_faces"] >= 3 and summary["target_faces"] >= 3 and summary["probes_per_s"] > 0

    # A subject's several photos searched as one template: one probe for them, saying how many it combines.
    by_subject = tmp_path / "by-subject.json"
    code, output = cli(
        home, "crossmatch", "-c", "missing", "--against", "registered", "-o", str(by_subject), "--by-subject"
    )
    assert code == 0, output
    templated = [p for p in json.loads(by_subject.read_text())["pairs"] if p["probe_template_faces"]]
    assert templated and all(p["probe_subject"] == "Eileen_Collins" for p in templated)
    assert len({p["probe_face_id"] for p in templated}) == 1 and templated[0]["probe_template_faces"] >= 2
    assert templated[0]["similarity"] > 0.9 and templated[0]["fmr"] is not None

    code, _ = cli(home, "crossmatch", "-c", "missing", "--against", "nobody")
    assert code == 2


def test_index_stats_and_reindex_change_the_kind_and_keep_results(two_collections: Path, photo_folder: Path) -> None:
    home = two_collections
    code, output = cli(home, "index-stats", "--json")
    pack = last_json(output)["packs"][0]
    assert pack["pack"] == "dlib@2" and pack["kind"] == "exact" and pack["vectors"] == pack["catalog_faces"] >= 6

    code, output = cli(home, "reindex", "--factory", "HNSW16", "--json")
    assert code == 0, output
    after = last_json(output)["packs"][0]["after"]
    assert after["factory"] == "HNSW16" and after["vectors"] == pack["vectors"]
    code, output = cli(home, "search", str(photo_folder / "Eileen_Collins" / "crop.png"), "--json")
    assert last_json(output)["faces"][0]["candidates"][0]["similarity"] > 0.99
    # The kind is kept by later commands and reported.
    code, output = cli(home, "index-stats", "--json")
    assert last_json(output)["packs"][0]["factory"] == "HNSW16"

    code, output = cli(home, "reindex", "--factory", "IVF16,PQ7")
    assert code == 2
    code, output = cli(home, "reindex", "--factory", "auto", "--nprobe-fraction", "0.25", "--json")
    after = last_json(output)["packs"][0]["after"]
    assert code == 0 and after["factory"] == "Flat" and after["requested"] == "auto"  # few faces: exact again


def test_milvus_lite_backend_through_the_cli(home: Path, photo_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    url = str(tmp_path / "vectors.db")
    code, output = cli(
        home, "index", str(photo_folder), "-c", "demo", "--subject-from-folder", "--workers", "1", index_url=url
    )
    assert code == 0, output
    code, output = cli(home, "search", str(photo_folder / "Eileen_Collins" / "crop.png"), "--json", index_url=url)
    best = last_json(output)["faces"][0]["candidates"][0]
    assert best["subject"] == "Eileen_Collins" and best["similarity"] > 0.99
    code, output = cli(home, "index-stats", "--json", index_url=url)
    stats = last_json(output)["packs"][0]
    assert stats["backend"] == "milvus" and stats["vectors"] == stats["catalog_faces"]
    code, output = cli(home, "doctor", "--json", index_url=url)
    assert last_json(output)["ok"] is True
    assert not (home / "index" / "dlib@2.faiss").exists()  # nothing went to the embedded backend
