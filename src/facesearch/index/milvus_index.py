"""Milvus vector index through ``pymilvus``: the cluster backend (tested here against Milvus Lite).

Each pack's vectors live in a collection of their own (``facesearch_<pack>``) with two fields, the face id
(primary key) and the vector, searched by inner product. The address is a Milvus Lite file (``vectors.db``: an
embedded Milvus for one process, good for trials and tests) or a Milvus server (``http://host:19530``; a token
for an authenticated cluster comes from ``$FACESEARCH_MILVUS_TOKEN``). Milvus keeps its own durability: saving
is a flush, and a rebuild drops and recreates the collection's vector index server-side.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from typing import Any

import numpy as np

INSERT_BATCH = 5_000
FILTER_IDS_MAX = 100_000  # an allowed-id list longer than this is filtered after the search, not in it
DEFAULT_LITE_INDEX = "FLAT"  # exact; Milvus Lite is for small collections
DEFAULT_SERVER_INDEX = "AUTOINDEX"  # the server picks (HNSW or DiskANN class) for its deployment


def collection_name(pack_key: str) -> str:
    """A valid Milvus collection name for a pack (letters, digits, underscores), unique per pack key."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", pack_key)[:180]
    digest = hashlib.sha1(pack_key.encode()).hexdigest()[:8]
    return f"facesearch_{readable}_{digest}"


def parse_index_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"HNSW,M=16,efConstruction=200"`` -> ("HNSW", {"M": 16, "efConstruction": 200}) for ``reindex``."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty Milvus index spec")
    params: dict[str, Any] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"Milvus index parameter {part!r} is not KEY=VALUE")
        params[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return parts[0].upper(), params


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server."""
    return not re.match(r"^(https?|tcp|grpc)://", uri)


class MilvusIndex:
    """A pack's vectors in a Milvus collection; same contract as :class:`facesearch.index.faiss_index.FaissIndex`."""

    def __init__(self, uri: str, pack_key: str, dim: int, *, index_spec: str | None = None) -> None:
        from pymilvus import MilvusClient

        self.uri = uri
        self.dim = dim
        self.pack_key = pack_key
        self.collection = collection_name(pack_key)
        self._lock = threading.RLock()
        self._compaction_due = False  # deletions since the last save: a server compacts them away on save
        self.last_compaction: int | None = None  # the server's job id of the last compaction asked for
        token = os.environ.get("FACESEARCH_MILVUS_TOKEN", "")
        self._client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        self._index_spec = index_spec or (DEFAULT_LITE_INDEX if is_lite(uri) else DEFAULT_SERVER_INDEX)
        if self._client.has_collection(self.collection):
            stored = self._stored_dim()
            if stored != dim:
                raise ValueError(f"Milvus collection {self.collection} holds {stored}-d vectors, not {dim}-d")
            self._client.load_collection(self.collection)
        else:
            self._create()

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        # Strong consistency: a search right after an insert or delete sees it, as with the embedded index.
        self._client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        self._create_vector_index(self._index_spec)
        self._client.load_collection(self.collection)

    def _create_vector_index(self, spec: str) -> None:
        kind, params = parse_index_spec(spec)
        index_params = self._client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type=kind, metric_type="IP", params=params)
        self._client.create_index(self.collection, index_params)

    def _stored_dim(self) -> int:
        for field in self._client.describe_collection(self.collection)["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        raise ValueError(f"Milvus collection {self.collection} has no vector field")

    # Changes -----------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert vectors under new ids (the caller removes an id first to replace its vector)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        with self._lock:
            for start in range(0, len(ids), INSERT_BATCH):
                rows = [
                    {"id": int(i), "vector": v}
                    for i, v in zip(
                        ids[start : start + INSERT_BATCH], vectors[start : start + INSERT_BATCH], strict=True
                    )
                ]
                self._client.insert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> int:
        """Delete ids; returns how many were present."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size == 0:
            return 0
        present = 0
        with self._lock:
            for start in range(0, len(ids), INSERT_BATCH):
                part = [int(i) for i in ids[start : start + INSERT_BATCH]]
                found = self._client.query(self.collection, filter=f"id in {part}", output_fields=["id"])
                if found:
                    present += len(found)
                    self._client.delete(self.collection, ids=[int(row["id"]) for row in found])
            self._compaction_due = self._compaction_due or present > 0
        return present

    # Searching ---------------------------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product: (scores, ids), each (Q, k); missing slots are (-inf, -1)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, int(k))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        if len(queries) == 0:
            return scores, found
        expression = ""
        post_filter: set[int] | None = None
        limit = k
        if allowed_ids is not None:
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            if allowed.size == 0:
                return scores, found
            if allowed.size <= FILTER_IDS_MAX:
                expression = f"id in {allowed.tolist()}"
            else:
                # A huge literal list is slow for the server to parse; over-fetch and filter here instead.
                post_filter = set(allowed.tolist())
                limit = min(16_384, k * 20)
        with self._lock:
            hits = self._client.search(
                self.collection,
                data=[q for q in queries],
                limit=limit,
                filter=expression,
                output_fields=["id"],
                search_params={"metric_type": "IP"},
            )
        for row, row_hits in enumerate(hits):
            column = 0
            for hit in row_hits:
                face_id = int(hit["id"])
                if post_filter is not None and face_id not in post_filter:
                    continue
                scores[row, column] = float(hit["distance"])
                found[row, column] = face_id
                column += 1
                if column == k:
                    break
        return scores, found

    # Reading -----------------------------------------------------------------------------------------------

    def ids(self) -> np.ndarray:
        """Every id in the collection."""
        with self._lock:
            iterator = self._client.query_iterator(
                self.collection, batch_size=10_000, filter="id >= 0", output_fields=["id"]
            )
            ids: list[int] = []
            try:
                while True:
                    batch = iterator.next()
                    if not batch:
                        break
                    ids.extend(int(row["id"]) for row in batch)
            finally:
                iterator.close()
        return np.array(ids, dtype=np.int64)

    def __len__(self) -> int:
        """Number of vectors (deleted ones excluded)."""
        with self._lock:
            rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # Saving, rebuilding, reporting --------------------------------------------------------------------------

    def save(self) -> None:
        """Flush inserts and deletes to Milvus's storage (Milvus itself makes them durable); after deletions, ask
        a server to compact the collection, so that erased vectors are rewritten out of its segments rather than
        only marked deleted (the server runs the job in the background; ``last_compaction`` is its id)."""
        with self._lock:
            self._client.flush(self.collection)
            if self._compaction_due and not is_lite(self.uri):
                self.last_compaction = int(self._client.compact(self.collection))
            self._compaction_due = False

    def rebuild(self, factory: str | None = None, *, wait: bool = True) -> None:
        """Recreate the collection's vector index, as ``factory`` (a Milvus spec such as ``"HNSW,M=16"``) if given.

        Milvus builds the index server-side; the collection is released while the index is replaced, so
        searches wait for it (cluster deployments replace indexes without stopping, with their own tooling).
        """
        spec = factory or self._index_spec
        parse_index_spec(spec)
        with self._lock:
            self._client.flush(self.collection)
            self._client.release_collection(self.collection)
            for name in self._client.list_indexes(self.collection):
                self._client.drop_index(self.collection, name)
            self._create_vector_index(spec)
            self._client.load_collection(self.collection)
            self._index_spec = spec

    def refresh(self) -> bool:
        """Milvus is shared by every client already: nothing to reload."""
        return False

    def wait_for_rebuild(self, *, raise_error: bool = True) -> None:
        """Rebuilds are synchronous here: nothing to wait for."""

    def stats(self) -> dict[str, Any]:
        """Backend, collection, index type and size (memory is the server's business, so not reported)."""
        with self._lock:
            described: dict[str, Any] = {}
            names = self._client.list_indexes(self.collection)
            if names:
                described = self._client.describe_index(self.collection, names[0])
        return {
            "backend": "milvus",
            "kind": "milvus",
            "factory": described.get("index_type", self._index_spec),
            "requested": self._index_spec,
            "vectors": len(self),
            "dim": self.dim,
            "uri": self.uri,
            "collection": self.collection,
            "memory_bytes": None,
            "disk_bytes": None,
            "rebuilding": False,
        }

    def close(self) -> None:
        """Save (flush, and compact after deletions) and disconnect."""
        with self._lock:
            self.save()
            self._client.close()
