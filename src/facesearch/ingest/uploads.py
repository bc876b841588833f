"""Sources of files that come from outside: uploads (pictures and zip archives) and server-side folders.

Hostile-input handling: content sniffing, safe upload storage, zip extraction, confined paths. A refusal is
a :class:`facesearch.errors.SourceRefused` with a stable code (the API answers it with the matching status).

Nothing a client sends is trusted: the kind of a file is decided from its bytes (never its name or declared
content type), names are reduced to safe file names, archives are unpacked with limits on members and sizes
and without following their paths anywhere, and server-side paths must resolve (symbolic links included)
inside one of the configured ingest roots.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from facesearch.errors import SourceRefused
from facesearch.vision.image import SUPPORTED_EXTENSIONS, sniff_format

DECODABLE = frozenset({"jpeg", "png", "webp", "bmp", "tiff", "gif", "heif"})
"""Kinds :func:`facesearch.vision.image.load_image` decodes (from :func:`sniff_format`)."""

MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_RATIO = 200  # uncompressed / compressed, per member: beyond this it is a zip bomb
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "gif": ".gif"}


def check_image_bytes(data: bytes, what: str = "image") -> None:
    """Refuse (415) content that is not a picture facesearch decodes, whatever it claims to be."""
    if not data:
        raise SourceRefused("empty_file", f"the {what} is empty")
    kind = sniff_format(data)
    if kind not in DECODABLE:
        found = kind or "unknown content"
        raise SourceRefused("unsupported_media_type", f"the {what} is not a supported picture (it looks like {found})")


def safe_name(name: str | None, fallback: str = "file") -> str:
    """A plain file name from a client-supplied one: no folders, no odd characters, not hidden, not empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if len(base) > 120:  # cut the stem, never the extension (it says what the file is)
        suffix = Path(base).suffix if len(Path(base).suffix) <= 10 else ""
        base = base[: 120 - len(suffix)].rstrip(" .") + suffix
    return base or fallback


def new_upload_folder(uploads_dir: Path, collection: str) -> Path:
    """A fresh folder for one upload batch: ``<uploads>/<collection>/<random>``."""
    folder = uploads_dir / safe_name(collection, "collection") / secrets.token_hex(8)
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def _copy_limited(source: BinaryIO, target: Path, limit: int) -> int:
    """Copy at most ``limit`` bytes; refuses (413) and removes the file if there are more."""
    written = 0
    with target.open("xb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limit:
                out.close()
                target.unlink(missing_ok=True)
                raise SourceRefused("payload_too_large", f"an uploaded file is over {limit} bytes")
            out.write(chunk)
    return written


def store_upload(source: BinaryIO, name: str | None, folder: Path, *, limit: int) -> list[Path]:
    """Store one uploaded file in ``folder``: a picture as itself, a zip archive unpacked (pictures only).

    Returns the pictures stored. Anything else is refused with 415; a full disk with 507 and an archive whose
    members cannot be written with 422 (the caller removes the folder: nothing half-stored stays).
    """
    try:
        return _store(source, name, folder, limit=limit)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise SourceRefused("storage_full", "the server's disk is full; nothing was stored") from error
        raise SourceRefused("bad_archive", f"the upload could not be stored: {error.strerror}") from error


def _store(source: BinaryIO, name: str | None, folder: Path, *, limit: int) -> list[Path]:
    head = source.read(4096)
    source.seek(0)
    kind = sniff_format(head)
    if kind == "zip":
        return extract_zip(source, folder, limit=limit)
    if kind not in DECODABLE:
        raise SourceRefused("unsupported_media_type", f"{safe_name(name)!r} is neither a picture nor a zip archive")
    stem = Path(safe_name(name, "image")).stem or "image"
    target = _unique(folder / (stem + _EXTENSIONS.get(kind or "", ".heic")))
    _copy_limited(source, target, limit)
    return [target]


def _unique(path: Path) -> Path:
    """``path``, or the first ``stem-N.ext`` beside it that nothing (file or folder) occupies yet."""
    candidate, number = path, 1
    while candidate.exists() or _taken_ignoring_case(candidate):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def _taken_ignoring_case(path: Path) -> bool:
    """True when a sibling's name equals this one but for case: kept apart so that the folder can be copied to
    a file system that ignores case (macOS, Windows) without one photo replacing another."""
    try:
        names = {entry.name.casefold() for entry in path.parent.iterdir()} if path.parent.is_dir() else set()
    except OSError:
        return False
    return path.name.casefold() in names


def _folder(root: Path, parts: list[str]) -> Path:
    """The folder ``root/parts...``, created; a part that a file (or a differently-cased name) already holds
    gets a name of its own (``part-1``...), so that a file and a folder of the same name can both be kept."""
    current = root
    for part in parts:
        candidate, number = current / part, 1
        while not candidate.is_dir() and (candidate.exists() or _taken_ignoring_case(candidate)):
            candidate = current / f"{part}-{number}"
            number += 1
        candidate.mkdir(exist_ok=True)
        current = candidate
    return current


def extract_zip(source: BinaryIO, folder: Path, *, limit: int) -> list[Path]:
    """Unpack the pictures of a zip archive into ``folder``, keeping its folder names (for subjects).

    Every member path is rebuilt from safe name parts (no absolute paths, no ``..``), links and folders are
    skipped, at most :data:`MAX_ZIP_MEMBERS` members are read, each member's real size is counted while
    copying (not taken from its header), and the total is capped by ``limit``; a member that expands more
    than :data:`MAX_ZIP_RATIO` times is refused as a zip bomb.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise SourceRefused("bad_archive", f"the zip archive cannot be read: {error}") from error
    stored: list[Path] = []
    total = 0
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise SourceRefused("payload_too_large", f"the archive has more than {MAX_ZIP_MEMBERS} members")
        for member in members:
            if member.is_dir() or _is_link(member):
                continue
            parts = [safe_name(p, "") for p in member.filename.replace("\\", "/").split("/")]
            parts = [p for p in parts if p and p not in (".", "..")]
            if not parts or Path(parts[-1]).suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            if member.compress_size and member.file_size / max(1, member.compress_size) > MAX_ZIP_RATIO:
                raise SourceRefused("payload_too_large", f"{'/'.join(parts)} expands too much (a zip bomb?)")
            kept = parts[-3:]  # keep at most two folder levels
            target = _unique(_folder(folder, kept[:-1]) / kept[-1])
            try:
                with archive.open(member) as data:
                    total += _copy_limited(data, target, max(0, limit - total))  # type: ignore[arg-type]
            except SourceRefused:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as error:
                target.unlink(missing_ok=True)
                raise SourceRefused("bad_archive", f"{'/'.join(parts)} cannot be unpacked: {error}") from error
            stored.append(target)
    return stored


def _is_link(member: zipfile.ZipInfo) -> bool:
    return (member.external_attr >> 16) & 0o170000 == 0o120000


def remove_folder(folder: Path) -> None:
    """Remove an upload folder that was not used (e.g. nothing in it was a picture)."""
    shutil.rmtree(folder, ignore_errors=True)


# Server-side paths ----------------------------------------------------------------------------------------------


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def confine(path: str, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symbolic links followed), if it lies inside one of ``roots``; else 403."""
    if not roots:
        raise SourceRefused("path_not_allowed", "this server has no ingest roots configured (serve --ingest-root)")
    if "\x00" in path or not path.strip():
        raise SourceRefused("validation_error", "the path is not valid")
    real_roots = [os.path.realpath(root) for root in roots]
    resolved = os.path.realpath(os.path.expanduser(path))
    if not _inside(resolved, real_roots):
        raise SourceRefused("path_not_allowed", "the path is outside the configured ingest roots")
    if not os.path.exists(resolved):
        raise SourceRefused("not_found", "the path does not exist")
    return Path(resolved)


def confined_files(path: Path, roots: Sequence[Path]) -> Iterator[str]:
    """Picture files under ``path`` (a file or a folder) whose real location lies inside ``roots``.

    Folders are walked following symbolic links, but a link that leads outside the roots is not followed
    and a file that resolves outside them is not taken, so no link can smuggle a file in.
    """
    real_roots = [os.path.realpath(root) for root in roots]
    if path.is_file():
        yield str(path)
        return
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        real_folder = os.path.realpath(folder)
        if not _inside(real_folder, real_roots):
            dirs[:] = []
            continue
        info = os.stat(real_folder)
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            candidate = os.path.join(folder, name)
            if _inside(os.path.realpath(candidate), real_roots):
                yield os.path.abspath(candidate)
