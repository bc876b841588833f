"""Catalog (SQLite file and PostgreSQL, Alembic migrations) and FAISS index behaviour."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from facesearch.catalog.schema import Base
from facesearch.catalog.store import Catalog, FileOutcome, NewFace
from facesearch.index.faiss_index import FaissIndex


def unit_vectors(count: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_migrations_match_the_schema(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    with catalog.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def face(vector: np.ndarray, subject: str | None = None) -> NewFace:
    return NewFace((1, 2, 30, 40), [[0.0, 0.0]] * 5, 0.9, 0.8, ["blurred"], vector, subject)


def test_record_files_dedupes_and_tracks_scans(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    collection = catalog.ensure_collection("c", legal_basis="consent")
    vectors = unit_vectors(3)
    outcomes = [
        FileOutcome("/a.jpg", 10, 1.0, "aa", "ok", 100, 100, faces=[face(vectors[0], "Ann"), face(vectors[1])]),
        FileOutcome("/b.jpg", 0, 1.0, "e3b0", "skipped", error="empty_file", error_detail="0 bytes"),
        FileOutcome("/copy-of-a.jpg", 10, 2.0, "aa", "ok", 100, 100, faces=[face(vectors[2])]),
    ]
    recorded = catalog.record_files(collection, "p@1", outcomes)
    assert [r.disposition for r in recorded] == ["indexed", "skipped", "duplicate"]
    assert len(recorded[0].face_ids) == 2 and recorded[2].face_ids == []
    np.testing.assert_array_equal(recorded[0].embeddings[0], vectors[0])
    assert set(catalog.done_paths(collection, "p@1")) == {"/a.jpg", "/b.jpg", "/copy-of-a.jpg"}
    # Another pack has not scanned /a.jpg yet; the skipped file needs no pack.
    assert set(catalog.done_paths(collection, "other@1")) == {"/b.jpg"}
    again = catalog.record_files(collection, "other@1", [outcomes[0]])
    assert again[0].disposition == "indexed" and len(again[0].face_ids) == 2
    stats = catalog.stats()
    assert stats == {
        "images": 1,
        "faces": 4,
        "skipped": 1,
        "skipped_by_reason": {"empty_file": 1},
        "packs": {"p@1": 2, "other@1": 2},
        "subjects": 1,
    }
    details = catalog.face_details(recorded[0].face_ids)
    first = details[recorded[0].face_ids[0]]
    assert (first.subject, first.collection, first.image_path, first.bbox) == (
        "Ann",
        "c",
        "/a.jpg",
        (1, 2, 30, 40),
    )
    _ids, stored = next(catalog.iter_embeddings("p@1"))
    np.testing.assert_array_equal(stored, vectors[:2])


def test_face_ids_are_never_reused(catalog_url: str) -> None:
    from sqlalchemy import delete

    from facesearch.catalog.schema import Face

    catalog = Catalog(catalog_url)
    collection = catalog.ensure_collection("c")
    first = catalog.record_files(
        collection, "p@1", [FileOutcome("/a", 1, 1.0, "a", "ok", faces=[face(unit_vectors(1)[0])])]
    )
    with catalog.session() as session, session.begin():
        session.execute(delete(Face))
    second = catalog.record_files(
        collection, "p@1", [FileOutcome("/b", 1, 1.0, "b", "ok", faces=[face(unit_vectors(1)[0])])]
    )
    assert second[0].face_ids[0] > first[0].face_ids[0]


def test_embeddings_are_read_back_in_id_ranges_across_gaps_and_packs(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    collection = catalog.ensure_collection("c")
    vectors = unit_vectors(9)
    outcomes = [FileOutcome(f"/{i}", 1, 1.0, f"{i:02x}", "ok", faces=[face(vectors[i])]) for i in range(9)]
    mine = [r.face_ids[0] for r in catalog.record_files(collection, "p@1", outcomes[:5])]
    catalog.record_files(collection, "q@1", outcomes[5:7])  # another pack's ids in between
    mine += [r.face_ids[0] for r in catalog.record_files(collection, "p@1", outcomes[7:])]
    chunks = list(catalog.iter_embeddings("p@1", chunk=2))
    ids = np.concatenate([chunk_ids for chunk_ids, _ in chunks])
    assert ids.tolist() == mine and all(len(chunk_ids) <= 2 for chunk_ids, _ in chunks)
    np.testing.assert_array_equal(np.concatenate([v for _, v in chunks]), vectors[[0, 1, 2, 3, 4, 7, 8]])
    assert list(catalog.iter_embeddings("nobody@1")) == []


def test_collection_face_ids_are_kept_until_the_catalog_changes(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    collection = catalog.ensure_collection("c")
    vectors = unit_vectors(2)
    first = catalog.record_files(collection, "p@1", [FileOutcome("/a", 1, 1.0, "a", "ok", faces=[face(vectors[0])])])
    ids = catalog.collection_face_ids(collection, "p@1")
    assert catalog.collection_face_ids(collection, "p@1") is ids and ids.tolist() == first[0].face_ids
    second = catalog.record_files(collection, "p@1", [FileOutcome("/b", 1, 1.0, "b", "ok", faces=[face(vectors[1])])])
    again = catalog.collection_face_ids(collection, "p@1")
    assert again.tolist() == first[0].face_ids + second[0].face_ids


def test_faiss_index_exact_search_remove_and_atomic_save(tmp_path: Path) -> None:
    vectors = unit_vectors(1000, 16)
    ids = np.arange(10, 1010, dtype=np.int64)
    index = FaissIndex(tmp_path / "p.faiss", 16)
    index.add(ids, vectors)
    scores, found = index.search(vectors[:5], 3)
    np.testing.assert_array_equal(found[:, 0], ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    # Exact: the top score equals the brute-force maximum.
    brute = vectors[:5] @ vectors.T
    np.testing.assert_allclose(scores[:, 1], np.sort(brute, axis=1)[:, -2], atol=1e-5)
    assert index.remove(ids[:5]) == 5 and len(index) == 995
    _, found = index.search(vectors[:5], 1)
    assert not set(found.ravel()) & set(ids[:5])
    _, allowed = index.search(vectors[10:11], 5, allowed_ids=ids[500:503])
    assert set(allowed.ravel()) - {-1} == set(ids[500:503])
    index.save()
    reopened = FaissIndex(tmp_path / "p.faiss", 16)
    assert len(reopened) == 995 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="16-d"):
        FaissIndex(tmp_path / "p.faiss", 32)


def test_empty_index_search_returns_no_ids(tmp_path: Path) -> None:
    scores, ids = FaissIndex(tmp_path / "e.faiss", 4).search(unit_vectors(2, 4), 3)
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_concurrent_commits_of_one_index_never_take_each_others_temporary_file(tmp_path: Path) -> None:
    """Two processes (a server and a CLI ingest) commit the same index: each writes its own temporary header and
    a writer opening the index leaves another's commit in progress alone."""
    path = tmp_path / "p.faiss"
    first, second = FaissIndex(path, 16), FaissIndex(path, 16)
    first.add(np.arange(10, dtype=np.int64), unit_vectors(10, 16))
    in_progress = path.with_name(path.name + ".4242-cafe.tmp")
    in_progress.write_bytes(b"half written by another process")
    FaissIndex(path, 16)  # opening removes strays, but not a temporary file written a moment ago
    assert in_progress.exists()
    errors: list[BaseException] = []

    def commit(index: FaissIndex, start: int) -> None:
        try:
            for step in range(30):
                index.add(np.array([1000 * start + step], dtype=np.int64), unit_vectors(1, 16))
                index.save()
        except BaseException as error:  # either writer failing fails the test
            errors.append(error)

    writers = [threading.Thread(target=commit, args=(index, n)) for n, index in enumerate((first, second), 1)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not errors
    assert {p.name for p in tmp_path.glob("*.tmp")} == {in_progress.name}
    old = time.time() - 2 * 3600
    os.utime(in_progress, (old, old))
    FaissIndex(path, 16)
    assert not list(tmp_path.glob("*.tmp"))
