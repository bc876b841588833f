"""The clusters service: cluster the faces of some collections into identities (from scratch or adding the
faces that arrived since), list clusters with how sure each is, and apply reviewers' corrections, which every
later clustering respects. Every run and every correction is audited.

The algorithm is :mod:`facesearch.search.clustering`; this service feeds it the faces from the catalog and
keeps what it returns (``catalog.clusters``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facesearch.catalog.clusters import ClusteringSettings, ClusterRow, NewCluster
from facesearch.catalog.review import NewReviewItem
from facesearch.catalog.schema import utcnow
from facesearch.catalog.store import Catalog
from facesearch.errors import FacesearchError
from facesearch.governance.access import NotVisible, Principal, require, require_unlimited
from facesearch.governance.audit import AuditTrail
from facesearch.search import clustering
from facesearch.search.searching import Searching

DEFAULT_FMR = 1.8e-6
"""The false-match rate at which two faces are linked by default: strict, since a wrong link can merge two
people's clusters. Measured on lfw-dev with the fused pack (docs/accuracy.md): at 2e-6 100,000 distractors
pull pairwise precision to 0.985; at 1.5e-6 recall falls to 0.91; 1.8e-6 holds both."""


class ClusterError(FacesearchError, ValueError):
    """A clustering request or correction that cannot be carried out (a face not in the cluster, a merge of
    clusters marked different people, no calibration). ``code`` and ``status`` are what the API and the
    workbench answer with."""

    def __init__(self, message: str, *, code: str = "invalid_cluster_change", status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class ClusteredFace:
    """One face and the cluster it is in."""

    face_id: int
    image: str
    cluster: int


@dataclass
class ClusteringRun:
    """What a clustering run did: its operating point, its counts and every face with its cluster."""

    pack: str
    threshold: float
    fmr: float | None
    full: bool
    faces: list[ClusteredFace]
    new_faces: int
    clusters: int
    elapsed_s: float
    collections: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts and the operating point, without the faces."""
        return {
            "pack": self.pack,
            "collections": self.collections,
            "threshold": round(self.threshold, 4),
            "fmr": self.fmr,
            "full": self.full,
            "faces": len(self.faces),
            "new_faces": self.new_faces,
            "clusters": self.clusters,
            "elapsed_s": round(self.elapsed_s, 2),
        }


@dataclass
class Placement:
    """What a run decided: the faces it (re)placed, the clusters they go to (an existing id or ``None`` for a
    new one), and the pairs that fell just short of being linked (face, face, similarity)."""

    faces: list[int]
    clusters: list[tuple[int | None, NewCluster]]
    near_misses: list[tuple[int, int, float]]


def _stored(face_ids: np.ndarray, quality: clustering.ClusterQuality) -> NewCluster:
    """A cluster as the store takes it: its faces (ids) and its quality."""
    return NewCluster(
        faces=[int(f) for f in face_ids.tolist()],
        weakest_link=quality.weakest_link,
        mean_similarity=quality.mean_similarity,
        mixed=quality.mixed,
        mixed_reason=quality.mixed_reason,
    )


NEAR_MISS_FACTOR = 10.0
"""A pair is a near miss when its false-match rate is at most this many times the linking rate."""


class Clusters:
    """Clusterings of one data folder's faces, and the corrections reviewers make to them."""

    def __init__(self, catalog: Catalog, audit: AuditTrail, searching: Searching) -> None:
        self.catalog = catalog
        self.store = catalog.clusters
        self.audit = audit
        self.searching = searching

    # Running -----------------------------------------------------------------------------------------------

    def run(
        self,
        principal: Principal,
        collections: Sequence[str] = (),
        *,
        full: bool = False,
        fmr: float | None = None,
        pack: str | None = None,
    ) -> ClusteringRun:
        """Cluster the faces of ``collections`` (all when empty) under ``pack``.

        The first run, a run with ``full``, or one at another operating point clusters every face from
        scratch (reviewers' corrections kept); otherwise only the faces not yet in a cluster are added, each
        joining the cluster it links to most strongly or forming new ones, without changing the others.
        """
        self._allowed(principal)
        started = time.perf_counter()
        service = self.searching.service(pack)
        pack_key = service.pack.key
        threshold, fmr = self._threshold(service.calibration, fmr)
        near = self._threshold(service.calibration, min(0.5, fmr * NEAR_MISS_FACTOR))[0]
        scope = self._scope(pack_key, collections)
        previous = self.store.settings(pack_key)
        members = self.store.memberships(scope.tolist())
        same_point = previous is not None and abs(previous.threshold - threshold) < 1e-9
        incremental = not full and same_point and bool(members)
        new = np.array([f for f in scope.tolist() if f not in members], dtype=np.int64)
        if incremental:
            placement = self._add(pack_key, service.index, members, new, threshold, near)
        else:
            placement = self._cluster_all(pack_key, scope, members, threshold, near)
        with self.catalog.transaction() as tx:
            face_to_cluster: dict[int, int] = {}
            queued = 0
            if placement is not None:
                face_to_cluster = self.store.replace(tx, pack_key, placement.faces, placement.clusters)
                queued = self.catalog.review.add(tx, self._review_items(pack_key, placement, face_to_cluster))
            self.store.save_settings(
                tx,
                ClusteringSettings(pack_key, threshold, fmr, clustering.K_NEIGHBOURS, clustering.RESOLUTION, utcnow()),
            )
            details = {
                "pack": pack_key,
                "collections": sorted(collections),
                "full": not incremental,
                "faces": int(scope.size),
                "new_faces": int(new.size) if incremental else int(scope.size),
                "threshold": round(threshold, 4),
                "fmr": fmr,
                "queued_for_review": queued,
            }
            record = self.audit.append_in(tx, actor=principal.actor, action="cluster", details=details)
        self.audit.committed(*record)
        final = {**{f: c for f, (c, _) in members.items()}, **face_to_cluster}
        paths = self.catalog.face_paths(scope.tolist())
        faces = [ClusteredFace(f, paths.get(f, ""), final[f]) for f in scope.tolist() if f in final]
        return ClusteringRun(
            pack=pack_key,
            threshold=threshold,
            fmr=fmr,
            full=not incremental,
            faces=faces,
            new_faces=int(new.size) if incremental else int(scope.size),
            clusters=len({face.cluster for face in faces}),
            elapsed_s=time.perf_counter() - started,
            collections=sorted(collections),
        )

    @staticmethod
    def _review_items(pack_key: str, placement: Placement, face_to_cluster: dict[int, int]) -> list[NewReviewItem]:
        """What a run leaves for a person: clusters it flagged as likely two people, and faces whose best match
        elsewhere fell just short of the threshold (each once: what was queued or decided is not asked again)."""
        items = []
        for cluster_id, cluster in placement.clusters:
            if cluster.mixed and cluster.faces:
                target = face_to_cluster.get(cluster.faces[0], cluster_id)
                items.append(
                    NewReviewItem(
                        key=f"mixed_cluster:{target}",
                        kind="mixed_cluster",
                        pack=pack_key,
                        cluster_id=target,
                        reason=cluster.mixed_reason,
                    )
                )
        for a, b, similarity in placement.near_misses:
            items.append(
                NewReviewItem(
                    key=f"near_threshold:{a}:{b}",
                    kind="near_threshold",
                    pack=pack_key,
                    face_a=a,
                    face_b=b,
                    similarity=similarity,
                    reason="their similarity falls just short of the clustering threshold",
                )
            )
        return items

    def _threshold(self, calibration: Any, fmr: float | None) -> tuple[float, float]:
        if calibration is None:
            raise ClusterError("the pack has no score calibration: run `facesearch calibrate` first")
        fmr = DEFAULT_FMR if fmr is None else fmr
        if not 0 < fmr < 1:
            raise ClusterError("a false-match rate is a number between 0 and 1")
        return float(calibration.threshold_for(fmr)), fmr

    def _scope(self, pack_key: str, collections: Sequence[str]) -> np.ndarray:
        if not collections:
            return np.sort(self.catalog.pack_face_ids(pack_key))
        ids = []
        for name in collections:
            collection_id = self.catalog.collection_id(name)
            if collection_id is None:
                raise NotVisible(f"unknown collection {name!r}", code="unknown_collection")
            ids.append(self.catalog.collection_face_ids(collection_id, pack_key))
        return np.unique(np.concatenate(ids)) if ids else np.empty(0, dtype=np.int64)

    def _linkable(self, ids: np.ndarray) -> np.ndarray:
        """Which faces are good enough to link to others (``clustering.MIN_QUALITY``)."""
        qualities = self.catalog.face_qualities(ids.tolist())
        return np.array([qualities.get(int(f), 0.0) >= clustering.MIN_QUALITY for f in ids.tolist()], dtype=bool)

    def _vectors(self, pack_key: str, face_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, unit vectors) of the faces, in id order."""
        if face_ids.size == 0:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        chunks = list(self.catalog.iter_embeddings(pack_key, face_ids.tolist()))
        if not chunks:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        ids = np.concatenate([c[0] for c in chunks])
        vectors = np.concatenate([c[1] for c in chunks])
        order = np.argsort(ids)
        return ids[order], clustering.normalised(vectors[order])

    def _cluster_all(
        self,
        pack_key: str,
        scope: np.ndarray,
        members: dict[int, tuple[int, bool]],
        threshold: float,
        near: float,
    ) -> Placement | None:
        """Every face of the scope clustered from scratch; reviewed clusters kept; ids kept where a new cluster
        is mostly an old one."""
        ids, vectors = self._vectors(pack_key, scope)
        if not ids.size:
            return None
        position = {int(f): i for i, f in enumerate(ids.tolist())}
        pinned = {position[f]: c for f, (c, p) in members.items() if p and f in position}
        apart = self.store.apart(set(pinned.values()))
        constraints = clustering.Constraints(pinned=pinned, cannot_link=apart)
        linkable = self._linkable(ids)
        similarities, positions = clustering.neighbours(vectors, clustering.K_NEIGHBOURS + 1)
        graph = clustering.graph_of_neighbours(similarities, positions, threshold)
        labels = clustering.cluster_faces(vectors, threshold, constraints, linkable=linkable, graph=graph)
        misses = clustering.near_misses(similarities, positions, labels, near, threshold, linkable=linkable)
        return Placement(
            ids.tolist(),
            self._named(ids, vectors, labels, members, pinned),
            [(int(ids[a]), int(ids[b]), similarity) for a, b, similarity in misses],
        )

    def _named(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        labels: np.ndarray,
        members: dict[int, tuple[int, bool]],
        pinned: dict[int, int],
    ) -> list[tuple[int | None, NewCluster]]:
        """Each label matched to the cluster id it continues: a reviewed cluster's own, else the old cluster that
        gave it most of its faces (each old id used once, largest first), else a new one."""
        groups = clustering.groups(labels)
        groups.sort(key=lambda members_: (-members_.size, int(members_[0])))
        used: set[int] = set()
        result: list[tuple[int | None, NewCluster]] = []
        for group in groups:
            reviewed = sorted({pinned[p] for p in group.tolist() if p in pinned})
            if reviewed:
                cluster_id: int | None = reviewed[0]
            else:
                olds = [members[int(ids[p])][0] for p in group.tolist() if int(ids[p]) in members]
                counts: dict[int, int] = {}
                for old in olds:
                    if old not in used:
                        counts[old] = counts.get(old, 0) + 1
                cluster_id = min(counts, key=lambda c: (-counts[c], c)) if counts else None
            if cluster_id is not None:
                used.add(cluster_id)
            quality = clustering.quality(vectors, group)
            result.append(
                (
                    cluster_id,
                    _stored(ids[group], quality),
                )
            )
        return result

    def _add(
        self,
        pack_key: str,
        index: Any,
        members: dict[int, tuple[int, bool]],
        new: np.ndarray,
        threshold: float,
        near: float,
    ) -> Placement | None:
        """The new faces placed into the existing clustering, which does not change otherwise."""
        ids, vectors = self._vectors(pack_key, new)
        if not ids.size:
            return None
        k = clustering.K_NEIGHBOURS
        clustered = np.array(sorted(members), dtype=np.int64)
        similarities, found = index.search(vectors, k + 1, allowed_ids=clustered)
        # A neighbour too poor to link (alone in its cluster) attracts no one.
        qualities = self.catalog.face_qualities(sorted({int(f) for f in found.ravel().tolist() if f >= 0}))
        neighbour_clusters = np.array(
            [
                [
                    members[int(f)][0]
                    if int(f) in members and qualities.get(int(f), 0.0) >= clustering.MIN_QUALITY
                    else -1
                    for f in row
                ]
                for row in found.tolist()
            ],
            dtype=np.int64,
        )
        linkable = self._linkable(ids)
        joined, groups = clustering.assign_new(vectors, similarities, neighbour_clusters, threshold, linkable=linkable)
        by_cluster: dict[int, list[int]] = {}
        for position, cluster_id in enumerate(joined.tolist()):
            if cluster_id >= 0:
                by_cluster.setdefault(cluster_id, []).append(position)
        result: list[tuple[int | None, NewCluster]] = []
        # Each joined cluster's quality is measured again with its new faces (its faces in this scope).
        faces_of: dict[int, list[int]] = {}
        for face, (cluster_id, _pinned) in members.items():
            if cluster_id in by_cluster:
                faces_of.setdefault(cluster_id, []).append(face)
        old_ids, old_vectors = self._vectors(pack_key, np.array(sorted(f for fs in faces_of.values() for f in fs)))
        row_of = {int(f): i for i, f in enumerate(old_ids.tolist())}
        for cluster_id, joining in by_cluster.items():
            positions = np.array(joining, dtype=np.int64)
            rows = [row_of[f] for f in faces_of.get(cluster_id, []) if f in row_of]
            everything = np.concatenate([old_vectors[rows], vectors[positions]]) if rows else vectors[positions]
            quality = clustering.quality(everything, np.arange(len(everything)))
            result.append(
                (
                    cluster_id,
                    _stored(ids[positions], quality),
                )
            )
        for positions in clustering.groups(groups):
            if groups[positions[0]] < 0:
                continue
            quality = clustering.quality(vectors, positions)
            result.append(
                (
                    None,
                    _stored(ids[positions], quality),
                )
            )
        # Near misses of the new faces: their best match in another cluster, just short of the threshold.
        placed = np.where(joined >= 0, joined, -2 - np.maximum(groups, 0))  # a new group is not an old cluster
        misses = []
        for position in range(len(ids)):
            if not linkable[position]:
                continue
            for similarity, cluster, other in zip(
                similarities[position].tolist(),
                neighbour_clusters[position].tolist(),
                found[position].tolist(),
                strict=True,
            ):
                if cluster < 0 or cluster == placed[position]:
                    continue
                if near <= similarity < threshold:
                    misses.append((int(ids[position]), int(other), round(float(similarity), 4)))
                break
        return Placement(ids.tolist(), result, misses)

    # Reading -----------------------------------------------------------------------------------------------

    def rows(
        self, principal: Principal, *, pack: str | None = None, limit: int | None = 1000, offset: int = 0
    ) -> list[ClusterRow]:
        """The clusters of ``pack``, risky ones first (flagged as likely two people, then clusters of several
        faces by their weakest link, then the faces alone), a page of ``limit`` from ``offset``; audited."""
        self._allowed(principal)
        pack_key = self.searching.service(pack).pack.key
        rows = self.store.clusters(pack_key, risky_first=True, limit=limit, offset=offset)
        details = {"pack": pack_key, "count": len(rows), "offset": offset}
        self.audit.append(actor=principal.actor, action="clusters_list", details=details)
        return rows

    # Corrections -------------------------------------------------------------------------------------------

    def _faces_of(self, cluster_id: int) -> list[int]:
        faces = [f for f, _ in self.store.faces_of(cluster_id)]
        if not faces:
            raise NotVisible(f"unknown cluster {cluster_id}", code="unknown_cluster")
        return faces

    def faces(self, principal: Principal, cluster_id: int) -> list[int]:
        """The ids of a cluster's faces (audited as a read of the cluster)."""
        self._allowed(principal)
        faces = self._faces_of(cluster_id)
        self.audit.append(actor=principal.actor, action="cluster_read", details={"cluster_id": cluster_id})
        return faces

    def sample_faces(self, principal: Principal, cluster_ids: Sequence[int], each: int = 6) -> dict[int, list[int]]:
        """The first ``each`` face ids of each cluster (for a page that shows them; their crops are read, and
        recorded, through the audited reads)."""
        self._allowed(principal)
        return {int(c): [f for f, _ in self.store.faces_of(int(c))][:each] for c in cluster_ids}

    def cluster(self, cluster_id: int) -> ClusterRow:
        """One cluster as stored (no audit record: the caller reads it with its faces or after a change)."""
        pack = self.store.cluster_pack(cluster_id)
        rows = self.store.clusters(pack, cluster_ids=[cluster_id]) if pack is not None else []
        if not rows:
            raise NotVisible(f"unknown cluster {cluster_id}", code="unknown_cluster")
        return rows[0]

    @staticmethod
    def _allowed(principal: Principal) -> None:
        """Clustering is for those with the permission, over every collection (clusters cross collections)."""
        require(principal, "clusters")
        require_unlimited(principal, "clustering")

    def _correct(self, principal: Principal, action: str, details: dict[str, Any], change: Any) -> Any:
        self._allowed(principal)
        with self.catalog.transaction() as tx:
            answer = change(tx)
            record = self.audit.append_in(tx, actor=principal.actor, action=action, details=details)
        self.audit.committed(*record)
        return answer

    def move_out(self, principal: Principal, cluster_id: int, face_ids: Sequence[int]) -> int:
        """Move faces out of a cluster into a new one of their own (a split); the two are marked different
        people and both are pinned as they now are. Returns the new cluster's id."""
        self._allowed(principal)
        own: set[int] = set(self._faces_of(cluster_id))
        wanted = sorted({int(f) for f in face_ids})
        if not wanted or not set(wanted) <= own:
            raise ClusterError(f"faces {sorted(set(wanted) - own) or wanted} are not faces of cluster {cluster_id}")
        if set(wanted) == own:
            raise ClusterError("every face of the cluster was named: nothing would be left to split from")
        pack_key = self.store.cluster_pack(cluster_id) or ""

        def change(tx: Any) -> int:
            new_id = self.store.move_to_new(tx, pack_key, wanted)
            self.store.pin(tx, cluster_id)
            self.store.add_apart(tx, cluster_id, new_id)
            return new_id

        details = {"cluster_id": cluster_id, "faces": wanted}
        new_id = self._correct(principal, "cluster_split", details, change)
        return int(new_id)

    def merge(self, principal: Principal, cluster_id: int, into: int, *, despite_apart: bool = False) -> int:
        """Merge ``cluster_id`` into ``into`` (one person); how many faces moved. Two clusters marked different
        people are merged only ``despite_apart`` (a reviewer changing an earlier decision: the record says so)."""
        self._allowed(principal)
        self._faces_of(cluster_id)
        self._faces_of(into)
        if cluster_id == into:
            raise ClusterError("a cluster cannot be merged into itself")
        apart = (min(cluster_id, into), max(cluster_id, into)) in self.store.apart([cluster_id])
        if apart and not despite_apart:
            raise ClusterError(
                f"clusters {cluster_id} and {into} were marked different people (merge despite it to change that)",
                code="clusters_apart",
                status=409,
            )
        details = {"cluster_id": cluster_id, "into": into, "were_apart": apart}

        def change(tx: Any) -> int:
            self.store.remove_apart(tx, cluster_id, into)
            return self.store.merge(tx, cluster_id, into)

        return int(self._correct(principal, "cluster_merge", details, change))

    def mark_apart(self, principal: Principal, first: int, second: int) -> None:
        """Record that two clusters are not the same person; both are pinned as they now are, and no later
        clustering puts them together."""
        self._allowed(principal)
        self._faces_of(first)
        self._faces_of(second)
        if first == second:
            raise ClusterError("a cluster is always the same person as itself")

        def change(tx: Any) -> None:
            self.store.pin(tx, first)
            self.store.pin(tx, second)
            self.store.add_apart(tx, first, second)

        self._correct(principal, "cluster_apart", {"clusters": sorted((first, second))}, change)

    def name(self, principal: Principal, cluster_id: int, label: str) -> int:
        """Name a cluster: its faces are enrolled as the subject ``label`` (made if new); the cluster is pinned.
        Returns the subject's id."""
        self._allowed(principal)
        label = label.strip()
        if not label:
            raise ClusterError("a name cannot be empty")
        faces = self._faces_of(cluster_id)

        def change(tx: Any) -> int:
            subject_id = self.catalog.subjects.enrol_faces(tx, label, faces)
            self.store.name(tx, cluster_id, subject_id)
            self.store.pin(tx, cluster_id)
            return subject_id

        details = {"cluster_id": cluster_id, "faces": len(faces)}
        return int(self._correct(principal, "cluster_name", details, change))
