"""Clustering faces into identities: a similarity graph from FAISS, cut at a calibrated threshold, split where a
graph-community algorithm finds two groups joined by a few links, and respecting what reviewers decided.

Pure computation over vectors (no catalog, no index files): the clustering service feeds it the faces of some
collections and stores what it returns.

How a clustering is made (``cluster_faces``):

1. **Graph**: each face's ``k`` nearest neighbours (FAISS inner product on unit vectors: exact up to
   ``EXACT_LIMIT`` faces, an inverted-file index above), kept when their similarity reaches ``threshold`` (the
   pack's similarity at a chosen false-match rate, so an edge says "this pair would be a match at that rate").
2. **Reviewers' decisions** come first: faces a reviewer put in one cluster (``pinned``) are one node; two
   pinned clusters are never merged by the algorithm (merging is a reviewer's decision), and pairs marked
   different (``cannot_link``) never end up together.
3. **Connected components** of that graph, then each component with more than ``REFINE_MIN`` faces refined by
   Leiden (``leidenalg``, modularity with a resolution, fixed seed: the same data gives the same clusters),
   which cuts a chain of look-alikes or a bridge between two people where single linkage would merge them.
   The choice was measured on lfw-dev (``benchmarks/clustering.py``; docs/accuracy.md).
4. **Quality** of every cluster: size, weakest link (the weakest similarity its spanning tree needs), mean
   similarity, and a ``mixed`` flag when it holds two dense groups joined by a bridge or a weak cut.

``assign_new`` adds faces to an existing clustering without touching it: a new face joins the cluster it links
to most strongly, or forms new clusters with the other new faces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import igraph
import leidenalg
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

K_NEIGHBOURS = 24
"""Neighbours per face in the graph: enough to hold a large identity together, few enough to stay sparse."""

EXACT_LIMIT = 50_000
"""Up to this many faces the neighbours are found exactly; above, by an inverted-file index (recall measured)."""

PROBED_LISTS = 16
TRAINING_PER_LIST = 40
TRAINING_ITERATIONS = 10
"""The inverted-file index of a large graph: lists probed per face, training faces per list and k-means
iterations (a coarse quantiser needs far less training than a compressed index). On 206,000 faces it kept
97.6% of the exact graph's links in a sixth of the time, with the same precision (docs/accuracy.md)."""

REFINE_MIN = 4
"""Components of at least this many faces are refined by Leiden; smaller ones cannot hold two groups worth
separating (a pair or a triple above the threshold is kept whole)."""

RESOLUTION = 0.2
"""Leiden's modularity resolution: low, so that one person's photos stay together and only groups joined by a
few links are cut. On lfw-dev at the default operating point 0.1-0.2 give the same clusters; 0.5 starts to cut
the largest identities (George W Bush's 265 photos) and 1.0 halves recall (benchmarks/clustering.py)."""

SEED = 20261201
"""Leiden's and the inverted index's seed: a clustering is reproducible."""

MIN_QUALITY = 0.2
"""Faces of lower quality (tiny, blurred, turned away: ``vision.quality``) link to no one. Their embeddings
crowd together whoever they show, and chain unrelated people into one cluster (seen on lfw-dev's background
faces: quality median 0.09 against 1.0 for the photographed person, whose first percentile is 0.29)."""

MIXED_MIN_PART = 2
"""A cluster is flagged mixed only when each side of its weak cut holds at least this many faces."""

MIXED_CUT_RATIO = 0.25
"""A cut is weak when the links across it are fewer than this share of the smaller side's links inside."""


@dataclass
class Graph:
    """An undirected similarity graph over faces ``0..n-1``: each edge once (``source < target``)."""

    n: int
    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.source.size)

    def subgraph(self, members: np.ndarray) -> Graph:
        """The edges among ``members`` (renumbered 0..len(members)-1 in their order)."""
        position = np.full(self.n, -1, dtype=np.int64)
        position[members] = np.arange(members.size)
        a, b = position[self.source], position[self.target]
        inside = (a >= 0) & (b >= 0)
        return Graph(int(members.size), a[inside], b[inside], self.weight[inside])


@dataclass
class ClusterQuality:
    """How sure a cluster is: its size, the weakest similarity holding it together, its mean similarity, and
    whether it likely holds two people."""

    size: int
    weakest_link: float | None
    mean_similarity: float | None
    mixed: bool = False
    mixed_reason: str | None = None


@dataclass
class Constraints:
    """What reviewers decided, in positions of the faces being clustered.

    ``pinned`` maps a face to the reviewed cluster it was put in (faces of one pinned cluster always stay
    together; two pinned clusters are never merged by the algorithm); ``cannot_link`` holds pairs of pinned
    cluster keys that are not the same person."""

    pinned: dict[int, int] = field(default_factory=dict)
    cannot_link: set[tuple[int, int]] = field(default_factory=set)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows (cosine similarity as inner product)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def neighbours(
    vectors: np.ndarray, k: int = K_NEIGHBOURS, *, queries: np.ndarray | None = None, exact_limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``vectors`` to each query (default: to each row itself), as (similarities,
    positions), each (Q, k); missing slots have position -1.

    Exact up to ``EXACT_LIMIT`` rows; above, an inverted-file index (``4 * sqrt(n)`` lists, ``PROBED_LISTS``
    probed) trained on a fixed sample, so the same data gives the same graph.
    """
    n, dim = vectors.shape
    exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit
    queries = vectors if queries is None else queries
    k = min(k, n)
    if k == 0 or len(queries) == 0:
        return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
    index: Any
    if n <= exact_limit:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(SEED).choice(n, size=min(n, TRAINING_PER_LIST * lists), replace=False)
        index.cp.seed = SEED
        index.cp.niter = TRAINING_ITERATIONS
        index.train(vectors[np.sort(sample)])
        index.nprobe = PROBED_LISTS
    index.add(vectors)
    similarities, positions = index.search(queries, k)
    return similarities, positions


def similarity_graph(
    vectors: np.ndarray, threshold: float, k: int = K_NEIGHBOURS, *, exact_limit: int | None = None
) -> Graph:
    """Each face linked to those of its ``k`` nearest neighbours whose similarity reaches ``threshold``."""
    similarities, positions = neighbours(vectors, k + 1, exact_limit=exact_limit)  # a face is its own first
    return graph_of_neighbours(similarities, positions, threshold)


def graph_of_neighbours(similarities: np.ndarray, positions: np.ndarray, threshold: float) -> Graph:
    """The graph of each face's neighbours (as :func:`neighbours` returns them) at or above ``threshold``."""
    n = len(positions)
    rows = np.repeat(np.arange(n, dtype=np.int64), positions.shape[1])
    return _edges(n, rows, positions.ravel(), similarities.ravel(), threshold)


def near_misses(
    similarities: np.ndarray,
    positions: np.ndarray,
    labels: np.ndarray,
    low: float,
    threshold: float,
    *,
    linkable: np.ndarray | None = None,
    limit: int = 10_000,
) -> list[tuple[int, int, float]]:
    """Faces whose best match outside their own cluster falls just short of the threshold (at or above
    ``low``): (face, that match, similarity) for a person to look at, each pair once, the most alike first,
    at most ``limit``."""
    found: dict[tuple[int, int], float] = {}
    for face in range(len(positions)):
        if linkable is not None and not linkable[face]:
            continue
        for similarity, other in zip(similarities[face].tolist(), positions[face].tolist(), strict=True):
            if other < 0 or other == face or labels[other] == labels[face]:
                continue
            if linkable is not None and not linkable[other]:
                continue
            if low <= similarity < threshold:
                found[(min(face, other), max(face, other))] = similarity
            break  # only the best match outside the cluster
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [(a, b, round(similarity, 4)) for (a, b), similarity in ranked]


def _edges(n: int, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, threshold: float) -> Graph:
    """Undirected edges (each once, the stronger direction's weight) from directed pairs at or above
    ``threshold``."""
    keep = (cols >= 0) & (rows != cols) & (weights >= threshold)
    rows, cols, weights = rows[keep], cols[keep], weights[keep].astype(np.float32)
    source, target = np.minimum(rows, cols), np.maximum(rows, cols)
    order = np.lexsort((-weights, target, source))
    source, target, weights = source[order], target[order], weights[order]
    first = np.ones(source.size, dtype=bool)
    first[1:] = (source[1:] != source[:-1]) | (target[1:] != target[:-1])
    return Graph(n, source[first], target[first], weights[first])


def cluster_faces(
    vectors: np.ndarray,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    k: int = K_NEIGHBOURS,
    resolution: float = RESOLUTION,
    refine: bool = True,
    graph: Graph | None = None,
    linkable: np.ndarray | None = None,
) -> np.ndarray:
    """A cluster label per face (``0..m-1``, numbered by each cluster's first face), reviewers' decisions kept.

    ``linkable`` (a mask) leaves faces out of every link: too poor to vouch for anyone (see ``MIN_QUALITY``),
    they stay alone unless a reviewer put them in a cluster. ``refine=False`` stops at the connected components
    (single linkage at ``threshold``), for comparison.
    """
    n = len(vectors)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    constraints = constraints or Constraints()
    graph = graph if graph is not None else similarity_graph(normalised(vectors), threshold, k)
    if linkable is not None:
        keep = linkable[graph.source] & linkable[graph.target]
        graph = Graph(graph.n, graph.source[keep], graph.target[keep], graph.weight[keep])
    # Faces a reviewer put together are one node: they stay together whatever the graph says.
    node_of = np.arange(n, dtype=np.int64)
    pinned_node: dict[int, int] = {}
    for face, key in sorted(constraints.pinned.items()):
        node_of[face] = pinned_node.setdefault(key, face)
    _, node_of = np.unique(node_of, return_inverse=True)
    nodes = int(node_of.max()) + 1
    pinned_key = {int(node_of[face]): key for face, key in constraints.pinned.items()}
    contracted = _contract(graph, node_of, nodes)
    labels = _components(contracted)
    if refine:
        labels = _refine(contracted, labels, resolution)
    labels = _keep_reviewed_apart(contracted, labels, pinned_key)
    return _renumber(labels[node_of])


def _contract(graph: Graph, node_of: np.ndarray, nodes: int) -> Graph:
    """The graph over nodes (groups of faces): edges between groups keep their strongest similarity."""
    source, target = node_of[graph.source], node_of[graph.target]
    return _edges(nodes, source, target, graph.weight, -np.inf)


def _components(graph: Graph) -> np.ndarray:
    matrix = coo_matrix((np.ones(len(graph)), (graph.source, graph.target)), shape=(graph.n, graph.n))
    _, labels = connected_components(matrix, directed=False)
    return labels.astype(np.int64)


def groups(labels: np.ndarray, min_size: int = 1) -> list[np.ndarray]:
    """The positions of each label's members (ascending), for labels with at least ``min_size`` members, in
    label order; one sort of the whole array, whatever the number of labels."""
    if labels.size == 0:
        return []
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    return [order[s:e] for s, e in zip(starts, ends, strict=True) if e - s >= min_size]


def _refine(graph: Graph, labels: np.ndarray, resolution: float) -> np.ndarray:
    """Each large component split where Leiden finds communities joined by few links.

    The edges are sorted by component once, so each component's subgraph is a slice (a million faces make
    hundreds of thousands of components: nothing per component may cost in proportion to the whole graph)."""
    labels = labels.copy()
    next_label = int(labels.max()) + 1 if labels.size else 0
    edge_label = labels[graph.source]
    order = np.argsort(edge_label, kind="stable")
    sorted_labels = edge_label[order]
    for members in groups(labels, 2):
        if members.size < REFINE_MIN:
            continue
        label = labels[members[0]]
        start, end = np.searchsorted(sorted_labels, [label, label + 1])
        chosen = order[start:end]
        members = np.sort(members)
        local = Graph(
            int(members.size),
            np.searchsorted(members, graph.source[chosen]),
            np.searchsorted(members, graph.target[chosen]),
            graph.weight[chosen],
        )
        parts = communities(local, resolution)
        for part in range(1, int(parts.max()) + 1):
            labels[members[parts == part]] = next_label
            next_label += 1
    return labels


def communities(graph: Graph, resolution: float = RESOLUTION) -> np.ndarray:
    """Leiden communities of a (connected) graph, weighted by similarity; labels 0..m-1, reproducible."""
    g = igraph.Graph(n=graph.n, edges=np.column_stack([graph.source, graph.target]).tolist())
    partition = leidenalg.find_partition(
        g,
        leidenalg.RBConfigurationVertexPartition,
        weights=np.clip(graph.weight, 1e-6, None).astype(float).tolist(),  # Leiden takes no negative weight
        resolution_parameter=resolution,
        seed=SEED,
        n_iterations=-1,
    )
    return np.asarray(partition.membership, dtype=np.int64)


def _keep_reviewed_apart(graph: Graph, labels: np.ndarray, pinned_key: Mapping[int, int]) -> np.ndarray:
    """No cluster holds two reviewed clusters: where one does, each of its other nodes goes with the reviewed
    node it is most strongly linked to (through the graph), so a reviewer's separate clusters stay separate."""
    labels = labels.copy()
    by_label: dict[int, list[int]] = {}
    for node in pinned_key:
        by_label.setdefault(int(labels[node]), []).append(node)
    next_label = int(labels.max()) + 1 if labels.size else 0
    for label, reviewed in by_label.items():
        if len(reviewed) < 2:
            continue
        members = np.flatnonzero(labels == label)
        owner = _nearest_seed(graph.subgraph(members), [int(np.searchsorted(members, r)) for r in reviewed])
        for seed_position in range(1, len(reviewed)):
            labels[members[owner == seed_position]] = next_label
            next_label += 1
        # Nodes reached by no reviewed node (cannot happen inside one component) keep the label of the first.
    return labels


def _nearest_seed(graph: Graph, seeds: Sequence[int]) -> np.ndarray:
    """For each node, the index in ``seeds`` of the seed it reaches along the strongest path (a widest-path
    flood from every seed at once); -1 for nodes no seed reaches."""
    owner = np.full(graph.n, -1, dtype=np.int64)
    strength = np.full(graph.n, -np.inf)
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(graph.n)]
    for a, b, w in zip(graph.source.tolist(), graph.target.tolist(), graph.weight.tolist(), strict=True):
        adjacency[a].append((b, w))
        adjacency[b].append((a, w))
    import heapq

    heap: list[tuple[float, int, int]] = []
    for index, seed in enumerate(seeds):
        owner[seed], strength[seed] = index, np.inf
        heapq.heappush(heap, (-np.inf, seed, index))
    done = np.zeros(graph.n, dtype=bool)
    while heap:
        negative, node, index = heapq.heappop(heap)
        if done[node]:
            continue
        done[node] = True
        for other, weight in adjacency[node]:
            width = min(-negative, weight)
            if not done[other] and width > strength[other]:
                strength[other], owner[other] = width, index
                heapq.heappush(heap, (-width, other, index))
    return owner


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Labels 0..m-1 in the order of each cluster's first face (independent of how they were computed)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    mapping = np.empty(order.size, dtype=np.int64)
    mapping[order] = np.arange(order.size)
    _, inverse = np.unique(labels, return_inverse=True)
    return mapping[inverse]


def cannot_link_violations(labels: np.ndarray, constraints: Constraints) -> list[tuple[int, int]]:
    """Pairs of reviewed clusters marked different that share a label (empty for a result of this module)."""
    label_of_key: dict[int, set[int]] = {}
    for face, key in constraints.pinned.items():
        label_of_key.setdefault(key, set()).add(int(labels[face]))
    return [
        (a, b) for a, b in sorted(constraints.cannot_link) if label_of_key.get(a, set()) & label_of_key.get(b, set())
    ]


def quality(vectors: np.ndarray, members: np.ndarray, graph: Graph | None = None) -> ClusterQuality:
    """Size, weakest link, mean similarity and the mixed flag of one cluster (``vectors`` unit rows of all
    faces, ``members`` its positions). Clusters of up to 2,000 faces are measured exactly; larger ones on a
    fixed sample of that size."""
    size = int(members.size)
    if size < 2:
        return ClusterQuality(size, None, None)
    if size > 2000:
        members = np.sort(np.random.default_rng(SEED).choice(members, 2000, replace=False))
    block = vectors[members]
    similarity = block @ block.T
    upper = similarity[np.triu_indices(members.size, 1)]
    weakest = _weakest_link(similarity)
    mean = float(upper.mean())
    mixed, reason = _mixed(similarity)
    if not mixed and mean < weakest - CHAIN_GAP:
        # Most pairs are far less alike than the links that hold the cluster: a chain of look-alikes.
        mixed, reason = True, f"a chain: mean similarity {mean:.2f} well below its weakest link {weakest:.2f}"
    return ClusterQuality(size, round(weakest, 4), round(mean, 4), mixed, reason)


def _weakest_link(similarity: np.ndarray) -> float:
    """The smallest similarity in the maximum spanning tree: the weakest link the cluster cannot do without."""
    n = similarity.shape[0]
    best = similarity[0].copy()
    inside = np.zeros(n, dtype=bool)
    inside[0] = True
    best[0] = -np.inf
    weakest = np.inf
    for _ in range(n - 1):  # Prim's algorithm on the dense similarity matrix
        candidates = np.where(inside, -np.inf, best)
        node = int(np.argmax(candidates))
        weakest = min(weakest, float(candidates[node]))
        inside[node] = True
        best = np.maximum(best, similarity[node])
    return weakest


def _mixed(similarity: np.ndarray) -> tuple[bool, str | None]:
    """Whether a cluster likely holds two people: Leiden (at a resolution that splits readily) finds two groups
    of at least ``MIXED_MIN_PART`` faces whose links across are few compared with the links inside them."""
    n = similarity.shape[0]
    if n < 2 * MIXED_MIN_PART:
        return False, None
    k = min(K_NEIGHBOURS, n - 1)
    positions = np.argsort(-similarity, axis=1)[:, 1 : k + 1]
    rows = np.repeat(np.arange(n), k)
    graph = _edges(n, rows, positions.ravel(), similarity[rows, positions.ravel()], -np.inf)
    parts = communities(graph, resolution=1.0)
    sizes = np.bincount(parts)
    if (sizes >= MIXED_MIN_PART).sum() < 2:
        return False, None
    # The two largest groups: the mean similarity across them against the mean within the smaller one.
    first, second = np.argsort(-sizes)[:2]
    a, b = np.flatnonzero(parts == first), np.flatnonzero(parts == second)
    across = float(similarity[np.ix_(a, b)].mean())
    within = min(_mean_within(similarity, a), _mean_within(similarity, b))
    if across < within - MIXED_GAP:
        return True, (
            f"two groups ({a.size} and {b.size} faces) are closer within (mean {within:.2f}) than across "
            f"(mean {across:.2f})"
        )
    return False, None


MIXED_GAP = 0.15
CHAIN_GAP = 0.1
"""How much closer within two groups than across them a cluster's faces must be to flag it mixed; and how far
below its weakest link a cluster's mean similarity must fall to flag it a chain (``CHAIN_GAP``)."""


def _mean_within(similarity: np.ndarray, members: np.ndarray) -> float:
    block = similarity[np.ix_(members, members)]
    count = members.size * (members.size - 1)
    return float((block.sum() - np.trace(block)) / count) if count else 1.0


def assign_new(
    new_vectors: np.ndarray,
    neighbour_similarities: np.ndarray,
    neighbour_clusters: np.ndarray,
    threshold: float,
    *,
    k: int = K_NEIGHBOURS,
    resolution: float = RESOLUTION,
    linkable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Place new faces into an existing clustering without changing it.

    ``neighbour_similarities`` / ``neighbour_clusters`` (N, k) are each new face's nearest existing faces and
    their clusters (-1 for an empty slot or a face that may not be linked). A new face joins the existing
    cluster it is most strongly linked to (the sum of its links at or above ``threshold``); the rest are
    clustered among themselves. Returns (existing cluster or -1, new-group label or -1) per face.
    """
    n = len(new_vectors)
    joined = np.full(n, -1, dtype=np.int64)
    for face in range(n):
        if linkable is not None and not linkable[face]:
            continue
        weights: dict[int, float] = {}
        for similarity, cluster in zip(
            neighbour_similarities[face].tolist(), neighbour_clusters[face].tolist(), strict=True
        ):
            if cluster >= 0 and similarity >= threshold:
                weights[cluster] = weights.get(cluster, 0.0) + similarity
        if weights:
            joined[face] = max(sorted(weights), key=lambda c: weights[c])
    rest = np.flatnonzero(joined < 0)
    groups = np.full(n, -1, dtype=np.int64)
    if rest.size:
        groups[rest] = cluster_faces(
            new_vectors[rest],
            threshold,
            k=k,
            resolution=resolution,
            linkable=None if linkable is None else linkable[rest],
        )
    return joined, groups
