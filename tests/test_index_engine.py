"""The engine with a large index: catching up thousands of faces from the catalog through a background rebuild."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import facesearch.index.faiss_index as faiss_index
import facesearch.index.policy as policy
from facesearch.catalog.store import Catalog, FileOutcome, NewFace
from facesearch.config import Settings
from facesearch.engine import FaceSearch


def store_faces(url: str, count: int, dim: int = 32) -> np.ndarray:
    vectors = np.random.default_rng(0).normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = Catalog(url)
    collection = catalog.ensure_collection("big")
    outcomes = [
        FileOutcome(f"/p/{i}.jpg", 1, 1.0, f"{i:064x}", "ok", faces=[NewFace((0, 0, 9, 9), None, 1, 1, [], v)])
        for i, v in enumerate(vectors)
    ]
    catalog.record_files(collection, "synthetic@1", outcomes)
    catalog.close()
    return vectors


def test_catch_up_through_a_background_rebuild_neither_deadlocks_nor_loses_faces(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "FLAT_MAX", 1000)
    monkeypatch.setattr(faiss_index, "FLAT_MAX", 1000)
    monkeypatch.setattr(faiss_index, "FLAT_LIMIT", 1500)
    settings = Settings.load(home)
    vectors = store_faces(settings.catalog_url, 6000)
    repairs: list = []

    def repair() -> None:
        with FaceSearch(settings) as engine:
            # The catch-up adds 6,000 faces, 900 at a time, while holding the index's file lock; past 1,000 a
            # rebuild starts, and past 1,500 additions wait for it: the rebuild must not need that lock.
            repairs.append(engine.indexes.sync("synthetic@1", 32))
            stats = engine.indexes.stats()[0]
            repairs.append(stats)

    worker = threading.Thread(target=repair, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "catch-up deadlocked"
    assert repairs[0].added == 6000
    assert repairs[1]["vectors"] == 6000 and repairs[1]["kind"] == "compressed"
    with FaceSearch(settings) as engine:
        index = engine.indexes.stored("synthetic@1")
        _, found = index.search(vectors[:20], 1)
        np.testing.assert_array_equal(found[:, 0], np.arange(1, 21))
