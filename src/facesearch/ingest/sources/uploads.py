"""Uploads (pictures and zip archives), decided by their bytes, stored in a batch folder of their own.

Nothing a client sends is trusted: the kind of a file is decided from its bytes (never its name or declared
content type), names are reduced to safe file names and archives are unpacked with limits
(:mod:`facesearch.ingest.sources.archives`). A refusal is a :class:`facesearch.errors.SourceRefused` with a
stable code (the API answers it with the matching status).
"""

from __future__ import annotations

import errno
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from facesearch.errors import SourceRefused
from facesearch.ingest.sources.archives import extract_zip
from facesearch.ingest.sources.files import copy_limited, safe_name, unique_path
from facesearch.vision.image import sniff_format

DECODABLE = frozenset({"jpeg", "png", "webp", "bmp", "tiff", "gif", "heif"})
"""Kinds :func:`facesearch.vision.image.load_image` decodes (from :func:`sniff_format`)."""

_EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "gif": ".gif"}

__all__ = ["DECODABLE", "check_image_bytes", "new_upload_folder", "remove_folder", "safe_name", "store_upload"]


def check_image_bytes(data: bytes, what: str = "image") -> None:
    """Refuse (415) content that is not a picture facesearch decodes, whatever it claims to be."""
    if not data:
        raise SourceRefused("empty_file", f"the {what} is empty")
    kind = sniff_format(data)
    if kind not in DECODABLE:
        found = kind or "unknown content"
        raise SourceRefused("unsupported_media_type", f"the {what} is not a supported picture (it looks like {found})")


def new_upload_folder(uploads_dir: Path, collection: str) -> Path:
    """A fresh folder for one upload batch: ``<uploads>/<collection>/<random>``."""
    folder = uploads_dir / safe_name(collection, "collection") / secrets.token_hex(8)
    folder.mkdir(parents=True, exist_ok=False)
    return folder


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
    target = unique_path(folder / (stem + _EXTENSIONS.get(kind or "", ".heic")))
    copy_limited(source, target, limit)
    return [target]


def remove_folder(folder: Path) -> None:
    """Remove an upload folder that was not used (e.g. nothing in it was a picture)."""
    shutil.rmtree(folder, ignore_errors=True)
