"""Provenance: where a picture has appeared, and since when (near-duplicates and other pictures of its faces)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CASE_HELP, FAILED, PURPOSE_HELP, app, fail, state
from facesearch.errors import AuditError, CaseError, ContextError, PackError

if TYPE_CHECKING:
    from facesearch.search.provenance import ProvenanceResult


@app.command("provenance")
def provenance_command(
    image: Annotated[Path | None, typer.Argument(help="The picture to trace.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    backfill: Annotated[
        bool,
        typer.Option(
            "--backfill",
            help="Instead of tracing a picture: fingerprint the pictures indexed before fingerprints existed "
            "(their PDQ hashes, EXIF and content credentials), so that lookups find them.",
        ),
    ] = False,
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    case_id: Annotated[str | None, typer.Option("--case", help=CASE_HELP)] = None,
) -> None:
    """Where has this picture appeared, and since when: every stored copy of it (re-encoded, resized, cropped,
    framed, mirrored, written over) by first-known date, with its source; then other pictures of the same
    face(s). Audited as a search. Exit status 1 when the picture cannot be read.

    JSON (relied on by scripts): {"probe", "duplicates": [{"image", "distance", "first_known", "source_url",
    ...}] nearest first, "same_faces": [...], "timeline", "probe_facts", ...}.
    """
    if backfill:
        with state.engine() as engine:
            counts = engine.provenance.backfill(engine.operator)
        typer.echo(
            json.dumps(counts)
            if json_output
            else f"{counts['fingerprinted']} pictures fingerprinted, {counts['unreadable']} could not be read"
        )
        return
    if image is None:
        raise fail("give the picture to trace (or --backfill)")
    try:
        with state.engine() as engine:
            try:
                context = engine.searching.context(purpose=purpose, case_id=case_id)
            except ContextError as error:
                raise fail(str(error)) from error
            except CaseError as error:
                raise fail(str(error), code=FAILED) from error
            result = engine.provenance.lookup(image, context=context, probe_name=str(image))
    except PackError as error:
        raise fail(str(error)) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error
    if json_output:
        typer.echo(json.dumps(result.model_dump(mode="json")))
    else:
        typer.echo(describe(result))
    if result.error is not None:
        raise typer.Exit(FAILED)


def describe(result: ProvenanceResult) -> str:
    """A lookup's answer for people: the probe's own claims, the copies by date, then the same faces."""
    lines = [result.probe]
    if result.error:
        return "\n".join([*lines, f"  error: {result.error}"])
    facts = result.probe_facts
    claims = [
        f"captured {facts.captured_at} (EXIF)" if facts.captured_at else None,
        f"camera {facts.camera}" if facts.camera else None,
        f"position {facts.latitude}, {facts.longitude}" if facts.latitude is not None else None,
    ]
    if any(claims):
        lines.append("  the file claims: " + "; ".join(c for c in claims if c))
    if facts.content_credentials:
        lines.append("  " + credentials_line(facts.content_credentials))
    lines.extend(render.wrapped(f"warning: {warning}", "  ") for warning in result.warnings)
    by_id = {d.image_id: d for d in result.duplicates}
    if not result.duplicates:
        lines.append(f"  no copy of this picture among {result.pictures_searched} pictures")
    else:
        lines.append(f"  the same picture, {len(result.duplicates)} stored copies, earliest first:")
        rows = []
        for image_id in result.timeline:
            copy = by_id[image_id]
            rows.append(
                {
                    "first known": f"{(copy.first_known or '?')[:19]} ({copy.first_known_from})",
                    "distance": str(copy.distance) + (" mirrored" if copy.mirrored else ""),
                    "found by": copy.match,
                    "collection": copy.collection,
                    "source": copy.source_url or copy.source_page or "",
                    "picture": copy.image,
                }
            )
        lines.extend(f"    {line}" for line in render.table(rows, list(rows[0])).splitlines())
        for image_id in result.timeline:
            credentials = by_id[image_id].content_credentials
            if credentials:
                lines.append(f"    picture {image_id}: {credentials_line(credentials)}")
    if result.same_faces:
        lines.append("  other pictures of the same face(s) (leads to review, not the same picture):")
        rows = [
            {
                "face": str(s.probe_face),
                "score": f"{s.similarity:.3f}",
                "fmr": "" if s.fmr is None else f"{s.fmr:.1e}",
                "first known": (s.first_known or "?")[:19],
                "collection": s.collection,
                "picture": s.image,
            }
            for s in result.same_faces
        ]
        lines.extend(f"    {line}" for line in render.table(rows, list(rows[0])).splitlines())
    lines.append(
        render.wrapped(
            "distance: PDQ bits (of 256) that differ, after aligning the pictures when that brought them nearer; "
            "the first-known date is the capture date the file claims (EXIF), else its source's date, else when "
            "it was ingested. EXIF and unvalidated content credentials are claims, not proof.",
            "  ",
        )
    )
    return "\n".join(lines)


def credentials_line(credentials: dict[str, object]) -> str:
    """Content credentials in one line, their validation state first (a manifest that fails proves nothing)."""
    state_text = str(credentials.get("validation") or "unknown")
    parts = [f"content credentials: {state_text.upper()}"]
    for key in ("signer", "claim_generator", "device", "signed_at"):
        if credentials.get(key):
            parts.append(f"{key.replace('_', ' ')} {credentials[key]}")
    actions = credentials.get("actions")
    if isinstance(actions, list) and actions:
        parts.append("actions " + ", ".join(str(a) for a in actions[:8]))
    return "; ".join(parts)
