"""Catalog at scale: insert and look-up speed on SQLite and PostgreSQL, and crossmatch throughput.

    python benchmarks/catalog_scale.py --faces N [--url URL] [--json]
    python benchmarks/catalog_scale.py --faces 1000000 --crossmatch 100000 [--url URL] [--json]

Faces are stored the way an ingest stores them (``Catalog.record_files``: one image, its file location, its
scan record and one face with its 512-byte embedding per photo, in batches of ``--batch`` photos per
transaction); a third of them are enrolled under a subject. Then:

- ``face_details`` of the 10 candidates of a search, in its one round trip (p50 / p99 over 1,000 searches);
- ``collection_face_ids`` of a 1% collection, ``face_ids`` of the whole pack (what an index catch-up reads)
  and reading every embedding back (what a rebuild from the catalog reads), as rows per second;
- with ``--crossmatch P``: P more faces in a second collection, a FAISS index over everything, and
  ``FaceSearch.crossmatch`` of the P faces against the N (audited, metadata included) in faces per second.

``--url`` is an SQLAlchemy URL; for PostgreSQL the benchmark works in a schema of its own, dropped at the end
(default: SQLite in a temporary folder). Vectors are face-like (``benchmarks/scale.py``'s generator) when the
LFW embeddings cache exists, Gaussian otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine


def _dlib_key() -> str:
    """The key of the dlib pack (crossmatch searches through a real pack's service; dlib's is always there)."""
    from facesearch.vision.packs import resolve_pack

    return resolve_pack("dlib", Path(tempfile.gettempdir())).key


PACK_KEY = _dlib_key()
DIM = 128


def vectors(count: int, seed: int) -> Iterator[np.ndarray]:
    """Face-like unit vectors in chunks (generated from LFW when cached), else Gaussian ones."""
    try:
        from scale import CACHE, PACK, fit_face_model, generate, lfw_embeddings

        if (CACHE / f"lfw-dev-{PACK}.npz").exists():
            data = lfw_embeddings()
            model = fit_face_model(data["vectors"], data["subjects"])
            for chunk, _ in generate(model, count, seed=seed, chunk=10_000):
                yield chunk
            return
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    for start in range(0, count, 10_000):
        chunk = rng.normal(size=(min(10_000, count - start), DIM)).astype(np.float32)
        yield chunk / np.linalg.norm(chunk, axis=1, keepdims=True)


def fill(catalog: Any, collection: str, count: int, batch: int, seed: int, first: int) -> tuple[float, np.ndarray]:
    """Store ``count`` one-face photos in ``collection``; returns (seconds, face ids)."""
    from facesearch.catalog.store import FileOutcome, NewFace

    collection_id = catalog.ensure_collection(collection)
    ids: list[int] = []
    pending: list[Any] = []
    number = first
    started = time.perf_counter()

    def flush() -> None:
        for recorded in catalog.record_files(collection_id, PACK_KEY, pending):
            ids.extend(recorded.face_ids)
        pending.clear()

    for chunk in vectors(count, seed):
        for vector in chunk:
            subject = f"person-{number // 3}" if number % 3 == 0 else None
            face = NewFace((10.0, 12.0, 80.0, 96.0), None, 0.98, 0.9, [], vector, subject)
            pending.append(
                FileOutcome(
                    f"/archive/{collection}/{number // 1000:05d}/{number}.jpg",
                    40_000,
                    1.7e9,
                    f"{number:064x}",
                    "ok",
                    250,
                    250,
                    faces=[face],
                    source_url=f"https://example.org/{number}",
                )
            )
            number += 1
            if len(pending) == batch:
                flush()
    if pending:
        flush()
    return time.perf_counter() - started, np.array(ids, dtype=np.int64)


def bulk_fill(catalog: Any, collection: str, count: int, seed: int) -> tuple[float, np.ndarray]:
    """Load ``count`` one-face photos with set-based inserts (the rows ``record_files`` would write).

    This is how a large archive is loaded quickly (and how this benchmark reaches 10M faces in minutes):
    ids are allocated up front, so every table is filled by multi-row INSERTs (COPY on PostgreSQL) without
    a round trip per row. Returns (seconds, face ids).
    """
    from datetime import UTC, datetime

    from sqlalchemy import func, select, text

    from facesearch.catalog.schema import Face, Image, ImageFile, ImageScan, Subject

    collection_id = catalog.ensure_collection(collection)
    now = datetime.now(UTC)
    started = time.perf_counter()
    with catalog.engine.begin() as connection:
        base = {
            table: int(connection.execute(select(func.coalesce(func.max(table.id), 0))).scalar() or 0)
            for table in (Image, ImageFile, ImageScan, Subject, Face)
        }
    postgres = catalog.engine.dialect.name == "postgresql"
    done = 0
    for chunk in vectors(count, seed):
        n = len(chunk)
        image_ids = np.arange(base[Image] + done + 1, base[Image] + done + n + 1)
        numbers = [int(i) for i in image_ids]
        subjects = [i for i in numbers if i % 3 == 0]
        tables: list[tuple[Any, list[dict[str, Any]]]] = [
            (
                Image,
                [
                    {
                        "id": i,
                        "collection_id": collection_id,
                        "sha256": f"{collection_id}-{i:060x}",
                        "path": f"/archive/{collection}/{i // 1000:05d}/{i}.jpg",
                        "source_url": f"https://example.org/{i}",
                        "source_page": None,
                        "captured_at": None,
                        "width": 250,
                        "height": 250,
                        "file_size": 40_000,
                        "status": "ok",
                        "error": None,
                        "error_detail": None,
                        "created_at": now,
                    }
                    for i in numbers
                ],
            ),
            (
                ImageFile,
                [
                    {
                        "id": base[ImageFile] + i - base[Image],
                        "collection_id": collection_id,
                        "image_id": i,
                        "path": f"/archive/{collection}/{i // 1000:05d}/{i}.jpg",
                        "file_size": 40_000,
                        "mtime": 1.7e9,
                    }
                    for i in numbers
                ],
            ),
            (
                ImageScan,
                [
                    {
                        "id": base[ImageScan] + i - base[Image],
                        "image_id": i,
                        "pack": PACK_KEY,
                        "faces": 1,
                        "created_at": now,
                    }
                    for i in numbers
                ],
            ),
            (
                Subject,
                [
                    {"id": base[Subject] + i - base[Image], "label": f"{collection}-person-{i}", "created_at": now}
                    for i in subjects
                ],
            ),
            (
                Face,
                [
                    {
                        "id": base[Face] + i - base[Image],
                        "image_id": i,
                        "pack": PACK_KEY,
                        "x": 10.0,
                        "y": 12.0,
                        "w": 80.0,
                        "h": 96.0,
                        "landmarks": None,
                        "detector_score": 0.98,
                        "quality": 0.9,
                        "quality_reasons": "[]",
                        "subject_id": base[Subject] + i - base[Image] if i % 3 == 0 else None,
                        "embedding": vector.tobytes(),
                        "created_at": now,
                    }
                    for i, vector in zip(numbers, chunk, strict=True)
                ],
            ),
        ]
        with catalog.engine.begin() as connection:
            raw = connection.connection.driver_connection
            cursor = raw.cursor()
            for table, rows in tables:
                if not rows:
                    continue
                columns = list(rows[0])
                values = [tuple(row[c] for c in columns) for row in rows]
                if postgres:
                    with cursor.copy(f"COPY {table.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in values:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" for _ in columns)
                    cursor.executemany(
                        f"INSERT INTO {table.__tablename__} ({', '.join(columns)}) VALUES ({marks})", values
                    )
        done += n
    if postgres:  # explicit ids leave the sequences behind: the next ingest must not collide with them
        with catalog.engine.begin() as connection:
            for table in (Image, ImageFile, ImageScan, Subject, Face):
                name = table.__tablename__
                connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
                )
    seconds = time.perf_counter() - started
    return seconds, np.arange(base[Face] + 1, base[Face] + count + 1, dtype=np.int64)


def lookups(catalog: Any, ids: np.ndarray) -> dict[str, Any]:
    """Timings of the reads searches and index maintenance make."""
    rng = np.random.default_rng(3)
    timings = []
    for _ in range(1000):
        wanted = rng.choice(ids, size=10, replace=False).tolist()
        t0 = time.perf_counter()
        details = catalog.face_details(wanted)
        timings.append((time.perf_counter() - t0) * 1000)
        assert len(details) == 10
    t0 = time.perf_counter()
    all_ids = catalog.face_ids(PACK_KEY)
    face_ids_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    read = sum(len(chunk_ids) for chunk_ids, _ in catalog.iter_embeddings(PACK_KEY))
    embeddings_s = time.perf_counter() - t0
    return {
        "details10_p50_ms": round(float(np.percentile(timings, 50)), 2),
        "details10_p99_ms": round(float(np.percentile(timings, 99)), 2),
        "face_ids_per_s": round(len(all_ids) / face_ids_s),
        "embeddings_read_per_s": round(read / embeddings_s),
    }


def collection_lookup(catalog: Any, name: str) -> float:
    """Seconds to list the face ids of one collection (what a collection-restricted search reads)."""
    collection_id = catalog.collection_id(name)
    t0 = time.perf_counter()
    catalog.collection_face_ids(collection_id, PACK_KEY)
    return time.perf_counter() - t0


def database_bytes(catalog: Any, url: str) -> int | None:
    """Size of the catalog's database (SQLite file with its WAL, or the PostgreSQL schema's relations)."""
    from sqlalchemy import text

    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with catalog.engine.connect() as connection:
        value = connection.execute(
            text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        ).scalar()
    return int(value) if value is not None else None


def crossmatch(home: Path, url: str, probes: int) -> dict[str, Any]:
    """Crossmatch ``missing`` against ``registered`` through the engine (index built from the catalog first)."""
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch

    with FaceSearch(Settings.load(home, pack="dlib", catalog_url=url)) as engine:
        t0 = time.perf_counter()
        engine.indexes.sync(PACK_KEY, DIM)
        index_s = time.perf_counter() - t0
        result = engine.crossmatch.run("missing", "registered", top_k=5, min_similarity=0.5)
        summary = result.summary()
    return {
        "crossmatch_probes": summary["probe_faces"],
        "crossmatch_against": summary["target_faces"],
        "crossmatch_pairs": summary["pairs"],
        "crossmatch_s": summary["elapsed_s"],
        "crossmatch_faces_per_s": summary["probes_per_s"],
        "index_from_catalog_s": round(index_s, 1),
    }


def run(url: str | None, faces: int, batch: int, probes: int, scratch: Path) -> dict[str, Any]:
    """The whole benchmark against one database."""
    from sqlalchemy import create_engine, text

    from facesearch.catalog.store import Catalog

    schema = None
    admin = None
    if url is None:
        url = f"sqlite:///{scratch / 'catalog.sqlite3'}"
    elif not url.startswith("sqlite"):
        schema = f"fs_bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        catalog = Catalog(url)
        bulk_s, ids = bulk_fill(catalog, "registered", faces, seed=1)
        bulk_fill(catalog, "one-percent", max(1, faces // 100), seed=2)
        # The ingest path at this size: what one more collection costs through record_files.
        ingest_count = min(20_000, max(1000, faces // 10))
        insert_s, _ = fill(catalog, "ingested", ingest_count, batch, seed=4, first=faces * 3)
        result: dict[str, Any] = {
            "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
            "faces": faces,
            "bulk_insert_faces_per_s": round(faces / bulk_s),
            "bulk_insert_s": round(bulk_s, 1),
            "ingest_path_faces_per_s": round(ingest_count / insert_s),
            **lookups(catalog, ids),
            "collection_1pct_ids_s": round(collection_lookup(catalog, "one-percent"), 3),
        }
        if probes:
            bulk_fill(catalog, "missing", probes, seed=3)
            catalog.close()
            result.update(crossmatch(scratch / "home", url, probes))
            catalog = Catalog(url)
        result["database_bytes_per_face"] = round((database_bytes(catalog, url) or 0) / max(faces, 1))
        catalog.close()
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    result["machine"] = machine()
    return result


def main() -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--url", help="SQLAlchemy URL of the database (default: SQLite in a temporary folder)")
    parser.add_argument("--batch", type=int, default=1000, help="photos per transaction")
    parser.add_argument("--crossmatch", type=int, default=0, metavar="P", help="also crossmatch P faces")
    parser.add_argument("--scratch", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("FACESEARCH_MODEL_DIRS", "")
    with tempfile.TemporaryDirectory(prefix="facesearch-catalog-scale-", dir=args.scratch) as scratch:
        result = run(args.url, args.faces, args.batch, args.crossmatch, Path(scratch))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
