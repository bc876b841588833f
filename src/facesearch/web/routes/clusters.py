"""Clusters and the review queue, for administrators: run a clustering, see the risky clusters first with
their faces, correct them (split, merge, apart, name), and decide what the queue asks (same / different /
unsure, with a note). Every read of faces and every decision is audited by the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import Response

from facesearch.web.pages import EXPECTED_ERRORS, Page, error_status, signed_in

router = APIRouter(include_in_schema=False)

CLUSTERING = ("clusters",)
SHOWN_CLUSTERS = 60
"""Clusters listed on the page (risky ones first); the rest are reached by number."""
FACES_PER_CLUSTER = 6
SHOWN_ITEMS = 30


def _overview(
    current: Page, *, status: int = 200, error: str | None = None, ran: dict[str, Any] | None = None
) -> Response:
    engine = current.engine
    principal = current.principal
    rows = [row for row in engine.clusters.rows(principal, limit=SHOWN_CLUSTERS) if row.size > 1]
    items = engine.review.items(principal, limit=SHOWN_ITEMS)
    faces_of = engine.clusters.sample_faces(principal, [row.id for row in rows], FACES_PER_CLUSTER)
    wanted = [f for faces in faces_of.values() for f in faces]
    wanted += [f for item in items for f in (item.face_a, item.face_b) if f is not None]
    crops = {details.face_id: crop for details, crop in engine.reads.grid(principal, wanted)} if wanted else {}
    return current.render(
        "clusters.html",
        status=status,
        rows=rows,
        faces_of=faces_of,
        items=items,
        crops=crops,
        error=error,
        ran=ran,
        collections=engine.collections.names(principal),
    )


@router.get("/clusters")
def clusters(current: Annotated[Page, Depends(signed_in(*CLUSTERING))]) -> Response:
    """The review queue and the clusters, risky ones first."""
    return _overview(current)


@router.post("/clusters")
def run(
    current: Annotated[Page, Depends(signed_in(*CLUSTERING))],
    csrf: Annotated[str, Form()] = "",
    collection: Annotated[list[str] | None, Form()] = None,
    full: Annotated[bool, Form()] = False,
) -> Response:
    """Cluster the faces of the chosen collections (all when none): new faces join, or all again."""
    current.check_form(csrf)
    try:
        result = current.engine.clusters.run(current.principal, collection or [], full=full)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _overview(current, status=status, error=message)
    return _overview(current, ran=result.summary())


@router.get("/review/confirmed")
def confirmed(current: Annotated[Page, Depends(signed_in(*CLUSTERING))]) -> Response:
    """The pairs reviewers confirmed as the same person, with both faces: the printable report (audited)."""
    engine = current.engine
    pairs = engine.review.confirmed(current.principal)
    wanted = [f for pair in pairs for f in (pair["face_a"], pair["face_b"]) if f is not None]
    crops = {details.face_id: crop for details, crop in engine.reads.grid(current.principal, wanted)} if wanted else {}
    return current.render("review_report.html", pairs=pairs, crops=crops)


@router.post("/review/{item_id}")
def decide(
    item_id: int,
    current: Annotated[Page, Depends(signed_in(*CLUSTERING))],
    decision: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Decide an item of the queue."""
    current.check_form(csrf)
    try:
        current.engine.review.decide(current.principal, item_id, decision, note)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _overview(current, status=status, error=message)
    return current.redirect("/clusters")


def _cluster_page(current: Page, cluster_id: int, *, status: int = 200, error: str | None = None) -> Response:
    engine = current.engine
    faces = engine.clusters.faces(current.principal, cluster_id)
    row = engine.clusters.cluster(cluster_id)
    grid = engine.reads.grid(current.principal, faces)
    return current.render(
        "cluster.html",
        status=status,
        cluster=row,
        faces=[(details, crop) for details, crop in grid],
        error=error,
    )


@router.get("/clusters/{cluster_id}")
def cluster(cluster_id: int, current: Annotated[Page, Depends(signed_in(*CLUSTERING))]) -> Response:
    """One cluster: its faces, how sure it is, and the corrections."""
    return _cluster_page(current, cluster_id)


@router.post("/clusters/{cluster_id}")
def correct(
    cluster_id: int,
    current: Annotated[Page, Depends(signed_in(*CLUSTERING))],
    action: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()] = "",
    face_ids: Annotated[list[int] | None, Form()] = None,
    other: Annotated[int | None, Form()] = None,
    label: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Split (move the ticked faces out), merge into another, mark apart from another, or name."""
    current.check_form(csrf)
    clusters = current.engine.clusters
    principal = current.principal
    try:
        if action == "split":
            new_id = clusters.move_out(principal, cluster_id, face_ids or [])
            return current.redirect(f"/clusters/{new_id}")
        if action in ("merge", "apart") and other is None:
            return _cluster_page(current, cluster_id, status=422, error=f"name the other cluster to {action} with")
        if action == "merge" and other is not None:
            clusters.merge(principal, cluster_id, other)
            return current.redirect(f"/clusters/{other}")
        if action == "apart" and other is not None:
            clusters.mark_apart(principal, cluster_id, other)
        elif action == "name":
            clusters.name(principal, cluster_id, label)
        else:
            return _cluster_page(current, cluster_id, status=422, error=f"unknown correction {action!r}")
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _cluster_page(current, cluster_id, status=status, error=message)
    return current.redirect(f"/clusters/{cluster_id}")
