"""Erasure and what removes people: erase, forget, optout add|list|remove, retention set, purge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, app, fail, out, print_json, state

optout_app = typer.Typer(help="The opt-out list: people never to be indexed or found.", no_args_is_help=True)
retention_app = typer.Typer(help="How long each collection keeps its images.", no_args_is_help=True)


YES = Annotated[
    bool,
    typer.Option(
        "--yes", "-y", help="Do not ask for confirmation (a script is never asked: it has no terminal to answer)."
    ),
]


def confirmed(question: str, yes: bool) -> bool:
    """Whether to go on: ``--yes``, or no terminal on stdin (scripts keep working unasked), or a person's yes."""
    import sys

    if yes or not sys.stdin.isatty():
        return True
    return typer.confirm(question, default=False)


def _counts(report: dict[str, Any]) -> str:
    return (
        f"{report['images']} images, {report['faces']} faces, {report['subjects']} subjects, "
        f"{report['collections']} collections, {report['files']} files"
    )


@app.command("erase")
def erase_command(
    subject: Annotated[list[str] | None, typer.Option("--subject", help="A subject's label (repeat).")] = None,
    image: Annotated[list[str] | None, typer.Option("--image", help="An image id or indexed path (repeat).")] = None,
    face: Annotated[list[int] | None, typer.Option("--face", help="A face id (repeat).")] = None,
    collection: Annotated[list[str] | None, typer.Option("--collection", help="A whole collection (repeat).")] = None,
    source_url: Annotated[list[str] | None, typer.Option("--source-url", help="Every image from this URL.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be erased; erase nothing.")] = False,
    yes: YES = False,
) -> None:
    """Erase rows, vectors, crops and managed files; audited without keeping what was erased.

    On a terminal it first shows what would go and asks; ``--dry-run`` only shows it.
    """
    from facesearch.governance.erasure import ErasureError

    targets: list[tuple[str, list[Any]]] = [
        (kind, list(values))
        for kind, values in (
            ("subject", subject),
            ("image", image),
            ("face", face),
            ("collection", collection),
            ("source_url", source_url),
        )
        if values
    ]
    if not targets:
        raise fail("name what to erase: --subject, --image, --face, --collection or --source-url")
    reports = []
    with state.engine() as engine:
        try:
            previews = [engine.erasure.preview(engine.operator, kind, values).to_dict() for kind, values in targets]
        except ErasureError as error:
            raise fail(str(error), code=FAILED) from error
        if dry_run:
            reports = [{**preview, "dry_run": True} for preview in previews]
        else:
            if not json_output:
                for preview in previews:
                    out.print(f"would erase ({preview['target']}): {_counts(preview)}", markup=False)
            if not confirmed("Erase this for good? It cannot be undone", yes):
                raise fail("nothing erased", code=FAILED)
            for kind, values in targets:
                try:
                    reports.append(engine.erasure.erase(engine.operator, kind, values).to_dict())
                except ErasureError as error:
                    raise fail(str(error), code=FAILED) from error
    if json_output:
        print_json(reports if len(reports) > 1 else reports[0])
        return
    for r in reports:
        if dry_run:
            out.print(f"would erase ({r['target']}): {_counts(r)}; nothing erased (--dry-run)", markup=False)
        else:
            out.print(f"erased ({r['target']}): {_counts(r)}; audit record {r['audit_seq']}", markup=False)


@app.command("forget")
def forget_command(
    photo: Annotated[Path, typer.Argument(help="A photo of the person to forget.")],
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Similarity to list from (default: strict, per pack).")
    ] = None,
    confirm: Annotated[
        list[int] | None, typer.Option("--confirm", help="Erase this listed face id after review (repeat).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Forget a person: list every face above a strict threshold for review, then erase the confirmed ones."""
    with state.engine() as engine:
        limit = threshold if threshold is not None else engine.searching.forget_threshold()
        candidates, error = engine.searching.forget_candidates(photo, threshold=limit)
        if error:
            raise fail(error, code=FAILED)
        listed = {c.face_id for c in candidates}
        erased = None
        if confirm:
            unknown = sorted(set(confirm) - listed)
            if unknown:
                raise fail(f"faces {unknown} are not among those listed for this photo; nothing erased", code=FAILED)
            erased = engine.erasure.erase(engine.operator, "face", sorted(set(confirm))).to_dict()
    if json_output:
        print_json({"threshold": limit, "candidates": [c.model_dump() for c in candidates], "erased": erased})
        return
    out.print(f"{len(candidates)} faces at or above similarity {limit}; review each before erasing:")
    for c in candidates:
        out.print(f"  face {c.face_id}  {c.similarity:.3f}  {c.subject or '(no label)'}", markup=False)
        typer.echo(render.wrapped(f"{os.path.basename(c.image)}  [{c.collection}]", " " * 6))
    if erased:
        out.print(f"erased {erased['faces']} faces (audit record {erased['audit_seq']})")
    elif candidates:
        typer.echo(
            render.wrapped("erase the confirmed ones with: facesearch forget PHOTO --confirm ID [--confirm ID ...]")
        )


@optout_app.command("add")
def optout_add_command(
    photo: Annotated[Path, typer.Argument(help="A photo of the person (the photo is not kept).")],
    note: Annotated[str | None, typer.Option("--note", help="A reference for the request (no personal data).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Put a person on the opt-out list: future ingests drop their face and searches never return it."""
    from facesearch.governance.optout import OptOutError
    from facesearch.vision.image import ImageRejected

    with state.engine() as engine:
        try:
            added = engine.optouts.add_photo(engine.operator, photo, note=note)
        except (OptOutError, ImageRejected) as error:
            raise fail(str(error), code=FAILED) from error
    if json_output:
        print_json(added)
    else:
        out.print(f"opt-out {added['id']} added (packs: {', '.join(added['packs'])}); the photo was not kept")


@optout_app.command("list")
def optout_list_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """List opt-outs (ids, dates, notes; never faces)."""
    with state.engine() as engine:
        rows = engine.optouts.list(engine.operator)
    columns = ("id", "created_at", "created_by", "packs", "note")
    typer.echo(render.listing(rows, columns, as_json=json_output, as_csv_=csv_output, empty="no opt-out"))


@optout_app.command("remove")
def optout_remove_command(optout_id: Annotated[int, typer.Argument(help="The opt-out's id.")]) -> None:
    """Withdraw an opt-out."""
    from facesearch.governance.optout import OptOutError

    with state.engine() as engine:
        try:
            engine.optouts.remove(engine.operator, optout_id)
        except (OptOutError, LookupError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"opt-out {optout_id} removed")


@retention_app.command("set")
def retention_set_command(
    collection: Annotated[str, typer.Argument(help="Collection name.")],
    days: Annotated[int | None, typer.Option("--days", min=1, help="Maximum age in days; leave out to keep.")] = None,
) -> None:
    """Set (or clear) a collection's maximum age."""
    from facesearch.governance.collections import CollectionError

    with state.engine() as engine:
        try:
            engine.collections.set_retention(engine.operator, collection, days)
        except (CollectionError, LookupError) as error:
            raise fail(str(error), code=FAILED) from error
    out.print(f"{collection}: " + (f"images kept at most {days} days" if days else "images kept until erased"))


@app.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    yes: YES = False,
) -> None:
    """Erase every image older than its collection's retention (the server also does it on a schedule).

    On a terminal it first shows what would go and asks; ``--dry-run`` only shows it.
    """
    with state.engine() as engine:
        if not dry_run:
            preview = engine.retention.purge(engine.operator, dry_run=True)
            if preview["collections"] and not json_output:
                for name, counts in preview["collections"].items():
                    out.print(f"{name}: would erase {counts['images']} images past its retention", markup=False)
            if preview["collections"] and not confirmed("Erase them for good? It cannot be undone", yes):
                raise fail("nothing erased", code=FAILED)
        report = engine.retention.purge(engine.operator, dry_run=dry_run)
    if json_output:
        print_json(report)
        return
    if not report["collections"]:
        out.print("nothing past its retention")
    for name, counts in report["collections"].items():
        verb = "would erase" if dry_run else "erased"
        out.print(f"{name}: {verb} {counts['images']} images", markup=False)
