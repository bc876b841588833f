"""The clusters store: how each pack was clustered, its clusters with their quality, which face is in which,
and the pairs of clusters reviewers said are different people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, insert, or_, select, update

from facesearch.catalog.base import Store, Transaction
from facesearch.catalog.schema import Cluster, ClusterApart, ClusterFace, Clustering, Subject, utcnow


@dataclass
class ClusteringSettings:
    """How a pack's faces were last clustered."""

    pack: str
    threshold: float
    fmr: float | None
    neighbours: int
    resolution: float
    updated_at: datetime


@dataclass
class ClusterRow:
    """A cluster as stored: its quality, whether a reviewer touched it, the subject it was named as."""

    id: int
    pack: str
    size: int
    reviewed: bool
    subject: str | None
    weakest_link: float | None
    mean_similarity: float | None
    mixed: bool
    mixed_reason: str | None


@dataclass
class NewCluster:
    """A cluster to create or update: its faces (the pinned ones among them) and its quality."""

    faces: list[int]
    weakest_link: float | None = None
    mean_similarity: float | None = None
    mixed: bool = False
    mixed_reason: str | None = None


def _batches(values: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _insert_returning_ids(session: Transaction, table: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in bulk; their new ids, in the order of ``rows``."""
    ids: list[int] = []
    for start in range(0, len(rows), 10_000):
        statement = insert(table).returning(table.id, sort_by_parameter_order=True)
        ids.extend(int(i) for i in session.scalars(statement, rows[start : start + 10_000]))
    return ids


class ClusterStore(Store):
    """Clusters of faces."""

    def settings(self, pack: str, tx: Transaction | None = None) -> ClusteringSettings | None:
        """How ``pack`` was last clustered, or ``None`` when it never was."""
        with self._reading(tx) as session:
            row = session.get(Clustering, pack)
            if row is None:
                return None
            return ClusteringSettings(row.pack, row.threshold, row.fmr, row.neighbours, row.resolution, row.updated_at)

    def save_settings(self, tx: Transaction, settings: ClusteringSettings) -> None:
        """Record how ``settings.pack`` was clustered."""
        row = tx.get(Clustering, settings.pack)
        if row is None:
            tx.add(
                Clustering(
                    pack=settings.pack,
                    threshold=settings.threshold,
                    fmr=settings.fmr,
                    neighbours=settings.neighbours,
                    resolution=settings.resolution,
                    updated_at=settings.updated_at,
                )
            )
            return
        row.threshold, row.fmr, row.neighbours = settings.threshold, settings.fmr, settings.neighbours
        row.resolution, row.updated_at = settings.resolution, settings.updated_at

    def memberships(self, face_ids: Sequence[int], tx: Transaction | None = None) -> dict[int, tuple[int, bool]]:
        """face id -> (cluster id, pinned) for those of ``face_ids`` that are in a cluster."""
        found: dict[int, tuple[int, bool]] = {}
        with self._reading(tx) as session:
            for batch in _batches([int(i) for i in face_ids], 5000):
                query = select(ClusterFace.face_id, ClusterFace.cluster_id, ClusterFace.pinned).where(
                    ClusterFace.face_id.in_(batch)
                )
                found.update({int(f): (int(c), bool(p)) for f, c, p in session.execute(query)})
        return found

    def reviewed_clusters(self, cluster_ids: Iterable[int], tx: Transaction | None = None) -> set[int]:
        """Those of ``cluster_ids`` a reviewer made or corrected."""
        ids = sorted({int(i) for i in cluster_ids})
        found: set[int] = set()
        with self._reading(tx) as session:
            for batch in _batches(ids):
                found.update(session.scalars(select(Cluster.id).where(Cluster.id.in_(batch), Cluster.reviewed)))
        return found

    def apart(self, cluster_ids: Iterable[int], tx: Transaction | None = None) -> set[tuple[int, int]]:
        """The cannot-links (a < b) that touch ``cluster_ids``."""
        ids = sorted({int(i) for i in cluster_ids})
        found: set[tuple[int, int]] = set()
        with self._reading(tx) as session:
            for batch in _batches(ids):
                query = select(ClusterApart.cluster_a, ClusterApart.cluster_b).where(
                    or_(ClusterApart.cluster_a.in_(batch), ClusterApart.cluster_b.in_(batch))
                )
                found.update((int(a), int(b)) for a, b in session.execute(query))
        return found

    def replace(
        self,
        tx: Transaction,
        pack: str,
        faces: Sequence[int],
        clusters: Mapping[int | None, NewCluster] | Sequence[tuple[int | None, NewCluster]],
    ) -> dict[int, int]:
        """Put ``faces`` (all of them, unpinned unless already pinned) into ``clusters``: each an existing
        cluster id to keep (its quality updated) or ``None`` for a new one. Faces of ``faces`` in no cluster
        of the list leave theirs; clusters left empty are removed. Returns face id -> cluster id."""
        items = list(clusters.items()) if isinstance(clusters, Mapping) else list(clusters)
        now = utcnow()
        pinned = {f for f, (_, p) in self.memberships(faces, tx).items() if p}
        for batch in _batches([int(f) for f in faces if int(f) not in pinned], 5000):
            tx.execute(delete(ClusterFace).where(ClusterFace.face_id.in_(batch)))

        def quality(cluster: NewCluster) -> dict[str, Any]:
            return {
                "weakest_link": cluster.weakest_link,
                "mean_similarity": cluster.mean_similarity,
                "mixed": cluster.mixed,
                "mixed_reason": cluster.mixed_reason,
                "updated_at": now,
            }

        # In bulk: a million faces make hundreds of thousands of clusters, and a round trip each would take hours.
        new = [cluster for cluster_id, cluster in items if cluster_id is None]
        created = _insert_returning_ids(
            tx, Cluster, [{"pack": pack, "reviewed": False, "created_at": now, **quality(c)} for c in new]
        )
        kept = [(cluster_id, cluster) for cluster_id, cluster in items if cluster_id is not None]
        if kept:
            tx.execute(
                update(Cluster),
                [{"id": int(cluster_id), **quality(cluster)} for cluster_id, cluster in kept],
            )
        assignment: dict[int, int] = {}
        rows: list[dict[str, object]] = []
        for cluster_id, cluster in [*kept, *zip(created, new, strict=True)]:
            for face in cluster.faces:
                assignment[int(face)] = int(cluster_id)
                if int(face) not in pinned:
                    rows.append({"face_id": int(face), "cluster_id": int(cluster_id), "pinned": False})
        for start in range(0, len(rows), 50_000):
            tx.execute(insert(ClusterFace), rows[start : start + 50_000])
        self.remove_empty(tx, pack)
        return assignment

    def remove_empty(self, tx: Transaction, pack: str) -> int:
        """Remove ``pack``'s clusters with no face left (after a re-clustering or an erasure); how many."""
        empty = select(Cluster.id).where(
            Cluster.pack == pack, ~select(ClusterFace.face_id).where(ClusterFace.cluster_id == Cluster.id).exists()
        )
        ids = list(tx.scalars(empty))
        for batch in _batches(ids):
            tx.execute(delete(Cluster).where(Cluster.id.in_(batch)))
        return len(ids)

    def clusters(
        self,
        pack: str,
        *,
        cluster_ids: Sequence[int] | None = None,
        face_ids: Sequence[int] | None = None,
        risky_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
        tx: Transaction | None = None,
    ) -> list[ClusterRow]:
        """``pack``'s clusters (those named, or those holding ``face_ids``) with their sizes, largest first, or
        with ``risky_first`` the ones flagged as likely two people first, then clusters of several faces by their
        weakest link (the database sorts and pages: a million faces make hundreds of thousands of clusters).

        Sizes count the cluster's faces among ``face_ids`` when given (what a user may see), all otherwise."""
        size = func.count(ClusterFace.face_id)
        order = (
            (Cluster.mixed.desc(), case((size < 2, 1), else_=0), Cluster.weakest_link.asc().nulls_last(), Cluster.id)
            if risky_first
            else (size.desc(), Cluster.id)
        )
        query = (
            select(Cluster, size, Subject.label)
            .join(ClusterFace, ClusterFace.cluster_id == Cluster.id)
            .outerjoin(Subject, Subject.id == Cluster.subject_id)
            .where(Cluster.pack == pack)
            .group_by(Cluster.id, Subject.label)
            .order_by(*order)
        )
        if face_ids is None and limit is not None:
            query = query.limit(limit).offset(offset)
        if cluster_ids is not None:
            query = query.where(Cluster.id.in_([int(i) for i in cluster_ids]))
        rows = []
        with self._reading(tx) as session:
            if face_ids is not None:
                found = self.memberships(face_ids, session)
                wanted = sorted({c for c, _ in found.values()})
                counts: dict[int, int] = {}
                for cluster_id, _ in found.values():
                    counts[cluster_id] = counts.get(cluster_id, 0) + 1
                found_rows: list[Any] = []
                for batch in _batches(wanted):
                    found_rows.extend(session.execute(query.where(Cluster.id.in_(batch))).all())
                result: list[tuple[Any, int, Any]] = [(c, counts[int(c.id)], label) for c, _, label in found_rows]
                result.sort(key=lambda row: (-row[1], row[0].id))
            else:
                result = [(c, int(n), label) for c, n, label in session.execute(query).all()]
            for cluster, count, label in result:
                rows.append(
                    ClusterRow(
                        id=int(cluster.id),
                        pack=cluster.pack,
                        size=int(count),
                        reviewed=bool(cluster.reviewed),
                        subject=label,
                        weakest_link=cluster.weakest_link,
                        mean_similarity=cluster.mean_similarity,
                        mixed=bool(cluster.mixed),
                        mixed_reason=cluster.mixed_reason,
                    )
                )
        return rows

    def faces_of(self, cluster_id: int, tx: Transaction | None = None) -> list[tuple[int, bool]]:
        """(face id, pinned) of a cluster's faces, by id."""
        with self._reading(tx) as session:
            query = (
                select(ClusterFace.face_id, ClusterFace.pinned)
                .where(ClusterFace.cluster_id == cluster_id)
                .order_by(ClusterFace.face_id)
            )
            return [(int(f), bool(p)) for f, p in session.execute(query)]

    def cluster_pack(self, cluster_id: int, tx: Transaction | None = None) -> str | None:
        """The pack of a cluster, or ``None`` when there is no such cluster."""
        with self._reading(tx) as session:
            return session.scalar(select(Cluster.pack).where(Cluster.id == cluster_id))

    # Reviewers' corrections --------------------------------------------------------------------------------

    def pin(self, tx: Transaction, cluster_id: int) -> None:
        """Mark a cluster reviewed and every face now in it pinned there."""
        tx.execute(update(Cluster).where(Cluster.id == cluster_id).values(reviewed=True, updated_at=utcnow()))
        tx.execute(update(ClusterFace).where(ClusterFace.cluster_id == cluster_id).values(pinned=True))

    def confirm(self, tx: Transaction, cluster_id: int) -> None:
        """A reviewer found a flagged cluster to be one person: pinned, and no longer flagged."""
        self.pin(tx, cluster_id)
        tx.execute(update(Cluster).where(Cluster.id == cluster_id).values(mixed=False, mixed_reason=None))

    def move_to_new(self, tx: Transaction, pack: str, face_ids: Sequence[int]) -> int:
        """Move faces into a new reviewed cluster where they are pinned; its id."""
        now = utcnow()
        created = Cluster(pack=pack, reviewed=True, mixed=False, created_at=now, updated_at=now)
        tx.add(created)
        tx.flush()
        for batch in _batches([int(f) for f in face_ids]):
            tx.execute(delete(ClusterFace).where(ClusterFace.face_id.in_(batch)))
        tx.execute(
            insert(ClusterFace), [{"face_id": int(f), "cluster_id": int(created.id), "pinned": True} for f in face_ids]
        )
        return int(created.id)

    def merge(self, tx: Transaction, cluster_id: int, into: int) -> int:
        """Move every face of ``cluster_id`` into ``into`` (pinned), carry its cannot-links over, remove it;
        how many faces moved."""
        moved = tx.execute(
            update(ClusterFace).where(ClusterFace.cluster_id == cluster_id).values(cluster_id=into, pinned=True)
        ).rowcount  # type: ignore[attr-defined]
        for a, b in self.apart([cluster_id], tx):
            other = b if a == cluster_id else a
            if other != into:
                self.add_apart(tx, into, other)
        tx.execute(delete(Cluster).where(Cluster.id == cluster_id))
        self.pin(tx, into)
        return int(moved or 0)

    def add_apart(self, tx: Transaction, first: int, second: int) -> None:
        """Record that two clusters are not the same person (once)."""
        a, b = sorted((int(first), int(second)))
        if tx.get(ClusterApart, (a, b)) is None:
            tx.add(ClusterApart(cluster_a=a, cluster_b=b, created_at=utcnow()))

    def remove_apart(self, tx: Transaction, first: int, second: int) -> None:
        """Forget that two clusters were marked different people."""
        a, b = sorted((int(first), int(second)))
        tx.execute(delete(ClusterApart).where(ClusterApart.cluster_a == a, ClusterApart.cluster_b == b))

    def name(self, tx: Transaction, cluster_id: int, subject_id: int) -> None:
        """Record the subject a cluster was named as."""
        tx.execute(update(Cluster).where(Cluster.id == cluster_id).values(subject_id=subject_id))
