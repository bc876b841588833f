"""The front door, as a new user meets it: the README's Python example pasted as printed, no silent empty
answer, a data folder that remembers its pack and its models, output that fits 80 columns and a pipe,
listings as JSON and CSV, exit statuses, and an erase that asks first on a terminal.

Commands run as real processes (``python -m facesearch.cli``) with stdout a pipe, as scripts and new users
run them; the dlib pack works everywhere, the ONNX packs need ../shared/models.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesearch.cli.evaluation import _fnir_point
from tests.conftest import GROUP_PHOTOS, LFW, REPO, SHARED_MODELS, IndexedFolders, require_shared

README = REPO / "README.md"


def run(home: Path, *args: str, env: dict[str, str] | None = None, check: int | None = 0) -> tuple[int, str, str]:
    """The installed command as a process, stdout a pipe and no terminal width set; (status, out, err)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    if check is not None:
        assert done.returncode == check, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data folder indexed with the dlib pack (the astronaut under a long file name, and a face-less photo)."""
    from skimage import data

    root = tmp_path_factory.mktemp("front-door")
    photos = root / "photos"
    person = photos / "Eileen_Collins"
    person.mkdir(parents=True)
    astronaut = np.asarray(data.astronaut())
    long_name = "eileen-collins-nasa-portrait-1992-official-high-resolution-scan.jpg"
    Image.fromarray(astronaut).save(person / long_name)
    Image.fromarray(astronaut[20:420, 60:460]).resize((300, 300)).save(person / "crop.png")
    (photos / "coffee.jpg").write_bytes(_jpeg(np.asarray(data.coffee())))
    (photos / "broken.jpg").write_bytes(b"%PDF-1.4 not a photo")
    home = root / "home"
    run(home, "--pack", "dlib", "index", str(photos), "--collection", "demo", "--subject-from-folder")
    return home, photos


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG")
    return buffer.getvalue()


# The README's Python example --------------------------------------------------------------------------------


def _readme_python_example() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "the README has no Python example"
    return blocks[0]


@pytest.fixture()
def readme_folder(tmp_path: Path) -> Path:
    """What the README's example expects beside it: photos/<person>/, probe.jpg, a.jpg and b.jpg."""
    from skimage import data

    astronaut = np.asarray(data.astronaut())
    (tmp_path / "photos" / "Eileen_Collins").mkdir(parents=True)
    Image.fromarray(astronaut).save(tmp_path / "photos" / "Eileen_Collins" / "portrait.jpg")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(tmp_path / "photos" / "Eileen_Collins" / "m.png")
    Image.fromarray(np.asarray(data.coffee())).save(tmp_path / "photos" / "coffee.jpg")
    Image.fromarray(astronaut[30:330, 90:390]).save(tmp_path / "probe.jpg")
    Image.fromarray(astronaut[10:430, 50:470]).save(tmp_path / "a.jpg")
    Image.fromarray(astronaut).resize((256, 256)).save(tmp_path / "b.jpg")
    (tmp_path / "user-home").mkdir()
    return tmp_path


@pytest.mark.parametrize("how", ["script without a main guard", "standard input"])
def test_the_readme_python_example_runs_as_printed(readme_folder: Path, how: str) -> None:
    """Pasted into a file (no ``if __name__ == "__main__"`` guard) or piped to ``python -``, with two workers."""
    example = _readme_python_example()
    assert "__main__" not in example
    (readme_folder / "example.py").write_text(example, encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")},
        "HOME": str(readme_folder / "user-home"),
        "FACESEARCH_WORKERS": "2",
    }
    command = [sys.executable, "example.py"] if how.startswith("script") else [sys.executable, "-"]
    done = subprocess.run(
        command,
        cwd=readme_folder,
        input=None if how.startswith("script") else example,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "bootstrapping" not in done.stderr
    lines = done.stdout.splitlines()
    first = lines[0].split()
    assert first[0] == "1" and float(first[1]) > 0.5 and first[2] == "Eileen_Collins", done.stdout
    assert "'same_person': True" in lines[-1]
    assert (readme_folder / "user-home" / "faces").is_dir()
    if how.startswith("script"):
        assert "without worker processes" in done.stderr and "guard" in done.stderr


def test_a_guarded_script_still_uses_worker_processes(tmp_path: Path, photo_folder: Path) -> None:
    from facesearch.ingest.spawn_safety import _guard_lines

    source = "import x\nif __name__ == '__main__':\n    a = 1\n    b = 2\n"
    assert _guard_lines(source) == [(3, 4)]
    assert _guard_lines("if '__main__' == __name__:\n    main()\n") == [(2, 2)]
    assert _guard_lines("print(__name__)\n") == []
    script = tmp_path / "guarded.py"
    script.write_text(
        "import facesearch, sys\n"
        "from facesearch.ingest import spawn_safety\n"
        "def main():\n"
        "    print(spawn_safety.workers_may_spawn())\n"
        "print('top', spawn_safety.workers_may_spawn())\n"
        "if __name__ == '__main__':\n"
        "    main()\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    top, guarded = done.stdout.splitlines()
    assert top.startswith("top (False") and "line 5" in top
    assert guarded == "(True, '')"


# Never a silent empty answer -------------------------------------------------------------------------------


def test_an_empty_gallery_says_so(tmp_path: Path, photo_folder: Path) -> None:
    probe = str(photo_folder / "Eileen_Collins" / "crop.png")
    _, out, _ = run(tmp_path / "empty", "--pack", "dlib", "search", probe)
    words = " ".join(out.split())  # the human output is wrapped to the width
    assert "the gallery holds no face indexed with pack dlib@2: nothing to compare with" in words
    assert "no candidate: nothing was searched" in words
    _, out, _ = run(tmp_path / "empty", "--pack", "dlib", "search", probe, "--json")
    result = json.loads(out.splitlines()[-1])
    assert result["faces_searched"] == 0 and "nothing to compare with" in result["warnings"][0]
    _, out, _ = run(tmp_path / "empty", "skipped")
    assert out.strip() == "no file was skipped"
    _, out, _ = run(tmp_path / "empty", "collections")
    assert out.strip().startswith("no collection yet")


def test_a_stranger_below_the_threshold_is_named_as_such(indexed: tuple[Path, Path]) -> None:
    home, _ = indexed
    stranger = require_shared(LFW / "Aaron_Sorkin")
    probe = sorted(stranger.glob("*.jpg"))[0]
    _, out, _ = run(home, "search", str(probe), "--json")
    result = json.loads(out.splitlines()[-1])
    assert result["pack"] == "dlib@2"  # the data folder's pack, though an ONNX pack may be installed
    assert any(
        w.startswith("face 1 (at ") and "no candidate reaches the same-person threshold" in w
        for w in result["warnings"]
    ), result["warnings"]
    _, out, _ = run(home, "search", str(probe))
    assert "below the same-person threshold" in out and "most likely other people" in out


def test_quality_warnings_name_their_face_and_every_score_below_one_has_a_reason(tmp_path: Path) -> None:
    """On real group photos (many faces, small and turned ones among them)."""
    photos = sorted(require_shared(GROUP_PHOTOS).glob("*.jpg"))[:6]
    _, out, _ = run(tmp_path / "h", "--pack", "dlib", "search", *map(str, photos), "--json")
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    faces = [face for result in results for face in result["faces"]]
    assert len(faces) >= 10
    for face in faces:
        if face["quality"] < 1:
            assert face["quality_reasons"], face
    poor = [w for result in results for w in result["warnings"] if "poor quality" in w]
    assert poor and all(re.match(r"face \d+ \(at \d+,\d+, \d+x\d+ px\): poor quality", w) for w in poor), poor


# A data folder remembers its pack and its models -----------------------------------------------------------


def test_the_data_folder_remembers_its_models_folder_and_its_pack(tmp_path: Path, photo_folder: Path) -> None:
    models = require_shared(SHARED_MODELS)
    home = tmp_path / "home"
    with_models = {"FACESEARCH_MODEL_DIRS": str(models)}
    run(home, "--pack", "yunet-mobilefacenet", "index", str(photo_folder), "--collection", "c", env=with_models)
    assert str(models) in (home / "config.toml").read_text()
    # A new shell, no environment variable, no --pack: the folder's own pack and models answer.
    bare = {k: v for k, v in os.environ.items() if k != "FACESEARCH_MODEL_DIRS"}
    probe = str(photo_folder / "Eileen_Collins" / "crop.png")
    done = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "search", probe, "--json", "--home", str(home)],
        capture_output=True,
        text=True,
        env=bare,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["pack"] == "yunet-mobilefacenet@1" and result["faces"][0]["candidates"][0]["similarity"] > 0.9
    # The models gone from where the folder remembers them: an error that says what to do, not an empty answer.
    config = home / "config.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if "model_dirs" not in line))
    done = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "--home", str(home), "search", str(photo_folder / "other")],
        capture_output=True,
        text=True,
        env=bare,
        timeout=120,
    )
    assert done.returncode == 2
    assert "yunet-mobilefacenet@1" in done.stderr and "FACESEARCH_MODEL_DIRS" in done.stderr
    assert "models pull" in done.stderr and "Traceback" not in done.stderr


def test_global_options_after_the_command_and_an_unknown_pack(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    done = subprocess.run(
        [sys.executable, "-m", "facesearch.cli", "status", "--json", "--home", str(home), "--pack", "dlib"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["faces"] >= 2
    _, _, err = run(home, "search", str(photos / "crop.png"), "--pack", "nonsense", check=2)
    assert "unknown pack 'nonsense'" in err and "yunet-mobilefacenet" in err and "dlib" in err


# Exit statuses ----------------------------------------------------------------------------------------------


def test_exit_status_zero_one_two(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    probe = str(photos / "Eileen_Collins" / "crop.png")
    run(home, "search", probe, check=0)
    _, out, _ = run(home, "search", probe, str(photos / "broken.jpg"), check=1)
    assert "Eileen_Collins" in out and "error: not_an_image" in out  # the readable probe is still answered
    run(home, "search", check=2)  # no probe: a usage error
    run(home, "search", probe, "--top-k", "0", check=2)
    run(home, "search", probe, "--purpose", "curiosity", check=2)
    run(home, "cases", "show", "NO-SUCH-CASE", check=1)
    run(home, "users", "revoke", "nobody", check=1)
    run(home, "erase", "--face", "999999", "--yes", check=1)
    run(home, "erase", check=2)
    run(home, "verify", str(photos / "coffee.jpg"), probe, check=1)


# Output that fits 80 columns and a pipe ---------------------------------------------------------------------


def test_search_output_fits_80_columns_and_keeps_file_names_whole(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    _, out, _ = run(home, "search", str(photos / "Eileen_Collins" / "crop.png"), "--top-k", "5")
    # Every line but the first (the probe, as the user named it) fits.
    assert max(len(line) for line in out.splitlines()[1:]) <= 80, out
    assert "eileen-collins-nasa-portrait-1992-official-high-resolution-scan.jpg" in out
    assert str(photos) not in out.split("\n", 1)[1]  # candidates by file name (the probe as it was given)
    _, wide, _ = run(home, "search", str(photos / "Eileen_Collins" / "crop.png"), "--wide")
    assert str(photos / "Eileen_Collins") in wide


def test_every_listing_speaks_json_and_csv_and_fits_80_columns(indexed: tuple[Path, Path]) -> None:
    home, photos = indexed
    run(home, "users", "add", "ada", "--role", "investigator", "--collection", "demo")
    run(home, "search", str(photos / "Eileen_Collins" / "crop.png"), "--case", "FD-1", "--purpose", "investigation")
    listings = {
        ("collections",): "name",
        ("skipped",): "path",
        ("users", "list"): "name",
        ("cases", "list"): "case_id",
        ("optout", "list"): "id",
        ("models", "list"): "name",
        ("index-stats",): "pack",
        ("audit", "list"): "seq",
    }
    for command, first_column in listings.items():
        _, as_json, _ = run(home, *command, "--json")
        json.loads(as_json.splitlines()[0])
        _, as_csv, _ = run(home, *command, "--csv")
        rows = list(csv.DictReader(io.StringIO(as_csv)))
        assert first_column in (rows[0] if rows else as_csv.splitlines()[0].split(",")), (command, as_csv)
        _, text, _ = run(home, *command)
        if command != ("audit", "list"):  # JSON lines by default, for scripts
            assert text.strip() and max(len(line) for line in text.splitlines()) <= 80, (command, text)
    _, as_csv, _ = run(home, "skipped", "--csv")
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert [Path(r["path"]).name for r in rows] == ["broken.jpg"] and rows[0]["reason"] == "not_an_image"
    _, text, _ = run(home, "forget", str(photos / "Eileen_Collins" / "crop.png"))
    assert "crop.png  [demo]" in text and max(len(line) for line in text.splitlines()) <= 80, text
    _, text, _ = run(home, "models", "list")
    for pack in ("yunet-mobilefacenet", "yunet-mobilefacenet-flip", "fused", "scrfd-mobilefacenet", "dlib"):
        assert re.search(rf"^  {re.escape(pack)}: (available|missing .+)$", text, flags=re.MULTILINE), pack


def test_models_list_names_what_each_pack_lacks(tmp_path: Path) -> None:
    _, out, _ = run(tmp_path / "h", "models", "list", "--json", env={"FACESEARCH_MODEL_DIRS": ""})
    packs = {p["name"]: p for p in json.loads(out)["packs"]}
    assert packs["dlib"]["available"] is True and packs["dlib"]["missing"] == []
    assert packs["fused"]["missing"] == ["yunet", "mobilefacenet"]
    assert packs["scrfd-mobilefacenet"]["missing"] == ["scrfd_2.5g", "mobilefacenet"]
    if SHARED_MODELS.is_dir():
        _, out, _ = run(tmp_path / "h", "models", "list", "--json")
        assert all(p["available"] for p in json.loads(out)["packs"])


def test_eval_identify_says_not_resolvable_beside_an_fpir_it_cannot_measure() -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    point = {"fpir": 0.001, "fnir": 0.2, "resolvable": False}
    assert _fnir_point(point, 300, pct) == "FNIR 20.00% at FPIR 0.001 (not resolvable: 300 non-mated probes)"
    assert _fnir_point({**point, "resolvable": True}, 3000, pct) == "FNIR 20.00% at FPIR 0.001"


# Erase asks first on a terminal -------------------------------------------------------------------------------


def _on_a_terminal(home: Path, args: list[str], answer: str) -> tuple[int, str]:
    """Run a command on a terminal (a pseudo-terminal), answer its question, return (status, what it printed)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "facesearch.cli", "--home", str(home), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    printed, answered = "", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            printed += chunk.decode(errors="replace")
        if not answered and "[y/N]" in printed:
            os.write(leader, answer.encode() + b"\n")
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(leader)
    return process.wait(timeout=60), printed


def test_erase_shows_what_it_would_remove_and_asks_on_a_terminal(
    tmp_path: Path, indexed_folders: IndexedFolders
) -> None:
    home, _ = indexed_folders.copy(tmp_path / "home", ("", "demo", True))
    faces = json.loads(run(home, "status", "--json")[1])["faces"]
    _, out, _ = run(home, "erase", "--subject", "Eileen_Collins", "--dry-run")
    assert "would erase (subject): 0 images, 3 faces, 1 subjects" in out and "nothing erased" in out, out
    code, printed = _on_a_terminal(home, ["erase", "--subject", "Eileen_Collins"], "n")
    assert code == 1 and "3 faces" in printed and "nothing erased" in printed, printed
    assert json.loads(run(home, "status", "--json")[1])["faces"] == faces
    code, printed = _on_a_terminal(home, ["erase", "--subject", "Eileen_Collins"], "y")
    assert code == 0 and "erased (subject): 0 images, 3 faces" in printed, printed
    assert json.loads(run(home, "status", "--json")[1])["faces"] == faces - 3
    # A script (no terminal) is never asked: the command keeps working as it always did.
    code, out, _ = run(home, "purge", "--json")
    assert json.loads(out)["collections"] == {}


# The README's tour, after the demo -------------------------------------------------------------------------


def _readme_tour() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A short tour") :]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]


def test_the_readme_tour_runs_as_printed_after_the_demo(tmp_path: Path) -> None:
    """``make demo`` (its astronaut variant: no ../shared), then the tour pasted into a shell, with no
    FACESEARCH_* variable; then the Python example in the tour folder the demo left."""
    bare = {k: v for k, v in os.environ.items() if not k.startswith("FACESEARCH_")}
    demo = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), str(tmp_path / ".facesearch-demo")],
        env={**bare, "FACESEARCH_SHARED": str(tmp_path / "no-shared")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    tour = subprocess.run(
        ["bash", "-e", "-c", _readme_tour()],
        cwd=tmp_path,
        env={**bare, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tour.returncode == 0, tour.stdout + tour.stderr
    assert "error" not in tour.stderr.lower(), tour.stderr
    assert "Eileen_Collins" in tour.stdout and "likely the same person" in tour.stdout
    example = subprocess.run(
        [sys.executable, "-"],
        input=_readme_python_example(),
        cwd=tmp_path / ".facesearch-demo" / "tour",
        env={**bare, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert example.returncode == 0, example.stderr
    assert example.stdout.splitlines()[0].split()[2] == "Eileen_Collins"
