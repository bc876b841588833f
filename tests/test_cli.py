"""The command-line contract, end to end with the real dlib pack on real photos (no ../shared needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesearch.cli import app
from tests.conftest import IndexedFolders

runner = CliRunner()


def cli(home: Path, *args: str, pack: str = "dlib") -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stdout)."""
    result = runner.invoke(app, ["--home", str(home), "--pack", pack, *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_index_search_verify_status(home: Path, photo_folder: Path) -> None:
    code, output = cli(
        home,
        "index",
        str(photo_folder),
        "--collection",
        "demo",
        "--subject-from-folder",
        "--legal-basis",
        "test consent",
        "--workers",
        "1",
        "--json",
    )
    assert code == 0, output
    summary = json_lines(output)[-1]
    # notes.txt is not an image suffix inside a folder; the two bad .jpg files are recorded with reasons.
    assert summary["files_seen"] == 6
    assert summary["images_indexed"] == 4
    assert summary["skipped_by_reason"] == {"empty_file": 1, "not_an_image": 1}
    assert summary["faces"] >= 3

    code, output = cli(home, "status", "--json")
    status = json_lines(output)[0]
    assert status["images"] == 4 and status["skipped"] == 2 and status["collections"] == ["demo"]
    assert status["faces"] == summary["faces"]
    assert status["packs"][0]["pack"] == "dlib@2"

    probe = photo_folder / "Eileen_Collins" / "crop.png"
    code, output = cli(home, "search", str(probe), str(photo_folder / "missing.jpg"), "--top-k", "3", "--json")
    assert code == 1  # one probe could not be read; the other is answered all the same
    first, second = json_lines(output)
    assert first["error"] is None and first["probe"] == str(probe)
    face = first["faces"][0]
    assert set(face) >= {"bbox", "detector_score", "quality", "candidates"}
    assert len(face["bbox"]) == 4
    best = face["candidates"][0]
    assert set(best) >= {
        "rank",
        "face_id",
        "image",
        "subject",
        "collection",
        "similarity",
        "source_url",
        "bbox",
    }
    assert best["rank"] == 1 and best["subject"] == "Eileen_Collins" and best["collection"] == "demo"
    assert best["image"].endswith("crop.png") and best["similarity"] > 0.99
    similarities = [c["similarity"] for c in face["candidates"]]
    assert similarities == sorted(similarities, reverse=True)
    assert second["error"] is not None and second["faces"] == []

    code, output = cli(home, "verify", str(photo_folder / "Eileen_Collins" / "portrait.jpg"), str(probe), "--json")
    verdict = json_lines(output)[0]
    assert code == 0 and verdict["same_person"] is True
    assert verdict["similarity"] >= verdict["threshold"]


def test_index_twice_stores_once_and_resumes(home: Path, photo_folder: Path) -> None:
    args = ("index", str(photo_folder), "--collection", "demo", "--workers", "1", "--json")
    first = json_lines(cli(home, *args)[1])[-1]
    second = json_lines(cli(home, *args)[1])[-1]
    assert second["already_done"] == first["files_seen"] and second["faces"] == 0
    # The same content under another name is stored once.
    copy = photo_folder / "Eileen_Collins" / "copy-of-portrait.jpg"
    copy.write_bytes((photo_folder / "Eileen_Collins" / "portrait.jpg").read_bytes())
    third = json_lines(cli(home, *args)[1])[-1]
    assert third["duplicates"] == 1 and third["faces"] == 0 and third["images_indexed"] == 0
    status = json_lines(cli(home, "status", "--json")[1])[0]
    assert status["images"] == 4


def test_search_collection_filter_and_unknown_collection(home: Path, indexed_folders: IndexedFolders) -> None:
    home, photo_folder = indexed_folders.copy(home, ("Eileen_Collins", "a", False))
    probe = str(photo_folder / "Eileen_Collins" / "portrait.jpg")
    result = json_lines(cli(home, "search", probe, "--collection", "a", "--json")[1])[0]
    assert all(c["collection"] == "a" for c in result["faces"][0]["candidates"])
    result = json_lines(cli(home, "search", probe, "--collection", "nope", "--json")[1])[0]
    assert "unknown collection" in result["error"]


def test_faceless_probe_and_from_file(home: Path, indexed_folders: IndexedFolders, tmp_path: Path) -> None:
    home, photo_folder = indexed_folders.copy(home, ("Eileen_Collins", "a", False))
    listing = tmp_path / "probes.txt"
    listing.write_text(f"# probes\n{photo_folder / 'other' / 'coffee.jpg'}\n{photo_folder / 'other' / 'empty.jpg'}\n")
    results = json_lines(cli(home, "search", "--from-file", str(listing), "--json")[1])
    assert [r["faces"] for r in results] == [[], []]
    assert results[0]["error"] is None and "no face" in results[0]["warnings"][0]
    assert results[1]["error"].startswith("empty_file")


def test_index_of_missing_path_fails_clearly(home: Path, tmp_path: Path) -> None:
    code, _ = cli(home, "index", str(tmp_path / "nowhere"), "--collection", "x")
    assert code == 2


def test_verify_without_face_exits_non_zero(home: Path, photo_folder: Path) -> None:
    code, output = cli(
        home,
        "verify",
        str(photo_folder / "other" / "coffee.jpg"),
        str(photo_folder / "Eileen_Collins" / "portrait.jpg"),
        "--json",
    )
    assert code == 1 and json_lines(output)[0]["error"] == "image A: no face found"


def test_real_process_with_worker_pool(home: Path, photo_folder: Path) -> None:
    """The installed command, as scripts call it, with two worker processes and the table output."""
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "--pack", "dlib"]
    done = subprocess.run(
        [*command, "index", str(photo_folder), "--collection", "demo", "--workers", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["images_indexed"] == 4
    shown = subprocess.run(
        [*command, "search", str(photo_folder / "Eileen_Collins" / "portrait.jpg")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert shown.returncode == 0 and "Eileen_Collins" in shown.stdout and "never identifications" in shown.stdout


@pytest.mark.parametrize("damage", ["delete_index", "drop_vectors"])
def test_doctor_repairs_index_from_catalog(home: Path, indexed_folders: IndexedFolders, damage: str) -> None:
    import facesearch
    from facesearch.index.faiss_index import FaissIndex

    home, photo_folder = indexed_folders.copy(home, ("Eileen_Collins", "a", False))
    index_file = next((home / "index").glob("*.faiss"))
    if damage == "delete_index":
        index_file.unlink()
    else:
        index = FaissIndex.open_existing(index_file)
        index.remove(index.ids()[:2])
        index.save()
    report = json_lines(cli(home, "doctor", "--json")[1])[0]
    assert report["ok"] is False and report["packs"][0]["added"] >= 2
    again = json_lines(cli(home, "doctor", "--json")[1])[0]
    assert again["ok"] is True
    with facesearch.open(home, pack="dlib") as engine:
        result = engine.search(photo_folder / "Eileen_Collins" / "portrait.jpg")
        assert result.faces[0].candidates[0].similarity > 0.99


def test_quality_policy_of_a_collection_skips_poor_faces_and_is_kept(home: Path, photo_folder: Path) -> None:
    from PIL import Image, ImageFilter

    portrait = Image.open(photo_folder / "Eileen_Collins" / "portrait.jpg")
    blurred = photo_folder / "Eileen_Collins" / "blurred.jpg"
    portrait.filter(ImageFilter.GaussianBlur(3)).save(blurred)  # still detected, quality about 0.08

    marked = json_lines(cli(home, "index", str(photo_folder), "-c", "marked", "--workers", "1", "--json")[1])[-1]
    assert marked["min_quality"] is None and marked["faces_below_quality"] == 0

    args = ("index", str(photo_folder), "-c", "strict", "--workers", "1", "--json")
    strict = json_lines(cli(home, *args, "--min-quality", "0.5")[1])[-1]
    assert strict["min_quality"] == 0.5
    assert strict["faces_below_quality"] >= 1  # the blurred face at least
    assert strict["faces"] + strict["faces_below_quality"] == marked["faces"]
    listing = {c["name"]: c for c in json.loads(cli(home, "collections", "--json")[1])}
    assert listing["strict"]["min_quality"] == 0.5 and listing["marked"]["min_quality"] is None
    assert listing["strict"]["faces"] == strict["faces"]

    # The policy stays with the collection: a later run without the option applies it to new photos.
    portrait.filter(ImageFilter.GaussianBlur(3)).rotate(2).save(photo_folder / "Eileen_Collins" / "blurred2.jpg")
    later = json_lines(cli(home, *args)[1])[-1]
    assert later["min_quality"] == 0.5 and later["images_indexed"] == 1 and later["faces"] == 0
    assert later["faces_below_quality"] >= 1
    # 0 goes back to indexing every face.
    reset = json.loads(cli(home, "index", str(blurred), "-c", "strict", "--min-quality", "0", "--json")[1])
    assert reset["min_quality"] is None


def test_search_by_subject_ranks_people_by_the_template_of_all_their_photos(
    home: Path, indexed_folders: IndexedFolders
) -> None:
    home, photo_folder = indexed_folders.copy(home, ("", "demo", True))
    probe = str(photo_folder / "Eileen_Collins" / "crop.png")
    plain = json_lines(cli(home, "search", probe, "--top-k", "2", "--json")[1])[0]
    assert plain["faces"][0]["subjects"] is None
    code, output = cli(home, "search", probe, "--top-k", "2", "--by-subject", "--json")
    assert code == 0
    face = json_lines(output)[0]["faces"][0]
    assert len(face["candidates"]) == 2  # the face-level list keeps its length
    best = face["subjects"][0]
    assert best["rank"] == 1 and best["subject"] == "Eileen_Collins"
    assert best["faces"] == 3  # portrait, crop and mirror: the main face of each photo is enrolled
    assert best["best_similarity"] == face["candidates"][0]["similarity"] > 0.99  # the crop itself
    # The template averages the three photos: closer than the others, not as close as the identical photo.
    mirror_or_portrait = max(c["similarity"] for c in face["candidates"][1:])
    assert mirror_or_portrait < best["similarity"] < best["best_similarity"]
    # Its fmr is read at the mean of the three similarities (below the template's): an upper bound.
    assert best["mean_similarity"] < best["similarity"]
    assert best["mean_similarity"] < best["best_similarity"]
    assert best["fmr"] >= face["candidates"][0]["fmr"]
    top = face["candidates"][0]
    searched = top["expected_false_matches"] / top["fmr"]  # the faces searched, as for every candidate
    assert best["expected_false_matches"] == pytest.approx(best["fmr"] * searched, rel=1e-3)
    strict = json_lines(cli(home, "search", probe, "--by-subject", "--max-fmr", "1e-9", "--json")[1])[0]
    assert strict["faces"][0]["subjects"] == []
    assert "subjects, by the template of all their photos" in cli(home, "search", probe, "--by-subject")[1]
