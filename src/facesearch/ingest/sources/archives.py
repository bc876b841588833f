"""Zip archives, unpacked with limits: pictures only, safe paths, no links, no zip bombs."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

from facesearch.errors import SourceRefused
from facesearch.ingest.sources.files import copy_limited, make_folder, safe_name, unique_path
from facesearch.vision.image import SUPPORTED_EXTENSIONS

MAX_ZIP_MEMBERS = 100_000
MAX_ZIP_RATIO = 200  # uncompressed / compressed, per member: beyond this it is a zip bomb


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
            target = unique_path(make_folder(folder, kept[:-1]) / kept[-1])
            try:
                with archive.open(member) as data:
                    total += copy_limited(data, target, max(0, limit - total))  # type: ignore[arg-type]
            except SourceRefused:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as error:
                target.unlink(missing_ok=True)
                raise SourceRefused("bad_archive", f"{'/'.join(parts)} cannot be unpacked: {error}") from error
            stored.append(target)
    return stored


def _is_link(member: zipfile.ZipInfo) -> bool:
    return (member.external_attr >> 16) & 0o170000 == 0o120000
