"""`make demo`: index a small real photo collection and search it, through the `facesearch` command.

With ../shared present it indexes LFW (lfw-dev) with the best available pack; on a fresh machine with only
the repository it uses scikit-image's public-domain astronaut photo and the always-available dlib pack.

It leaves the data folder in `.facesearch-demo/` (or the folder given as the first argument) and, in its
`tour/` subfolder, what the README's tour and Python example use: `photos/` (a few people, one folder each),
`probe.jpg`, and `a.jpg` and `b.jpg` (two photos of one person).

With `--serve` (`make demo-serve`) it then adds one demo user per role, each with a password, prints the
workbench's address and the logins, and serves it until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESEARCH_SHARED", REPO.parent / "shared"))
LFW = SHARED / "data" / "lfw-dev" / "images"
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SERVE = "--serve" in sys.argv[1:]
HOME = Path(ARGS[0]).resolve() if ARGS else REPO / ".facesearch-demo"
PORT = int(os.environ.get("FACESEARCH_DEMO_PORT", "8000"))
DEMO_PASSWORD = "demo-password"  # a demo's login, printed for the newcomer
DEMO_USERS = {"investigator": "investigator", "reviewer": "reviewer", "admin": "admin", "auditor": "auditor"}
TOUR = HOME / "tour"


def facesearch(*args: str) -> None:
    """Run the facesearch command on the demo's data folder, showing it first."""
    command = ["facesearch", "--home", str(HOME), *args]
    print("\n$ " + " ".join(command), flush=True)
    executable = [sys.executable, "-m", "facesearch.cli", *command[1:]]
    subprocess.run(executable, check=True)


def quiet(*args: str, stdin: str | None = None) -> None:
    """Run the facesearch command on the demo's data folder without showing it."""
    executable = [sys.executable, "-m", "facesearch.cli", "--home", str(HOME), *args]
    subprocess.run(executable, check=True, input=stdin, text=True, stdout=subprocess.DEVNULL)


def serve() -> None:
    """Add the demo's users (one per role, one password), print the workbench's address, and serve it."""
    for name, role in DEMO_USERS.items():
        quiet("users", "add", name, "--role", role)
        quiet("users", "passwd", name, stdin=DEMO_PASSWORD + "\n")
    url = f"http://127.0.0.1:{PORT}/"
    print(f"\nThe workbench: {url}")
    print(f"Sign in as investigator (search), reviewer (decide), admin or auditor; password: {DEMO_PASSWORD}")
    print("Ctrl-C stops the server.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        facesearch("serve", "--host", "127.0.0.1", "--port", str(PORT), "--log-level", "warning")


def search_stranger(photo: Path) -> None:
    """Search for someone who is not in the gallery, and say what the answer means, whatever it is."""
    from facesearch.cli.render import probe_result
    from facesearch.search.results import ProbeResult

    command = ["facesearch", "--home", str(HOME), "search", str(photo), "--top-k", "3"]
    print("\n$ " + " ".join(command), flush=True)
    executable = [sys.executable, "-m", "facesearch.cli", *command[1:], "--json"]
    answer = subprocess.run(executable, check=True, capture_output=True, text=True)
    result = ProbeResult.model_validate_json(answer.stdout.splitlines()[-1])
    print(probe_result(result))
    above = [c for face in result.faces for c in face.candidates if c.similarity >= (result.threshold or 1.0)]
    if not above:
        print("Every candidate falls below the same-person threshold: nobody in the gallery is a likely match.")
        return
    best = above[0]
    expected = best.expected_false_matches
    print(
        f"A stranger scored {best.similarity:.3f}, above the same-person threshold {result.threshold}. "
        + (
            f"In a gallery this size about {expected:.2g} strangers are expected to score that high, "
            if expected
            else ""
        )
        + "which is why every candidate is a lead for a person to review, never an identification."
    )


def lfw_demo() -> None:
    """Enrol the first photo of 300 LFW people; search with another photo of three of them and a stranger."""
    gallery, probes, stranger = HOME / "gallery", [], None
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 2 and len(list(gallery.glob("*"))) < 300:
            (gallery / person.name).mkdir(parents=True)
            (gallery / person.name / photos[0].name).symlink_to(photos[0])
            if len(probes) < 3 and len(photos) >= 3:
                probes.append(photos[1])
        elif len(photos) == 1 and stranger is None:
            stranger = photos[0]
    facesearch(
        "index",
        str(gallery),
        "--collection",
        "lfw-demo",
        "--subject-from-folder",
        "--legal-basis",
        "research evaluation (LFW)",
        "--source-url",
        "http://vis-www.cs.umass.edu/lfw/",
    )
    facesearch("search", *map(str, probes), "--top-k", "3")
    if stranger is not None:
        print("\nA person who is not in the gallery:")
        search_stranger(stranger)
    second = probes[0].with_name(probes[0].name.replace("0002", "0003"))
    facesearch("verify", str(probes[0]), str(second))
    tour_files(people=[p.parent for p in probes], probe=probes[1], pair=(probes[0], second))


def tour_files(people: list[Path], probe: Path, pair: tuple[Path, Path]) -> None:
    """The README tour's files (links, not copies): photos/<person>/ with up to three photos of each of
    ``people`` (never the probe's or the pair's), probe.jpg, a.jpg and b.jpg."""
    for person in people:
        (TOUR / "photos" / person.name).mkdir(parents=True)
        others = [photo for photo in sorted(person.glob("*.jpg")) if photo not in (probe, *pair)]
        for photo in others[:3]:
            (TOUR / "photos" / person.name / photo.name).symlink_to(photo)
    (TOUR / "probe.jpg").symlink_to(probe)
    (TOUR / "a.jpg").symlink_to(pair[0])
    (TOUR / "b.jpg").symlink_to(pair[1])


def astronaut_demo() -> None:
    """Index variants of scikit-image's astronaut plus a face-less and a broken file; search with a crop."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = HOME / "photos"
    (photos / "Eileen_Collins").mkdir(parents=True)
    (photos / "other").mkdir()
    astronaut = np.asarray(data.astronaut())
    Image.fromarray(astronaut).save(photos / "Eileen_Collins" / "portrait.jpg")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(photos / "Eileen_Collins" / "mirrored.png")
    Image.fromarray(np.asarray(data.coffee())).save(photos / "other" / "coffee.jpg")
    (photos / "other" / "broken.jpg").write_bytes(b"%PDF-1.4 not really a photo")
    probe = HOME / "probe.jpg"
    Image.fromarray(astronaut[30:330, 90:390]).resize((200, 200)).save(probe)
    facesearch(
        "--pack",
        "dlib",
        "index",
        str(photos),
        "--collection",
        "demo",
        "--subject-from-folder",
        "--legal-basis",
        "public-domain demo photos",
    )
    facesearch("search", str(probe), "--top-k", "3")
    facesearch("verify", str(probe), str(photos / "Eileen_Collins" / "portrait.jpg"))
    (TOUR / "photos" / "Eileen_Collins").mkdir(parents=True)
    Image.fromarray(astronaut[:, ::-1]).resize((400, 400)).save(TOUR / "photos" / "Eileen_Collins" / "small.jpg")
    Image.fromarray(astronaut[20:420, 60:460]).save(TOUR / "photos" / "Eileen_Collins" / "crop.jpg")
    Image.fromarray(astronaut[10:430, 50:470]).save(TOUR / "probe.jpg")
    Image.fromarray(astronaut).save(TOUR / "a.jpg")
    Image.fromarray(astronaut[30:330, 90:390]).resize((200, 200)).save(TOUR / "b.jpg")


def main() -> None:
    """Build a fresh demo data folder and run the tour."""
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    if LFW.is_dir():
        lfw_demo()
    else:
        print(f"{SHARED} is absent: using scikit-image's astronaut photo and the dlib pack.")
        astronaut_demo()
    facesearch("status")
    print(f"\nDemo data folder: {HOME} (delete it when done). Results are leads to review, not identifications.")
    print(f"The README's tour goes on from here, with the files in {TOUR}.")
    if SERVE:
        serve()
    else:
        print("To see it in the browser (the workbench): make demo-serve")


if __name__ == "__main__":
    main()
