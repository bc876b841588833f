"""Video ingest (issue 14): speed per minute of 720p video, track purity and tracks per person, and identification
with a still of a person seen in the video.

A 1280 x 720, 25 frames/s H.264 video is made from lfw-dev photos (``tests/video_support.py``): ``--minutes``
of shots of 3-6 seconds, one or two people each, a third of the people coming back later with another photo.
Then, on the default pack:

- the tracks, from frames sampled at ``--fps`` (default 2), with every face a track took checked against who
  was shown there: purity (share of tracks holding one person) and tracks per person per appearance;
- `facesearch index` of the video into a data folder (as a user runs it, ``--workers`` processes): wall-clock,
  per minute of video, sampled frames analysed a second, and the process's peak memory;
- identification: another photo of each person shown (one the video does not use) searched in that folder,
  which also holds ``--distractors`` lfw-dev photos of other people: rank 1 is a hit when the best candidate is
  a track of that person.

    python benchmarks/video.py [--minutes 5] [--fps 2] [--distractors 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.video_support import Shot, make_video, person_at

from common import LFW, machine, use_shared_models

MAIN_FACE_PX = 120
"""A face this tall or more is the person shown (their photo is 500+ pixels a side, their face about 200);
smaller ones are other people caught in their photo."""


def plan_shots(minutes: float, rng: random.Random) -> tuple[list[Shot], dict[str, list[Path]]]:
    """Shots filling ``minutes``, and each person's photos (the first ones shown, a later one kept for probing)."""
    people = [p for p in sorted(LFW.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) >= 3]
    rng.shuffle(people)
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    shots: list[Shot] = []
    total, next_person = 0.0, 0
    shown: list[str] = []
    while total < minutes * 60:
        seconds = rng.uniform(3, 6)
        if shown and rng.random() < 0.25:  # someone comes back, in another photo
            who = rng.choice(shown)
            people_in = (photos[who][1],)
        else:
            count = 2 if rng.random() < 0.3 else 1
            chosen = [people[next_person + k].name for k in range(count)]
            next_person += count
            shown.extend(chosen)
            people_in = tuple(photos[name][0] for name in chosen)
        shots.append(Shot(seconds, people_in))
        total += seconds
    return shots, {name: photos[name] for name in shown}


def main() -> None:
    """Make the video, measure tracks, ingest and identification; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    import facesearch
    from facesearch.vision.packs import Packs
    from facesearch.vision.tracking import video_tracks

    rng = random.Random(20261202)
    shots, shown = plan_shots(options.minutes, rng)
    report: dict[str, Any] = {"machine": machine(), "minutes": options.minutes, "fps": options.fps}
    with tempfile.TemporaryDirectory(prefix="facesearch-video-") as scratch:
        video = Path(scratch) / "people.mp4"
        started = time.perf_counter()
        truth = make_video(video, shots)
        report["made_s"] = round(time.perf_counter() - started, 1)
        report["shots"], report["people"] = len(shots), len(shown)
        report["appearances"] = len(truth)

        # Tracks, with every face checked against the truth.
        pack = Packs(None, Path(scratch) / "models").pack()
        report["pack"] = pack.key
        members: dict[int, list[str | None]] = defaultdict(list)
        main_face: dict[int, bool] = {}

        def on_link(track: Any, at: float, face: Any) -> None:
            x, _y, w, h = face.detection.bbox
            members[track.number].append(person_at(truth, at, x + w / 2))
            main_face[track.number] = main_face.get(track.number, False) or h >= MAIN_FACE_PX

        started = time.perf_counter()
        tracks = video_tracks(pack, str(video), fps=options.fps, on_link=on_link)
        report["tracking_s"] = round(time.perf_counter() - started, 1)
        pure = sum(1 for t in tracks if len(set(members[t.number])) == 1)
        report["tracks"] = len(tracks)
        report["purity"] = round(pure / len(tracks), 4) if tracks else None
        per_appearance: Counter[tuple[str, float]] = Counter()
        for track in tracks:
            if not main_face.get(track.number):
                continue
            who = Counter(members[track.number]).most_common(1)[0][0]
            start = next((a.start for a in truth if a.person == who and a.start <= track.start < a.end), -1.0)
            per_appearance[(str(who), start)] += 1
        seen = [(a.person, a.start) for a in truth]
        report["main_tracks"] = sum(per_appearance.values())
        report["appearances_found"] = round(sum(1 for key in seen if per_appearance[key]) / len(seen), 4)
        report["tracks_per_appearance"] = round(sum(per_appearance.values()) / max(1, len(per_appearance)), 3)

        # The ingest, as a user runs it: `facesearch index` in a process of its own (its peak memory is then
        # its own, not this process's, which made the video).
        home = Path(scratch) / "home"
        command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "index", str(video), "-c", "footage"]
        started = time.perf_counter()
        indexed = subprocess.run(
            [*command, "--workers", str(options.workers), "--json"], capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if indexed.returncode != 0:
            raise SystemExit(indexed.stderr)
        report["index_s"] = round(elapsed, 1)
        report["index_s_per_minute"] = round(elapsed / options.minutes, 2)
        report["hour_projected_min"] = round(elapsed / options.minutes * 60 / 60, 1)
        report["sampled_frames_per_s"] = round(options.minutes * 60 * options.fps / elapsed, 1)
        report["stored_faces"] = json.loads(indexed.stdout)["faces"]
        report["index_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        with facesearch.open(home) as fs:
            # Identification: a still of each person shown, among the video's tracks and other people's photos.
            others = [p for p in sorted(LFW.iterdir()) if p.is_dir() and p.name not in shown]
            rng.shuffle(others)
            distractors = [sorted(p.glob("*.jpg"))[0] for p in others[: options.distractors]]
            fs.index([str(p) for p in distractors], collection="photos", workers=options.workers)
            hits, answered = 0, 0
            for person, photos in shown.items():
                result = fs.search(photos[2], top_k=1)
                if not result.faces or not result.faces[0].candidates:
                    continue
                answered += 1
                best = result.faces[0].candidates[0]
                if best.media == "video" and best.frame_time is not None:
                    at = person_at(truth, best.frame_time, best.bbox[0] + best.bbox[2] / 2)
                    hits += at == person
            report["identification_probes"] = len(shown)
            report["rank1"] = round(hits / len(shown), 4)
    if options.json:
        print(json.dumps(report))
        return
    print(report["machine"])
    print(
        f"{options.minutes} min of 1280x720 video at 25 frames/s ({report['shots']} shots, {report['people']} people, "
        f"{report['appearances']} appearances), pack {report['pack']}, sampled at {options.fps}/s"
    )
    print(
        f"  tracks {report['tracks']} (made in {report['tracking_s']} s), purity {report['purity']}; main faces' "
        f"tracks {report['main_tracks']}, {report['tracks_per_appearance']} per appearance, "
        f"{report['appearances_found']} of appearances found"
    )
    print(
        f"  facesearch index ({options.workers} workers): {report['index_s']} s, {report['index_s_per_minute']} s per "
        f"minute of video (1 hour: {report['hour_projected_min']} min), {report['sampled_frames_per_s']} sampled "
        f"frames/s, peak memory of the index command {report['index_peak_rss_mib']} MiB"
    )
    print(
        f"  identification: rank-1 {report['rank1']} of {report['identification_probes']} stills "
        f"(among the video's tracks and {options.distractors} other people's photos)"
    )


if __name__ == "__main__":
    main()
