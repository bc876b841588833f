"""Clusters of faces: run a clustering, list clusters (risky ones first), read one with its faces, the
reviewers' corrections (split, merge, apart, name), and the review queue. Admins over every collection;
audited by the services."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from facesearch.api.auth import engine_of, require
from facesearch.api.deps import Limit, Offset, PathId
from facesearch.api.schemas import (
    ClusterApartIn,
    ClusterMergeIn,
    ClusterNameIn,
    ClusterOut,
    ClusterRunIn,
    ClusterRunOut,
    ClusterSplitIn,
    ErrorBody,
    ReviewDecisionIn,
    ReviewItemOut,
)
from facesearch.catalog.clusters import ClusterRow
from facesearch.catalog.review import ReviewRow
from facesearch.governance.access import Principal

router = APIRouter(prefix="/v1", tags=["clusters"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)}
Clustering = Annotated[Principal, Depends(require("clusters"))]


def _out(row: ClusterRow, face_ids: list[int] | None = None) -> ClusterOut:
    return ClusterOut(
        id=row.id,
        size=row.size,
        weakest_link=row.weakest_link,
        mean_similarity=row.mean_similarity,
        mixed=row.mixed,
        mixed_reason=row.mixed_reason,
        reviewed=row.reviewed,
        subject=row.subject,
        face_ids=face_ids,
    )


@router.post("/clusters/run", response_model=ClusterRunOut, responses=ERRORS)
def run_clustering(request: Request, principal: Clustering, body: ClusterRunIn) -> ClusterRunOut:
    """Cluster the faces of ``collections`` (all when empty): new faces join, or everything again with
    ``full`` or another ``fmr``. Reviewers' corrections are kept."""
    run = engine_of(request).clusters.run(principal, body.collections, full=body.full, fmr=body.fmr)
    return ClusterRunOut(**run.summary())


@router.get("/clusters", response_model=list[ClusterOut], responses=ERRORS)
def list_clusters(request: Request, principal: Clustering, limit: Limit = 1000, offset: Offset = 0) -> list[ClusterOut]:
    """The clusters, risky ones first (flagged as likely two people, then the weakest links), a page at a
    time; audited."""
    return [_out(row) for row in engine_of(request).clusters.rows(principal, limit=limit, offset=offset)]


@router.get("/clusters/{cluster_id}", response_model=ClusterOut, responses=ERRORS)
def get_cluster(request: Request, principal: Clustering, cluster_id: PathId) -> ClusterOut:
    """One cluster with its faces' ids (audited)."""
    clusters = engine_of(request).clusters
    faces = clusters.faces(principal, cluster_id)
    return _out(clusters.cluster(cluster_id), faces)


@router.post("/clusters/{cluster_id}/split", response_model=ClusterOut, responses=ERRORS)
def split_cluster(request: Request, principal: Clustering, cluster_id: PathId, body: ClusterSplitIn) -> ClusterOut:
    """Move faces out into a new cluster (marked a different person); answers the new cluster."""
    clusters = engine_of(request).clusters
    new_id = clusters.move_out(principal, cluster_id, body.face_ids)
    return _out(clusters.cluster(new_id))


@router.post("/clusters/{cluster_id}/merge", response_model=ClusterOut, responses=ERRORS)
def merge_cluster(request: Request, principal: Clustering, cluster_id: PathId, body: ClusterMergeIn) -> ClusterOut:
    """Merge the cluster into ``into`` (refused for clusters marked different people unless
    ``despite_apart``); answers the merged cluster."""
    clusters = engine_of(request).clusters
    clusters.merge(principal, cluster_id, body.into, despite_apart=body.despite_apart)
    return _out(clusters.cluster(body.into))


@router.post("/clusters/{cluster_id}/apart", status_code=204, responses=ERRORS)
def mark_apart(request: Request, principal: Clustering, cluster_id: PathId, body: ClusterApartIn) -> None:
    """Record that the cluster and ``other`` are not the same person."""
    engine_of(request).clusters.mark_apart(principal, cluster_id, body.other)


@router.post("/clusters/{cluster_id}/name", response_model=ClusterOut, responses=ERRORS)
def name_cluster(request: Request, principal: Clustering, cluster_id: PathId, body: ClusterNameIn) -> ClusterOut:
    """Name the cluster: its faces are enrolled as the subject ``label`` (made when new)."""
    clusters = engine_of(request).clusters
    clusters.name(principal, cluster_id, body.label)
    return _out(clusters.cluster(cluster_id))


def _item(row: ReviewRow) -> ReviewItemOut:
    values = dataclasses.asdict(row)
    values["created_at"] = row.created_at.isoformat()
    values["decided_at"] = row.decided_at.isoformat() if row.decided_at else None
    return ReviewItemOut(**values)


@router.get("/review", response_model=list[ReviewItemOut], responses=ERRORS)
def list_review_items(
    request: Request,
    principal: Clustering,
    kind: Annotated[Literal["mixed_cluster", "near_threshold", "crossmatch_pair"] | None, Query()] = None,
    decided: Annotated[bool, Query(description="Decided items too.")] = False,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[ReviewItemOut]:
    """Items waiting for a decision (with ``decided``: all), by kind, the most alike pairs first; audited."""
    rows = engine_of(request).review.items(principal, kind=kind, open_only=not decided, limit=limit, offset=offset)
    return [_item(row) for row in rows]


@router.get("/review/confirmed", responses=ERRORS)
def confirmed_pairs(request: Request, principal: Clustering) -> dict[str, list[dict[str, Any]]]:
    """The pairs reviewers confirmed as the same person, with both faces' photos, collections and subjects,
    who decided, when and why (audited)."""
    return {"pairs": engine_of(request).review.confirmed(principal)}


@router.post("/review/{item_id}/decision", response_model=ReviewItemOut, responses=ERRORS)
def decide_review_item(
    request: Request, principal: Clustering, item_id: PathId, body: ReviewDecisionIn
) -> ReviewItemOut:
    """Decide an item (once): "different" keeps the two apart from then on, "same" puts them together."""
    return _item(engine_of(request).review.decide(principal, item_id, body.decision, body.note))
