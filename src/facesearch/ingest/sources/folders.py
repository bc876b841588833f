"""Sources of files to ingest: folders (recursive, symbolic links followed) and single files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from facesearch.vision.image import SUPPORTED_EXTENSIONS
from facesearch.vision.video import VIDEO_EXTENSIONS

INGESTED_EXTENSIONS = SUPPORTED_EXTENSIONS | VIDEO_EXTENSIONS


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest and, with ``--subject-from-folder``, the name of the folder it sits in; from a
    manifest, what its source said (address, page, date, legal basis)."""

    path: str
    folder_name: str
    source_url: str | None = None
    source_page: str | None = None
    source_date: datetime | None = None
    legal_basis: str | None = None


def iter_source_files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[SourceFile]:
    """Every candidate image under ``paths``, in a stable order.

    Folders are walked recursively following symbolic links (a link that leads back into a folder already
    being walked is not followed twice); inside folders only files with an image suffix are taken. A file
    named directly is always taken, whatever its suffix, so that a bad one is recorded with its reason.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path)
        elif path.exists():
            absolute = os.path.abspath(path)
            yield SourceFile(absolute, Path(absolute).parent.name)


def _walk(root: Path) -> Iterator[SourceFile]:
    for folder, path in walk_pictures(root):
        yield SourceFile(os.path.abspath(path), Path(folder).name)


def walk_pictures(root: Path, keep_folder: Callable[[str], bool] | None = None) -> Iterator[tuple[str, str]]:
    """``(folder, file)`` for every file with a picture's or a video's suffix under ``root``, in a stable order.

    Symbolic links are followed, but each real folder is walked once (a link back into a folder already being
    walked would loop); ``keep_folder(real path)`` may refuse a folder, and nothing under it is walked.
    """
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        if keep_folder is not None and not keep_folder(os.path.realpath(folder)):
            dirs[:] = []
            continue
        try:
            info = os.stat(folder)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in INGESTED_EXTENSIONS:
                yield folder, os.path.join(folder, name)
