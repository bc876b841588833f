"""Erasure and what removes people: erase, forget, optout add|list|remove, retention set, purge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facesearch.cli._app import app, fail, out, print_json, state

optout_app = typer.Typer(help="The opt-out list: people never to be indexed or found.", no_args_is_help=True)
retention_app = typer.Typer(help="How long each collection keeps its images.", no_args_is_help=True)


@app.command("erase")
def erase_command(
    subject: Annotated[list[str] | None, typer.Option("--subject", help="A subject's label (repeat).")] = None,
    image: Annotated[list[str] | None, typer.Option("--image", help="An image id or indexed path (repeat).")] = None,
    face: Annotated[list[int] | None, typer.Option("--face", help="A face id (repeat).")] = None,
    collection: Annotated[list[str] | None, typer.Option("--collection", help="A whole collection (repeat).")] = None,
    source_url: Annotated[list[str] | None, typer.Option("--source-url", help="Every image from this URL.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Erase rows, vectors, crops and managed files; audited without keeping what was erased."""
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
        for kind, values in targets:
            try:
                reports.append(engine.erasure.erase(engine.operator, kind, values).to_dict())
            except ErasureError as error:
                raise fail(str(error), code=1) from error
    if json_output:
        print_json(reports if len(reports) > 1 else reports[0])
        return
    for r in reports:
        out.print(
            f"erased ({r['target']}): {r['images']} images, {r['faces']} faces, {r['subjects']} subjects, "
            f"{r['collections']} collections, {r['files']} files; audit record {r['audit_seq']}"
        )


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
            raise fail(error, code=1)
        listed = {c.face_id for c in candidates}
        erased = None
        if confirm:
            unknown = sorted(set(confirm) - listed)
            if unknown:
                raise fail(f"faces {unknown} are not among those listed for this photo; nothing erased", code=1)
            erased = engine.erasure.erase(engine.operator, "face", sorted(set(confirm))).to_dict()
    if json_output:
        print_json({"threshold": limit, "candidates": [c.model_dump() for c in candidates], "erased": erased})
        return
    out.print(f"{len(candidates)} faces at or above similarity {limit}; review each before erasing:")
    for c in candidates:
        line = f"  face {c.face_id}  {c.similarity:.3f}  {c.subject or '-'}  {c.collection}  {c.image}"
        out.print(line, markup=False)
    if erased:
        out.print(f"erased {erased['faces']} faces (audit record {erased['audit_seq']})")
    elif candidates:
        out.print("erase the confirmed ones with: facesearch forget PHOTO --confirm ID [--confirm ID ...]")


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
            raise fail(str(error), code=1) from error
    if json_output:
        print_json(added)
    else:
        out.print(f"opt-out {added['id']} added (packs: {', '.join(added['packs'])}); the photo was not kept")


@optout_app.command("list")
def optout_list_command(json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List opt-outs (ids, dates, notes; never faces)."""
    with state.engine() as engine:
        rows = engine.optouts.list(engine.operator)
    if json_output:
        print_json(rows)
        return
    for row in rows:
        out.print(f"{row['id']}  {row['created_at']}  {row['created_by']}  {row['note'] or ''}", markup=False)


@optout_app.command("remove")
def optout_remove_command(optout_id: Annotated[int, typer.Argument(help="The opt-out's id.")]) -> None:
    """Withdraw an opt-out."""
    from facesearch.governance.optout import OptOutError

    with state.engine() as engine:
        try:
            engine.optouts.remove(engine.operator, optout_id)
        except (OptOutError, LookupError) as error:
            raise fail(str(error), code=1) from error
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
            raise fail(str(error)) from error
    out.print(f"{collection}: " + (f"images kept at most {days} days" if days else "images kept until erased"))


@app.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Erase every image older than its collection's retention (the server also does it on a schedule)."""
    with state.engine() as engine:
        report = engine.retention.purge(engine.operator, dry_run=dry_run)
    if json_output:
        print_json(report)
        return
    if not report["collections"]:
        out.print("nothing past its retention")
    for name, counts in report["collections"].items():
        verb = "would erase" if dry_run else "erased"
        out.print(f"{name}: {verb} {counts['images']} images")
