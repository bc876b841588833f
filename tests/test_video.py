"""Videos (issue 14): sampled frames, faces tracked (one stored face per track, with its time span), search
results that say where in the video, a video as a probe, and bad videos skipped with their reasons."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import facesearch
from facesearch.vision.video import frame_at, sampled_frames, video_info
from tests.conftest import LFW, require_shared
from tests.video_support import Shot, make_video, person_at


def people_with_photos(count: int, photos: int = 3) -> list[list[Path]]:
    lfw = require_shared(LFW)
    chosen = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        found = sorted(person.glob("*.jpg"))
        if len(found) >= photos:
            chosen.append(found)
        if len(chosen) == count:
            return chosen
    raise AssertionError("lfw-dev has too few people with several photos")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[Path]], list]:
    """A 12-second 640 x 360 clip: A alone, B alone, A beside C, then B again."""
    a, b, c = people_with_photos(3)
    folder = tmp_path_factory.mktemp("clip")
    shots = [Shot(3, (a[0],)), Shot(3, (b[0],)), Shot(3, (a[0], c[0])), Shot(3, (b[1],))]
    truth = make_video(folder / "clip.mp4", shots, width=640, height=360, fps=12)
    return folder / "clip.mp4", [a, b, c], truth


def test_frames_are_sampled_at_the_chosen_rate_and_a_frame_is_read_at_a_time(clip: tuple[Path, list, list]) -> None:
    path, _people, _truth = clip
    info = video_info(path)
    assert (info.width, info.height) == (640, 360) and info.duration_s == pytest.approx(12, abs=0.2)
    times = [frame.time for frame in sampled_frames(path, fps=2)]
    assert len(times) == pytest.approx(24, abs=1) and times == sorted(times)
    assert all(b - a == pytest.approx(0.5, abs=0.1) for a, b in itertools.pairwise(times))
    cuts = [frame.time for frame in sampled_frames(path, fps=0.1, scenes=True)]
    assert [round(t) for t in cuts] == [0, 3, 6, 9]  # each shot's first frame (the next sample, 10 s after a cut)
    frame = frame_at(path, 4.0)
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8


def test_a_video_is_indexed_as_tracks_and_found_by_a_still(clip: tuple[Path, list, list], tmp_path: Path) -> None:
    path, (a, b, c), truth = clip
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    (bad / "truncated.mp4").write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    home = tmp_path / "home"
    with facesearch.open(home) as fs:
        summary = fs.index([path, bad], collection="footage", workers=1)
        assert summary.images_indexed == 1 and summary.skipped["corrupt"] == 2, summary.to_dict()
        faces = fs.catalog.face_details(list(range(1, 50)))
        assert faces and all(f.media == "video" and f.time_span and f.frame_time is not None for f in faces.values())
        main = {i: f for i, f in faces.items() if f.bbox[3] >= 60}  # the people shown, not faces in their photos
        seen = Counter(
            person_at(truth, f.frame_time, f.bbox[0] + f.bbox[2] / 2)  # type: ignore[arg-type]
            for f in main.values()
        )
        # A twice (alone, then beside C), B twice (two shots, two photos), C once.
        assert seen == {a[0].parent.name: 2, b[0].parent.name: 2, c[0].parent.name: 1}, seen
        for face in main.values():
            start, end = face.time_span  # type: ignore[misc]
            assert start <= face.frame_time <= end and end - start >= 2.0  # type: ignore[operator]
        result = fs.search(a[2])
        best = result.faces[0].candidates[0]
        assert best.media == "video" and best.image == str(path) and best.time_span is not None
        assert person_at(truth, best.frame_time, best.bbox[0] + best.bbox[2] / 2) == a[0].parent.name  # type: ignore[arg-type]
        crop = fs.reads.crop(fs.operator, best.face_id)
        assert crop.startswith(b"\xff\xd8")
        again = fs.index([path, bad], collection="footage", workers=1)
        assert again.already_done == 3 and again.faces == 0


def test_a_video_probe_is_searched_track_by_track(clip: tuple[Path, list, list], tmp_path: Path) -> None:
    path, (a, b, _c), _truth = clip
    home = tmp_path / "home"
    with facesearch.open(home) as fs:
        fs.index([a[1], b[2]], collection="photos", workers=1)
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "search", str(path), "--json"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    tracks = [face for face in result["faces"] if face["time_span"] is not None]
    assert len(tracks) == len(result["faces"]) >= 4
    found = {
        Path(face["candidates"][0]["image"]).name
        for face in tracks
        if face["candidates"][0]["similarity"] >= result["threshold"]
    }
    assert found == {a[1].name, b[2].name}
    assert all(face["candidates"][0]["media"] == "image" for face in tracks)


def test_the_workbench_shows_a_video_candidate_with_its_time_and_plays_it(
    clip: tuple[Path, list, list], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from facesearch.api.app import create_app
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch
    from tests.workbench_support import add_users, browser

    path, (a, _b, _c), _truth = clip
    home = tmp_path / "home"
    settings = Settings.load(home, catalog_url=f"sqlite:///{home / 'catalog.sqlite3'}", workers=1)
    with FaceSearch(settings) as engine:
        engine.index([path], collection="footage", workers=1)
        add_users(engine)
        app = create_app(engine.settings, engine=engine, schedule=False)
        with TestClient(app):
            investigator = browser(app, "investigator")
            answer = investigator.post(
                "/search",
                {"new_case": "VID-1", "purpose": "humanitarian"},
                files={"image": ("probe.jpg", a[2].read_bytes(), "image/jpeg")},
                token_from="/search",
            )
            assert answer.status_code == 200, answer.text[:300]
            assert "In the video" in answer.text and '<video class="clip"' in answer.text
            media = answer.text.split('src="/media/', 1)[1].split('"', 1)[0]
            face_id = int(media.split("?", 1)[0])
            assert "#t=" in media
            played = investigator.client.get(f"/media/{face_id}?case=VID-1", headers={"Range": "bytes=0-99"})
            assert played.status_code == 206 and len(played.content) == 100
            assert played.headers["content-type"] == "video/mp4"
            assert investigator.client.get("/media/999999?case=VID-1").status_code == 404
            actions = [r["action"] for r in engine.audit.records(actor="investigator", limit=50)]
            assert "video_read" in actions
