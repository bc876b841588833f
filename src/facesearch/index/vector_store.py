"""Full-precision vectors on disk, one row per face, for exact re-ranking and for rebuilding compressed indexes.

A compressed index keeps only a few dozen bytes per face in memory; the full vectors stay in a file that is
memory-mapped, so that re-ranking a few hundred candidates reads a few hundred rows and the operating system
caches what is hot. Row ``r`` of ``<prefix>.g<N>.vectors`` holds the vector of the face whose id is row ``r`` of
``<prefix>.g<N>.ids`` (int64; -1 marks a removed row, a tombstone). Both files only grow: a new row is appended,
a removed one is zeroed in place (the vector is really gone from the disk) and its id set to -1. Compaction
writes a new generation ``N + 1`` without the tombstones; the owner (:class:`facesearch.index.faiss_index.
FaissIndex`) records which generation and how many rows are committed, so rows written after its last commit
are ignored (and overwritten) when the files are opened again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ID_BYTES = 8
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}


def generation_files(prefix: Path, generation: int) -> tuple[Path, Path]:
    """The vectors and ids files of one generation of a store."""
    return (
        prefix.with_name(f"{prefix.name}.g{generation}.vectors"),
        prefix.with_name(f"{prefix.name}.g{generation}.ids"),
    )


def stray_generations(prefix: Path, keep: int | None) -> list[Path]:
    """Files of generations other than ``keep`` (left by an interrupted rebuild or an old compaction)."""
    pattern = re.compile(re.escape(prefix.name) + r"\.g(\d+)\.(vectors|ids)$")
    found = []
    for path in prefix.parent.glob(f"{prefix.name}.g*"):
        match = pattern.match(path.name)
        if match and int(match.group(1)) != keep:
            found.append(path)
    return found


class VectorStore:
    """Append-only rows of (face id, vector) in two files; removal leaves a zeroed tombstone until compaction.

    Not thread-safe on its own: the owning index serialises changes. Reads of committed rows may run while
    rows are appended, since appending never moves existing rows.
    """

    def __init__(
        self, prefix: Path, generation: int, dim: int, dtype: str = "float32", rows: int = 0, *, fresh: bool = False
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"unsupported vector dtype {dtype!r} (use one of {', '.join(DTYPES)})")
        self.prefix = Path(prefix)
        self.generation = generation
        self.dim = dim
        self.dtype = dtype
        self._np_dtype = DTYPES[dtype]
        self.row_bytes = dim * self._np_dtype.itemsize
        self.vectors_path, self.ids_path = generation_files(self.prefix, generation)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._vectors_fd = os.open(self.vectors_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._ids_fd = os.open(self.ids_path, os.O_RDWR | os.O_CREAT, 0o644)
        if fresh:  # a new generation: whatever an interrupted rebuild left under this name is garbage
            os.ftruncate(self._vectors_fd, 0)
            os.ftruncate(self._ids_fd, 0)
        available = min(os.fstat(self._vectors_fd).st_size // self.row_bytes, os.fstat(self._ids_fd).st_size // 8)
        if rows > available:
            self.close()
            raise ValueError(f"{self.vectors_path} holds {available} rows, fewer than the {rows} committed")
        self.rows = rows
        # Row -> face id lives in memory (8 bytes per face) because every search maps its candidates through it;
        # the buffer grows geometrically so that appending stays amortised O(1).
        self._ids = np.empty(max(1024, rows), dtype=np.int64)
        if rows:
            self._ids[:rows] = np.fromfile(self.ids_path, dtype=np.int64, count=rows)
        self.live = int(np.count_nonzero(self._ids[:rows] >= 0))
        self._map: np.ndarray | None = None
        self._mapped_rows = 0

    # Reading -----------------------------------------------------------------------------------------------

    @property
    def ids(self) -> np.ndarray:
        """Face id of each committed row (-1 for a removed row); a view, valid until the next append."""
        return self._ids[: self.rows]

    def _mapping(self, rows_needed: int) -> np.ndarray:
        if self._map is None or self._mapped_rows < rows_needed:
            # Appending writes through the file descriptor; a fresh map covers the file as it is now. An old map
            # stays valid for a reader that still holds it, since rows never move.
            rows = os.fstat(self._vectors_fd).st_size // self.row_bytes
            self._map = np.memmap(self.vectors_path, dtype=self._np_dtype, mode="r", shape=(rows, self.dim))
            self._mapped_rows = rows
        return self._map

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of the given rows (any shape of row numbers; all must be valid rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.empty((*rows.shape, self.dim), dtype=np.float32)
        mapping = self._mapping(int(rows.max()) + 1)
        return np.asarray(mapping[rows], dtype=np.float32)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Vectors of rows ``start`` to ``stop`` (exclusive), as float32."""
        if stop <= start:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.asarray(self._mapping(stop)[start:stop], dtype=np.float32)

    def iter_live(self, chunk: int = 65_536, stop: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(rows, vectors)`` of the live rows below ``stop`` (default: all), in order, ``chunk`` rows at a time."""
        end = self.rows if stop is None else stop
        for start in range(0, end, chunk):
            upper = min(start + chunk, end)
            alive = np.flatnonzero(self._ids[start:upper] >= 0)
            if alive.size:
                yield alive + start, self.read_range(start, upper)[alive]

    def sample_live(self, count: int, seed: int = 0) -> np.ndarray:
        """Up to ``count`` live vectors drawn at random (the training set of a compressed index)."""
        alive = np.flatnonzero(self.ids >= 0)
        if alive.size > count:
            alive = np.sort(np.random.default_rng(seed).choice(alive, size=count, replace=False))
        return self.vectors(alive)

    # Writing -----------------------------------------------------------------------------------------------

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Append rows; returns their row numbers."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        count = len(ids)
        data = np.ascontiguousarray(vectors, dtype=self._np_dtype).reshape(count, self.dim)
        start = self.rows
        os.pwrite(self._vectors_fd, data.tobytes(), start * self.row_bytes)
        os.pwrite(self._ids_fd, ids.tobytes(), start * ID_BYTES)
        if start + count > len(self._ids):
            grown = np.empty(max(start + count, 2 * len(self._ids)), dtype=np.int64)
            grown[:start] = self._ids[:start]
            self._ids = grown
        self._ids[start : start + count] = ids
        self.rows = start + count
        self.live += int(np.count_nonzero(ids >= 0))
        return np.arange(start, start + count, dtype=np.int64)

    def tombstone(self, rows: np.ndarray) -> int:
        """Remove rows: zero their vectors on disk and mark their ids -1; returns how many were live."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = rows[self._ids[rows] >= 0]
        zeros = bytes(self.row_bytes)
        minus_one = np.int64(-1).tobytes()
        for row in rows.tolist():
            os.pwrite(self._vectors_fd, zeros, row * self.row_bytes)
            os.pwrite(self._ids_fd, minus_one, row * ID_BYTES)
        self._ids[rows] = -1
        self.live -= len(rows)
        return len(rows)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows holding any of these face ids (a scan of the row -> id column: O(rows))."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0 or self.rows == 0:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(np.isin(self.ids, ids[ids >= 0]))

    def flush(self) -> None:
        """Make every row written so far durable (fsync both files)."""
        os.fsync(self._vectors_fd)
        os.fsync(self._ids_fd)

    def disk_bytes(self) -> int:
        """Bytes the two files occupy on disk."""
        return sum(os.fstat(fd).st_blocks * 512 for fd in (self._vectors_fd, self._ids_fd))

    def close(self) -> None:
        """Close the files (the store cannot be used afterwards)."""
        self._map = None
        # Closing twice would close whatever file reused the descriptor numbers since: forget them once closed.
        for fd in (self._vectors_fd, self._ids_fd):
            if fd >= 0:
                os.close(fd)
        self._vectors_fd = self._ids_fd = -1

    def delete_files(self) -> None:
        """Close and delete this generation's files."""
        self.close()
        for path in (self.vectors_path, self.ids_path):
            path.unlink(missing_ok=True)
