"""Milvus vector index through ``pymilvus``: the cluster backend (tested here against Milvus Lite).

Each pack's vectors live in a collection of their own (``facesearch_<pack>``) with two fields, the face id
(primary key) and the vector, searched by inner product. The address is a Milvus Lite file (``vectors.db``: an
embedded Milvus for one process, good for trials and tests) or a Milvus server (``http://host:19530``; a token
for an authenticated cluster comes from ``$FACESEARCH_MILVUS_TOKEN``). Milvus keeps its own durability: saving
is a flush, and a rebuild drops and recreates the collection's vector index server-side.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from typing import Any

import numpy as np

from facesearch.errors import IndexUnavailable

log = logging.getLogger(__name__)

INSERT_BATCH = 5_000
FILTER_IDS_MAX = 100_000  # an allowed-id list longer than this is filtered after the search, not in it
# gRPC refuses a message over 64 MiB: a search asks for its queries in batches whose answers (ids and scores,
# and each candidate's vector when it is re-ranked here) stay well under it. The server takes at most 16,384
# queries at once.
SEARCH_ANSWER_BYTES = 16 * 2**20
SEARCH_QUERIES_MAX = 16_384
DEFAULT_LITE_INDEX = "FLAT"  # exact; Milvus Lite is for small collections
DEFAULT_SERVER_INDEX = "AUTOINDEX"  # the server picks (HNSW or DiskANN class) for its deployment
# Searches see this client's own inserts and deletes at once, other clients' once the server's time tick passes
# them (200 ms by default). "Strong" would make every search wait for the next tick: 200 ms measured on the
# 2.3.5 server against 0.5 ms of search (benchmarks/index_comparison.py).
SEARCH_CONSISTENCY = "Session"
RECONNECT_SECONDS = 60.0  # how long a call waits for a server that does not answer (a restart) before failing
_CONNECT_FAILED = 2  # pymilvus's status code when the server cannot be reached


_NOT_LOADED = 101  # the collection is not in memory: a server that has just restarted is still loading it


def _unreachable(error: Exception) -> bool:
    """Whether a pymilvus error means the server did not answer (down, restarting, network), not a refusal."""
    from pymilvus.exceptions import MilvusException, MilvusUnavailableException

    if isinstance(error, MilvusUnavailableException):
        return True
    return isinstance(error, MilvusException) and getattr(error, "code", None) in (_CONNECT_FAILED, _NOT_LOADED)


def collection_name(pack_key: str) -> str:
    """A valid Milvus collection name for a pack (letters, digits, underscores), unique per pack key."""
    readable = re.sub(r"[^A-Za-z0-9_]", "_", pack_key)[:180]
    digest = hashlib.sha1(pack_key.encode()).hexdigest()[:8]
    return f"facesearch_{readable}_{digest}"


# Index kinds whose scores come from compressed codes: a search fetches RERANK_FACTOR times the candidates
# with their stored vectors and ranks them by the exact inner product, as the embedded index does.
LOSSY_KINDS = frozenset({"IVF_PQ", "IVF_SQ8", "SCANN", "DISKANN", "GPU_IVF_PQ", "GPU_CAGRA"})
RERANK_FACTOR = 4
# What describe_index reports beside the build parameters of the index.
_DESCRIBED_NOT_BUILD_KEYS = frozenset(
    {"metric_type", "index_type", "field_name", "index_name", "total_rows", "indexed_rows", "pending_index_rows"}
    | {"state", "params"}
)
# Parameters of a spec that are given to each search rather than to the index build.
SEARCH_KEYS = frozenset({"nprobe", "ef", "search_list", "itopk_size", "reorder_k"})


def parse_index_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"HNSW,M=16,efConstruction=200"`` -> ("HNSW", {"M": 16, "efConstruction": 200}) for ``reindex``.

    The parameters may include search-time ones (``nprobe``, ``ef``, ``search_list``), which
    :func:`search_params` takes and the build leaves out."""
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


def search_params(spec: str, limit: int) -> dict[str, Any]:
    """What a search asks of the index ``spec`` describes, for ``limit`` results: the spec's own search keys,
    else defaults chosen for face embeddings, which spread widely (a probe's mate is often far from it, so an
    inverted file visits a quarter of its lists, and a graph keeps at least 128 candidates)."""
    kind, params = parse_index_spec(spec)
    given = {key: value for key, value in params.items() if key in SEARCH_KEYS}
    if kind.startswith("IVF") or kind.startswith("GPU_IVF"):
        given.setdefault("nprobe", max(8, int(params.get("nlist", 128)) // 4))
    elif kind == "HNSW":
        given.setdefault("ef", max(128, 2 * limit))
    elif kind == "DISKANN":
        given.setdefault("search_list", max(128, 2 * limit))
    return {"metric_type": "IP", "params": given}


def is_lossy(spec: str) -> bool:
    """Whether the index ``spec`` describes scores compressed codes (searches then re-rank by the vectors)."""
    kind = parse_index_spec(spec)[0]
    return kind in LOSSY_KINDS


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a Milvus Lite file rather than a server."""
    return not re.match(r"^(https?|tcp|grpc)://", uri)


class MilvusIndex:
    """A pack's vectors in a Milvus collection; same contract as :class:`facesearch.index.faiss_index.FaissIndex`."""

    def __init__(
        self,
        uri: str,
        pack_key: str,
        dim: int,
        *,
        index_spec: str | None = None,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        from pymilvus import MilvusClient

        self.uri = uri
        self.reconnect_seconds = reconnect_seconds
        self.dim = dim
        self.pack_key = pack_key
        self.collection = collection_name(pack_key)
        self._lock = threading.RLock()
        self._compaction_due = False  # deletions since the last save: a server compacts them away on save
        self.last_compaction: int | None = None  # the server's job id of the last compaction asked for
        token = os.environ.get("FACESEARCH_MILVUS_TOKEN", "")
        self._index_spec = index_spec or (DEFAULT_LITE_INDEX if is_lite(uri) else DEFAULT_SERVER_INDEX)
        try:
            self._client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
            if self._client.has_collection(self.collection):
                stored = self._stored_dim()
                if stored != dim:
                    raise ValueError(f"Milvus collection {self.collection} holds {stored}-d vectors, not {dim}-d")
                self._client.load_collection(self.collection)
                if index_spec is None:
                    self._index_spec = self._spec_on_server() or self._index_spec
            else:
                self._create()
        except Exception as error:
            if _unreachable(error):
                raise IndexUnavailable(f"the Milvus server at {uri} does not answer: {error}") from error
            raise

    def _create(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        # Strong consistency for any client that asks nothing else; this one's searches ask for session
        # consistency (SEARCH_CONSISTENCY): they see its own inserts and deletes at once without waiting a tick.
        self._client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        self._create_vector_index(self._index_spec)
        self._client.load_collection(self.collection)

    def _create_vector_index(self, spec: str) -> None:
        kind, params = parse_index_spec(spec)
        build = {key: value for key, value in params.items() if key not in SEARCH_KEYS}
        index_params = self._client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type=kind, metric_type="IP", params=build)
        self._client.create_index(self.collection, index_params)

    def _spec_on_server(self) -> str | None:
        """The spec of the vector index the collection has (``"HNSW,M=16,efConstruction=200"``), so that a
        reopened index searches it with its own parameters; ``None`` when it has none."""
        names = self._client.list_indexes(self.collection)
        if not names:
            return None
        described = self._client.describe_index(self.collection, names[0])
        kind = str(described.get("index_type", "")).upper()
        if not kind:
            return None
        extra = [f"{key}={value}" for key, value in described.items() if key not in _DESCRIBED_NOT_BUILD_KEYS]
        return ",".join([kind, *extra])

    def _stored_dim(self) -> int:
        for field in self._client.describe_collection(self.collection)["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        raise ValueError(f"Milvus collection {self.collection} has no vector field")

    def _call(self, method: str, *args: Any, retry_as: str | None = None, **kwargs: Any) -> Any:
        """``self._client.<method>(...)``, waiting for a server that does not answer (restarting, or the network)
        up to ``reconnect_seconds``, with backoff; then :class:`IndexUnavailable`. pymilvus reconnects by itself
        once the server is back. ``retry_as`` names the call to repeat with instead (an insert is repeated as an
        upsert: the first attempt may have reached the server)."""
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.5
        name = method
        while True:
            try:
                return getattr(self._client, name)(*args, **kwargs)
            except Exception as error:
                if not _unreachable(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise IndexUnavailable(
                        f"the Milvus server at {self.uri} did not answer for {self.reconnect_seconds:.0f} s: {error}"
                    ) from error
                log.warning("the Milvus server at %s does not answer; retrying in %.1f s", self.uri, delay)
                time.sleep(delay)
                if getattr(error, "code", None) == _NOT_LOADED:
                    with contextlib.suppress(Exception):  # still recovering: the next attempt says so again
                        self._client.load_collection(self.collection)
                delay = min(delay * 2, 5.0)
                name = retry_as or method

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
                self._call("insert", self.collection, rows, retry_as="upsert")

    def remove(self, ids: np.ndarray) -> int:
        """Delete ids; returns how many were present."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size == 0:
            return 0
        present = 0
        with self._lock:
            for start in range(0, len(ids), INSERT_BATCH):
                part = [int(i) for i in ids[start : start + INSERT_BATCH]]
                found = self._call("query", self.collection, filter=f"id in {part}", output_fields=["id"])
                if found:
                    present += len(found)
                    self._call("delete", self.collection, ids=[int(row["id"]) for row in found])
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
        lossy = is_lossy(self._index_spec)
        if lossy:
            limit = min(16_384, limit * RERANK_FACTOR)
        per_hit = 32 + (4 * self.dim if lossy else 0)
        batch = max(1, min(SEARCH_QUERIES_MAX, SEARCH_ANSWER_BYTES // (limit * per_hit)))
        hits: list[Any] = []
        with self._lock:
            for start in range(0, len(queries), batch):
                hits += self._call(
                    "search",
                    self.collection,
                    data=list(queries[start : start + batch]),
                    limit=limit,
                    filter=expression,
                    output_fields=["id", "vector"] if lossy else ["id"],
                    search_params=search_params(self._index_spec, limit),
                    consistency_level=SEARCH_CONSISTENCY,
                )
        for row, row_hits in enumerate(hits):
            candidates = [hit for hit in row_hits if post_filter is None or int(hit["id"]) in post_filter]
            if not candidates:
                continue
            ids = np.array([int(hit["id"]) for hit in candidates], dtype=np.int64)
            if lossy:
                # The index's scores are approximate (compressed codes): re-rank by the stored vectors.
                stored = np.array([hit["entity"]["vector"] for hit in candidates], dtype=np.float32)
                exact = stored @ queries[row]
            else:
                exact = np.array([float(hit["distance"]) for hit in candidates], dtype=np.float32)
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)] = exact[best]
            found[row, : len(best)] = ids[best]
        return scores, found

    # Reading -----------------------------------------------------------------------------------------------

    def ids(self) -> np.ndarray:
        """Every id in the collection."""
        with self._lock:
            iterator = self._call(
                "query_iterator", self.collection, batch_size=10_000, filter="id >= 0", output_fields=["id"]
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
            rows = self._call("query", self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # Saving, rebuilding, reporting --------------------------------------------------------------------------

    def save(self) -> None:
        """Flush inserts and deletes to Milvus's storage (Milvus itself makes them durable); after deletions, ask
        a server to compact the collection, so that erased vectors are rewritten out of its segments rather than
        only marked deleted (the server runs the job in the background; ``last_compaction`` is its id)."""
        with self._lock:
            self._call("flush", self.collection)
            if self._compaction_due and not is_lite(self.uri):
                self.last_compaction = int(self._call("compact", self.collection))
            self._compaction_due = False

    def rebuild(self, factory: str | None = None, *, wait: bool = True) -> None:
        """Recreate the collection's vector index, as ``factory`` (a Milvus spec such as ``"HNSW,M=16"``) if given.

        Milvus builds the index server-side; the collection is released while the index is replaced, so
        searches wait for it (cluster deployments replace indexes without stopping, with their own tooling).
        """
        spec = factory or self._index_spec
        parse_index_spec(spec)
        with self._lock:
            self._call("flush", self.collection)
            self._call("release_collection", self.collection)
            for name in self._call("list_indexes", self.collection):
                self._call("drop_index", self.collection, name)
            self._create_vector_index(spec)
            self._call("load_collection", self.collection)
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
            names = self._call("list_indexes", self.collection)
            if names:
                described = self._call("describe_index", self.collection, names[0])
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
