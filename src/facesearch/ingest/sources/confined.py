"""Server-side folders: a path a client names is taken only if it resolves inside a configured ingest root.

A refusal is a :class:`facesearch.errors.SourceRefused` with a stable code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from facesearch.errors import SourceRefused
from facesearch.ingest.sources.folders import walk_pictures


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
    for _folder, candidate in walk_pictures(path, keep_folder=lambda real: _inside(real, real_roots)):
        if _inside(os.path.realpath(candidate), real_roots):
            yield os.path.abspath(candidate)
