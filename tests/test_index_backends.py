"""One test suite for every VectorIndex backend: exact FAISS, compressed FAISS, and Milvus (Milvus Lite, and a real
Milvus standalone server)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.index.base import VectorIndex
from facesearch.index.faiss_index import FaissIndex
from tests.milvus_server import MilvusServer

DIM = 16


def unit_vectors(count: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


Opener = Callable[[], VectorIndex]


def _faiss(path: Path, factory: str) -> Opener:
    return lambda: FaissIndex(path / "p.faiss", DIM, factory=factory)


def _milvus(path: Path) -> Opener:
    pytest.importorskip("pymilvus", reason="pymilvus (the 'cluster' extra) is not installed")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    from facesearch.index.milvus_index import MilvusIndex

    return lambda: MilvusIndex(str(path / "vectors.db"), "p@1", DIM)


@pytest.fixture()
def milvus_address(milvus: MilvusServer) -> str:
    """The module's Milvus server's address."""
    return milvus.address


def _milvus_server(address: str, name: str) -> Opener:
    from facesearch.index.milvus_index import MilvusIndex

    # Each test has a pack (a collection) of its own on the shared server.
    return lambda: MilvusIndex(address, f"{name}@1", DIM)


@pytest.fixture(params=["faiss-exact", "faiss-compressed", "faiss-hnsw", "milvus-lite", "milvus-server"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (and reopens) the same index of one backend; compressed kinds train once they hold 1,000 faces."""
    if request.param == "milvus-server":
        address = request.getfixturevalue("milvus_address")
        yield _milvus_server(address, re.sub(r"\W", "_", request.node.name))
        return
    yield {
        "faiss-exact": lambda: _faiss(tmp_path, "Flat"),
        "faiss-compressed": lambda: _faiss(tmp_path, "IVF16,PQ8x4fs"),
        "faiss-hnsw": lambda: _faiss(tmp_path, "HNSW16"),
        "milvus-lite": lambda: _milvus(tmp_path),
    }[request.param]()


def filled(opener: Opener, count: int = 2000, first_id: int = 100) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    index = opener()
    vectors = unit_vectors(count)
    ids = np.arange(first_id, first_id + count, dtype=np.int64)
    index.add(ids, vectors)
    index.wait_for_rebuild()  # a compressed kind trains in the background once it has enough faces
    if isinstance(index, FaissIndex) and count >= 1000:
        assert index.factory == index.stats()["requested"]  # really the kind under test, not the exact stand-in
    return index, ids, vectors


def test_search_finds_each_vector_first_with_its_exact_score(opener: Opener) -> None:
    index, ids, vectors = filled(opener)
    try:
        assert len(index) == 2000
        scores, found = index.search(vectors[:50], 5)
        assert found.shape == scores.shape == (50, 5)
        np.testing.assert_array_equal(found[:, 0], ids[:50])
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
        # Every returned score is the true inner product, best first.
        truth = np.einsum("qd,qkd->qk", vectors[:50], vectors[found - 100])
        np.testing.assert_allclose(scores, truth, atol=1e-4)
        assert (np.diff(scores, axis=1) <= 1e-6).all()
        assert index.stats()["vectors"] == 2000 and index.stats()["dim"] == DIM
    finally:
        index.close()


def test_empty_index_and_short_results_are_padded(opener: Opener) -> None:
    index = opener()
    try:
        scores, found = index.search(unit_vectors(2, seed=1), 3)
        assert (found == -1).all() and np.isneginf(scores).all()
        index.add(np.array([7, 8]), unit_vectors(2, seed=2))
        scores, found = index.search(unit_vectors(1, seed=2), 4)
        assert set(found[0, :2]) == {7, 8} and (found[0, 2:] == -1).all() and np.isneginf(scores[0, 2:]).all()
    finally:
        index.close()


def test_removed_vectors_are_never_returned(opener: Opener) -> None:
    index, ids, vectors = filled(opener)
    try:
        gone = ids[:300]
        assert index.remove(np.concatenate([gone, [999_999]])) == 300  # an absent id is not counted
        assert index.remove(gone) == 0
        assert len(index) == 1700
        assert set(index.ids().tolist()) == set(ids[300:].tolist())
        _, found = index.search(vectors[:300], 10)
        assert not set(found.ravel().tolist()) & set(gone.tolist())
        _, found = index.search(vectors[300:350], 1)
        np.testing.assert_array_equal(found[:, 0], ids[300:350])
    finally:
        index.close()


def test_allowed_ids_restrict_the_search_exactly(opener: Opener) -> None:
    index, ids, vectors = filled(opener)
    try:
        allowed = ids[1000:1040]
        _, found = index.search(vectors[:20], 5, allowed_ids=allowed)
        assert set(found.ravel().tolist()) <= set(allowed.tolist())
        # The best allowed candidate is the exact best among the allowed vectors.
        best = np.argmax(vectors[:20] @ vectors[1000:1040].T, axis=1)
        np.testing.assert_array_equal(found[:, 0], allowed[best])
        _, none = index.search(vectors[:2], 3, allowed_ids=np.array([5_000_000]))
        assert (none == -1).all()
        # Most of the index allowed (a crossmatch against most of the gallery): filtered, still exact at the top.
        most = ids[200:]
        _, found = index.search(vectors[:50], 3, allowed_ids=most)
        assert set(found.ravel().tolist()) <= set(most.tolist()) and (found >= 0).all()
        np.testing.assert_array_equal(found[:, 0], most[np.argmax(vectors[:50] @ vectors[200:].T, axis=1)])
    finally:
        index.close()


def test_saved_index_reopens_with_the_same_contents(opener: Opener) -> None:
    index, ids, vectors = filled(opener)
    index.remove(ids[:10])
    index.save()
    index.close()
    reopened = opener()
    try:
        assert len(reopened) == 1990
        _, found = reopened.search(vectors[10:40], 1)
        np.testing.assert_array_equal(found[:, 0], ids[10:40])
    finally:
        reopened.close()


def test_rebuild_keeps_every_vector(opener: Opener) -> None:
    index, ids, vectors = filled(opener)
    try:
        index.rebuild()
        assert len(index) == 2000
        _, found = index.search(vectors[:100], 1)
        np.testing.assert_array_equal(found[:, 0], ids[:100])
    finally:
        index.close()


def test_another_dimension_is_refused(opener: Opener, tmp_path: Path) -> None:
    index, _, _ = filled(opener, count=20)
    index.close()
    if isinstance(index, FaissIndex):
        with pytest.raises(ValueError, match="16-d"):
            FaissIndex(index.path, 32)
    else:
        from facesearch.index.milvus_index import MilvusIndex

        assert isinstance(index, MilvusIndex)
        with pytest.raises(ValueError, match="16-d"):
            MilvusIndex(index.uri, index.pack_key, 32)


def test_erasure_on_a_milvus_server_is_compacted_away(milvus_address: str) -> None:
    """After deletions, saving asks the server to compact the collection; the job completes and the erased
    vectors are gone from every search."""
    import time

    from facesearch.index.milvus_index import MilvusIndex

    index = MilvusIndex(milvus_address, "compaction@1", DIM)
    try:
        vectors = unit_vectors(2000, seed=5)
        ids = np.arange(1, 2001, dtype=np.int64)
        index.add(ids, vectors)
        index.save()  # sealed segments on the server's storage
        assert index.last_compaction is None  # nothing deleted yet, nothing to compact
        assert index.remove(ids[:100]) == 100
        index.save()
        assert index.last_compaction is not None
        deadline = time.monotonic() + 120
        while (state := index._client.get_compaction_state(index.last_compaction)) != "Completed":
            assert time.monotonic() < deadline, f"the compaction did not complete: {state}"
            time.sleep(1)
        assert len(index) == 1900
        _, found = index.search(vectors[:100], 3)
        assert not np.isin(found, ids[:100]).any()
    finally:
        index.close()


def test_a_restarted_milvus_server_is_found_again(milvus: MilvusServer) -> None:
    """A server that stops answering: calls wait up to ``reconnect_seconds`` and then say the index is
    unavailable (never a wrong answer), and so does opening it; once the server is back on its data, the same
    open index carries on, with every vector and deletion it had."""
    from facesearch.errors import IndexUnavailable
    from facesearch.index.milvus_index import MilvusIndex

    vectors = unit_vectors(500, seed=9)
    ids = np.arange(1, 501, dtype=np.int64)
    index = MilvusIndex(milvus.address, "restart@1", DIM, reconnect_seconds=2)
    index.add(ids, vectors)
    assert index.remove(ids[:10]) == 10
    index.save()
    address = milvus.address
    milvus.stop()
    try:
        with pytest.raises(IndexUnavailable, match="did not answer"):
            index.search(vectors[:1], 1)
        with pytest.raises(IndexUnavailable, match="does not answer"):
            MilvusIndex(address, "restart@1", DIM)
    finally:
        assert milvus.start() == address
    index.reconnect_seconds = 180
    _, found = index.search(vectors[:20], 1)
    assert not np.isin(found[:10], ids[:10]).any() and found[10:, 0].tolist() == ids[10:20].tolist()
    assert len(index) == 490
    index.add(ids[:10], vectors[:10])
    assert len(index) == 500
    index.close()


def clustered_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors in tight groups, as faces of the same people are (random vectors have no neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count // 20, dim))
    vectors = (centres[:, None, :] + 0.6 * rng.normal(size=(len(centres), 20, dim))).reshape(-1, dim)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    ("spec", "least"),
    # IVF_SQ8 takes IVF_PQ's path (compressed codes, re-ranked): measured once (>= 0.97), not in every run.
    [("IVF_PQ,nlist=64,m=8,nbits=8", 0.97), ("HNSW,M=16,efConstruction=100", 0.99)],
)
def test_milvus_server_index_kinds_find_what_exact_search_finds(milvus_address: str, spec: str, least: float) -> None:
    """The index kinds that matter at scale, built by the server on sealed segments: the top 10 they return
    are those of exact search (recall@10 at least ``least``); compressed kinds are re-ranked by the stored
    vectors, so their scores are the exact ones; reopened, the index is searched with its own kind's
    parameters."""
    from facesearch.index.milvus_index import MilvusIndex

    dim = 32
    vectors = clustered_vectors(6000, dim, seed=3)
    probes = vectors[::60] + 0.05 * np.random.default_rng(4).normal(size=(100, dim)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact_scores = probes @ vectors.T
    exact = np.argsort(-exact_scores, axis=1)[:, :10] + 1
    pack = f"kinds_{spec.split(',')[0]}@1"
    index = MilvusIndex(milvus_address, pack, dim, index_spec=spec)
    try:
        index.add(np.arange(1, 6001, dtype=np.int64), vectors)
        index.save()  # sealed segments, which the server indexes
        index.rebuild()
        assert index.stats()["factory"] == spec.split(",")[0]
        scores, found = index.search(probes, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        assert recall >= least, recall
        np.testing.assert_allclose(scores, np.take_along_axis(exact_scores, found - 1, axis=1), atol=1e-5)
    finally:
        index.close()
    reopened = MilvusIndex(milvus_address, pack, dim)
    try:
        assert reopened.stats()["requested"].split(",")[0] == spec.split(",")[0]
        assert set(reopened.stats()["requested"].split(",")) == set(spec.split(","))
    finally:
        reopened.close()


def test_a_large_batch_of_queries_on_a_re_ranked_milvus_kind_is_answered_whole(milvus_address: str) -> None:
    """A compressed kind's search brings back each candidate's vector for re-ranking: 1,000 queries of 512-d
    at once would be an 80 MB answer, over gRPC's 64 MiB. The index asks in batches, and a batch search
    answers what one-at-a-time searches answer."""
    from facesearch.index.milvus_index import MilvusIndex

    dim = 512
    vectors = clustered_vectors(2000, dim, seed=11)
    index = MilvusIndex(milvus_address, "large_batch@1", dim, index_spec="IVF_SQ8,nlist=16,nprobe=16")
    try:
        index.add(np.arange(1, 2001, dtype=np.int64), vectors)
        index.save()
        index.rebuild()
        queries = vectors[:1000]
        scores, found = index.search(queries, 10)
        assert found[:, 0].tolist() == list(range(1, 1001))  # each query is a stored vector: itself first
        for row in (0, 499, 999):
            one_scores, one_found = index.search(queries[row], 10)
            assert one_found[0].tolist() == found[row].tolist()
            np.testing.assert_allclose(one_scores[0], scores[row], atol=1e-5)
    finally:
        index.close()
