"""Writing files that come from outside under names that are safe: plain names, no clash, no size beyond a limit.

A refusal is a :class:`facesearch.errors.SourceRefused` with a stable code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from facesearch.errors import SourceRefused

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str | None, fallback: str = "file") -> str:
    """A plain file name from a client-supplied one: no folders, no odd characters, not hidden, not empty."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip(" .")
    if len(base) > 120:  # cut the stem, never the extension (it says what the file is)
        suffix = Path(base).suffix if len(Path(base).suffix) <= 10 else ""
        base = base[: 120 - len(suffix)].rstrip(" .") + suffix
    return base or fallback


def copy_limited(source: BinaryIO, target: Path, limit: int) -> int:
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


def unique_path(path: Path) -> Path:
    """``path``, or the first ``stem-N.ext`` beside it that nothing (file or folder) occupies yet."""
    candidate, number = path, 1
    while candidate.exists() or taken_ignoring_case(candidate):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def taken_ignoring_case(path: Path) -> bool:
    """True when a sibling's name equals this one but for case: kept apart so that the folder can be copied to
    a file system that ignores case (macOS, Windows) without one photo replacing another."""
    try:
        names = {entry.name.casefold() for entry in path.parent.iterdir()} if path.parent.is_dir() else set()
    except OSError:
        return False
    return path.name.casefold() in names


def make_folder(root: Path, parts: list[str]) -> Path:
    """The folder ``root/parts...``, created; a part that a file (or a differently-cased name) already holds
    gets a name of its own (``part-1``...), so that a file and a folder of the same name can both be kept."""
    current = root
    for part in parts:
        candidate, number = current / part, 1
        while not candidate.is_dir() and (candidate.exists() or taken_ignoring_case(candidate)):
            candidate = current / f"{part}-{number}"
            number += 1
        candidate.mkdir(exist_ok=True)
        current = candidate
    return current
