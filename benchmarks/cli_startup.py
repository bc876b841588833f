"""How long the installed ``facesearch`` command takes to answer (issue 11: --help under 1 s, one search of one
probe under 2 s).

Each figure is the wall time of a whole process, as a user at a terminal sees it, the median (and worst) of
``--runs`` runs after one warm-up (the operating system's file cache warm, as it is for anyone who has run the
command before):

- ``facesearch --help`` and ``facesearch search --help``;
- ``facesearch search PROBE`` (one probe, human output) on a data folder of ``--faces`` LFW faces indexed with
  the default pack (``yunet-mobilefacenet`` with ../shared/models, else ``dlib``), and the same with ``--json``.

It also reports what the search process spends its time on (``python -X importtime`` for the imports).

    python benchmarks/cli_startup.py [--faces 1000] [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LFW, machine, use_shared_models

COMMAND = shutil.which("facesearch", path=str(Path(sys.executable).parent)) or "facesearch"


def timed(args: list[str], runs: int) -> dict[str, float]:
    """Median and worst wall time (s) of ``runs`` runs of a command, after one warm-up run."""
    subprocess.run(args, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 3), "worst_s": round(max(times), 3)}


def gallery(folder: Path, faces: int) -> tuple[list[Path], Path]:
    """Up to ``faces`` LFW photos (first of each person, then seconds) linked into ``folder``; and a probe."""
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    chosen: list[Path] = []
    probe = None
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if probe is None and len(photos) >= 2:
            probe = photos[1]
            chosen.append(photos[0])
            continue
        chosen.append(photos[0])
        if len(chosen) >= faces:
            break
    for photo in chosen:
        (folder / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / photo.parent.name / photo.name).symlink_to(photo)
    assert probe is not None
    return chosen, probe


def main() -> None:
    """Build the data folder, time the commands, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=1000, help="LFW photos in the gallery (one face each).")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    use_shared_models()
    report: dict[str, Any] = {"machine": machine(), "command": COMMAND}
    report["help"] = timed([COMMAND, "--help"], options.runs)
    report["search_help"] = timed([COMMAND, "search", "--help"], options.runs)
    with tempfile.TemporaryDirectory(prefix="facesearch-cli-bench-") as scratch:
        home, photos = Path(scratch) / "home", Path(scratch) / "photos"
        if LFW.is_dir():
            chosen, probe = gallery(photos, options.faces)
        else:  # no ../shared: the astronaut alone
            from PIL import Image
            from skimage import data

            photos.mkdir()
            Image.fromarray(data.astronaut()).save(photos / "astronaut.jpg")
            chosen, probe = [photos / "astronaut.jpg"], photos / "astronaut.jpg"
        subprocess.run(
            [COMMAND, "--home", str(home), "index", str(photos), "--collection", "bench", "--subject-from-folder"],
            check=True,
            capture_output=True,
        )
        status = json.loads(subprocess.run([COMMAND, "--home", str(home), "status", "--json"], **_out()).stdout)
        report["gallery"] = {"photos": len(chosen), "faces": status["faces"], "pack": status["packs"][0]["pack"]}
        # A new shell: no FACESEARCH_MODEL_DIRS; the data folder remembers where its models are.
        os.environ.pop("FACESEARCH_MODEL_DIRS", None)
        search = [COMMAND, "--home", str(home), "search", str(probe)]
        report["search"] = timed(search, options.runs)
        report["search_json"] = timed([*search, "--json"], options.runs)
        imports = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "facesearch.cli", *search[1:]], **_out()
        ).stderr
        report["search_imports_s"] = round(_import_total(imports), 3)
    if options.json:
        print(json.dumps(report))
        return
    print(f"{report['machine']}")
    print(f"facesearch --help:          {report['help']['median_s']:.2f} s (worst {report['help']['worst_s']:.2f})")
    print(
        f"facesearch search --help:   {report['search_help']['median_s']:.2f} s "
        f"(worst {report['search_help']['worst_s']:.2f})"
    )
    g = report["gallery"]
    print(
        f"facesearch search (1 probe, {g['faces']} faces, {g['pack']}): {report['search']['median_s']:.2f} s "
        f"(worst {report['search']['worst_s']:.2f}); --json {report['search_json']['median_s']:.2f} s; "
        f"imports {report['search_imports_s']:.2f} s"
    )


def _out() -> dict[str, Any]:
    return {"check": True, "capture_output": True, "text": True}


def _import_total(importtime: str) -> float:
    """Seconds spent importing top-level modules, from ``-X importtime`` output (cumulative microseconds)."""
    total = 0
    for line in importtime.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
            try:
                total += int(parts[1])
            except ValueError:
                continue
    return total / 1e6


if __name__ == "__main__":
    main()
