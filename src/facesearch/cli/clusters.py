"""Clustering the unidentified: cluster (run), clusters list|split|merge|apart|name (reviewers' corrections), and
review list|decide (the queue of decisions waiting for a person)."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, app, console, fail, out, state
from facesearch.errors import AuditError, PackError
from facesearch.search.clusters import ClusterError
from facesearch.search.review import REPORT_FIELDS

if TYPE_CHECKING:
    from facesearch.engine import FaceSearch

clusters_app = typer.Typer(help="Clusters of faces and reviewers' corrections to them.", no_args_is_help=True)


@app.command("cluster")
def cluster_command(
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", "-c", help="Cluster the faces of this collection (repeat; default: all)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Cluster every face again from scratch (reviewers' corrections kept).")
    ] = False,
    fmr: Annotated[
        float | None,
        typer.Option("--fmr", help="Link two faces when their false-match rate is at most this (default 1.8e-6)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help='One JSON object per face: {"face_id", "image", "cluster"}.')
    ] = False,
) -> None:
    """Cluster faces into identities: faces that arrived since the last run join the clusters (or form new ones);
    the first run, --full or another --fmr cluster everything again. A cluster is a lead for a person to review."""
    try:
        with state.engine() as engine:
            result = engine.clusters.run(engine.operator, collection or [], full=full, fmr=fmr)
    except (ClusterError, PackError) as error:
        raise fail(str(error)) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error
    if json_output:
        for face in result.faces:
            typer.echo(json.dumps({"face_id": face.face_id, "image": face.image, "cluster": face.cluster}))
        return
    summary = result.summary()
    how = "from scratch" if summary["full"] else f"{summary['new_faces']} new faces added"
    console.print(
        f"{summary['faces']} faces in {summary['clusters']} clusters ({how}; pairs linked at similarity >= "
        f"{summary['threshold']}, false-match rate {summary['fmr']:g}) in {summary['elapsed_s']:.1f} s. "
        "Review with `facesearch clusters list`."
    )


@clusters_app.command("list")
def clusters_list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many clusters.")] = 1000,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")] = 0,
    json_output: JSON = False,
    csv_output: CSV = False,
) -> None:
    """Clusters, risky ones first: flagged as likely two people, then the weakest links."""
    with state.engine() as engine:
        rows = [dataclasses.asdict(row) for row in engine.clusters.rows(engine.operator, limit=limit, offset=offset)]
    columns = ("id", "size", "mixed", "weakest_link", "mean_similarity", "reviewed", "subject", "mixed_reason")
    typer.echo(render.listing(rows, columns, as_json=json_output, as_csv_=csv_output, empty="no cluster yet"))


def _correct(change: Callable[[FaceSearch], object]) -> object:
    """Apply a reviewer's correction as the local operator; its refusal is a usage error."""
    try:
        with state.engine() as engine:
            return change(engine)
    except ClusterError as error:
        raise fail(str(error)) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error


@clusters_app.command("split")
def clusters_split_command(
    cluster: Annotated[int, typer.Argument(help="The cluster.")],
    faces: Annotated[list[int], typer.Argument(help="Faces to move out, into a cluster of their own.")],
) -> None:
    """Move faces out of a cluster into a new one; the two are marked different people from then on."""
    new_id = _correct(lambda engine: engine.clusters.move_out(engine.operator, cluster, faces))
    out.print(f"{len(faces)} faces moved from cluster {cluster} to new cluster {new_id}")


@clusters_app.command("merge")
def clusters_merge_command(
    cluster: Annotated[int, typer.Argument(help="The cluster to merge.")],
    into: Annotated[int, typer.Argument(help="The cluster it is merged into.")],
    despite_apart: Annotated[
        bool, typer.Option("--despite-apart", help="Merge even if the two were marked different people.")
    ] = False,
) -> None:
    """Merge two clusters: they are the same person."""
    moved = _correct(lambda engine: engine.clusters.merge(engine.operator, cluster, into, despite_apart=despite_apart))
    out.print(f"{moved} faces moved from cluster {cluster} into cluster {into}")


@clusters_app.command("apart")
def clusters_apart_command(
    first: Annotated[int, typer.Argument(help="A cluster.")],
    second: Annotated[int, typer.Argument(help="Another cluster.")],
) -> None:
    """Mark two clusters as different people: no later clustering puts them together."""
    _correct(lambda engine: engine.clusters.mark_apart(engine.operator, first, second))
    out.print(f"clusters {first} and {second} are marked different people")


@clusters_app.command("name")
def clusters_name_command(
    cluster: Annotated[int, typer.Argument(help="The cluster.")],
    label: Annotated[str, typer.Argument(help="The person's name (a subject; made when new).")],
) -> None:
    """Name a cluster: its faces are enrolled as that subject."""
    subject_id = _correct(lambda engine: engine.clusters.name(engine.operator, cluster, label))
    out.print(f"cluster {cluster} named {label!r} (subject {subject_id})")


review_app = typer.Typer(help="Decisions waiting for a person: mixed clusters, near misses, cross-match pairs.")


@review_app.command("list")
def review_list_command(
    kind: Annotated[
        str | None, typer.Option("--kind", help="mixed_cluster, near_threshold or crossmatch_pair.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Decided items too.")] = False,
    json_output: JSON = False,
    csv_output: CSV = False,
) -> None:
    """Items waiting for a decision, by kind, the most alike pairs first."""
    try:
        with state.engine() as engine:
            rows = engine.review.items(engine.operator, kind=kind, open_only=not every)
    except ClusterError as error:
        raise fail(str(error)) from error
    listed = [{**dataclasses.asdict(row), "created_at": row.created_at.isoformat()} for row in rows]
    for row in listed:
        if row["decided_at"] is not None:
            row["decided_at"] = row["decided_at"].isoformat()
    columns = ("id", "kind", "cluster_id", "face_a", "face_b", "similarity", "decision", "reason")
    typer.echo(render.listing(listed, columns, as_json=json_output, as_csv_=csv_output, empty="nothing to review"))


@review_app.command("decide")
def review_decide_command(
    item: Annotated[int, typer.Argument(help="The item.")],
    decision: Annotated[str, typer.Argument(help="same, different or unsure.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the decision).")] = None,
) -> None:
    """Decide an item: "different" keeps the two apart from then on, "same" puts them together."""
    try:
        with state.engine() as engine:
            decided = engine.review.decide(engine.operator, item, decision, note)
    except ClusterError as error:
        raise fail(str(error)) from error
    except (AuditError, LookupError) as error:
        raise fail(str(error), code=FAILED) from error
    out.print(f"item {decided.id} decided: {decided.decision}")


@review_app.command("report")
def review_report_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (.csv or .json).")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the --output suffix, else csv).")
    ] = None,
) -> None:
    """The pairs reviewers confirmed as the same person, with both photos, who decided, when and why."""
    kind = (output_format or (output.suffix.lstrip(".") if output else "csv")).lower()
    if kind not in ("csv", "json"):
        raise fail(f"unknown format {kind!r}: use csv or json")
    with state.engine() as engine:
        rows = engine.review.confirmed(engine.operator)
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if kind == "json":
            json.dump({"pairs": rows}, handle)
            handle.write("\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=REPORT_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            handle.close()
    if output:
        out.print(f"{len(rows)} confirmed pairs written to {output}")
