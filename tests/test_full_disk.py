"""``facesearch index`` on a data folder whose disk fills up halfway (a real 2 MB tmpfs): it stops with a clear
error, the catalog stays sound, and once there is room the same command finishes the job with nothing lost or
doubled (real LFW photos, the YuNet + MobileFaceNet pack)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SHARED_MODELS, copy_lfw_people, require_shared


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (skipped where this process may not mount one: it needs root)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small file system cannot be mounted here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def run_facesearch(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line on ``home`` with the YuNet + MobileFaceNet pack."""
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "--pack", "yunet-mobilefacenet", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_a_full_disk_stops_the_ingest_clearly_and_a_rerun_with_room_loses_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    require_shared(SHARED_MODELS / "yunet_2023mar.onnx")
    photos = tmp_path / "photos"
    files = copy_lfw_people(150, photos)
    assert len(files) >= 250
    home = small_disk / "home"

    stopped = run_facesearch(home, "index", str(photos), "--collection", "lfw", "--subject-from-folder", "--json")
    assert stopped.returncode != 0
    assert "could not write to the data folder" in stopped.stderr and "No space left on device" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    with sqlite3.connect(home / "catalog.sqlite3") as catalog:
        assert catalog.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (done_before,) = catalog.execute("SELECT count(*) FROM images").fetchone()
    assert 0 < done_before < len(files), done_before

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    finished = run_facesearch(home, "index", str(photos), "--collection", "lfw", "--subject-from-folder", "--json")
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["files_seen"] == len(files) and summary["already_done"] == done_before
    with sqlite3.connect(home / "catalog.sqlite3") as catalog:
        assert catalog.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        images = catalog.execute("SELECT count(*), count(DISTINCT sha256) FROM images").fetchone()
        locations = catalog.execute("SELECT count(*), count(DISTINCT path) FROM image_files").fetchone()
        (faces,) = catalog.execute("SELECT count(*) FROM faces").fetchone()
    assert locations == (len(files), len(files))  # every file once
    assert images[0] == images[1] == len(files)  # LFW holds no two identical photos
    doctor = run_facesearch(home, "doctor", "--check-only", "--json")
    report = json.loads(doctor.stdout.strip().splitlines()[-1])
    assert report["ok"] is True, report
    assert report["packs"][0]["catalog_faces"] == report["packs"][0]["index_vectors_before"] == faces > 0.9 * len(files)
