"""``facesearch index`` killed with SIGKILL halfway: no worker process is left behind, and running the same
command again finishes the job with nothing lost or doubled (real LFW photos, two worker processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import copy_lfw_people
from tests.test_api_support import catalog_url


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def query(url: str, sql: str) -> tuple[Any, ...]:
    """One row of a query on the catalog, read by a connection of its own (the tables may not exist yet)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(text(sql)).one())
    finally:
        engine.dispose()


def images_recorded(url: str) -> int:
    try:
        return int(query(url, "SELECT count(*) FROM images")[0])
    except Exception:  # no catalog yet, or its tables are being created
        return 0


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_leaves_no_worker_and_a_rerun_completes_without_loss_or_double(kind: str, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    files = copy_lfw_people(70, photos)
    assert len(files) >= 120
    with catalog_url(kind, tmp_path) as url:
        interrupt_and_resume(tmp_path / "home", url, photos, files)


def interrupt_and_resume(home: Path, url: str, photos: Path, files: list[Path]) -> None:
    command = [
        sys.executable,
        "-m",
        "facesearch.cli",
        "--home",
        str(home),
        "--catalog-url",
        url,
        "--pack",
        "dlib",
        "index",
        str(photos),
        "--collection",
        "lfw",
        "--subject-from-folder",
        "--workers",
        "2",
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while images_recorded(url) == 0:
            assert process.poll() is None, "the ingest ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        workers = children_of(process.pid)
        assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    done_before = images_recorded(url)
    assert 0 < done_before < len(files)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if alive(pid)] == []

    finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["already_done"] >= done_before and summary["files_seen"] == len(files)
    images = query(url, "SELECT count(*), count(DISTINCT sha256) FROM images")
    locations = query(url, "SELECT count(*), count(DISTINCT path) FROM image_files")
    scans = query(url, "SELECT count(*), count(DISTINCT image_id) FROM image_scans")
    doubled = query(
        url,
        "SELECT count(*) FROM image_scans s WHERE s.faces != (SELECT count(*) FROM faces f "
        "WHERE f.image_id = s.image_id AND f.pack = s.pack)",
    )[0]
    assert locations == (len(files), len(files))  # every file once
    assert images[0] == images[1] == scans[0] == scans[1]  # every content stored and scanned once
    assert doubled == 0  # no image holds more (or fewer) faces than its one scan found
    doctor = subprocess.run(
        [*command[:9], "doctor", "--json"], capture_output=True, text=True, timeout=300, check=False
    )
    assert json.loads(doctor.stdout.strip().splitlines()[-1])["ok"] is True
