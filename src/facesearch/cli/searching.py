"""Searching: search (1:N), verify (1:1) and crossmatch (a collection against another)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facesearch.cli import render
from facesearch.cli._app import CASE_HELP, FAILED, PURPOSE_HELP, app, console, fail, out, state
from facesearch.errors import AuditError, CaseError, ContextError, PackError

if TYPE_CHECKING:
    from facesearch.engine import FaceSearch
    from facesearch.governance.context import ActionContext
    from facesearch.search.service import VerifyResult


def _context(engine: FaceSearch, purpose: str | None, case_id: str | None) -> ActionContext:
    """The audit context of a CLI search: the local identity, with the purpose and case given."""
    try:
        return engine.searching.context(purpose=purpose, case_id=case_id)
    except ContextError as error:
        raise fail(str(error)) from error
    except CaseError as error:
        raise fail(str(error), code=FAILED) from error


def _read_probe_list(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@app.command("search")
def search_command(
    images: Annotated[list[Path] | None, typer.Argument(help="Probe photos.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="A text file with one probe path per line.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=1000, help="Candidates per face.")] = 10,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Search only this collection.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line per probe.")] = False,
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    case_id: Annotated[str | None, typer.Option("--case", help=CASE_HELP)] = None,
    max_fmr: Annotated[
        float | None,
        typer.Option("--max-fmr", min=0.0, max=1.0, help="Keep only candidates at or below this calibrated FMR."),
    ] = None,
    by_subject: Annotated[
        bool,
        typer.Option(
            "--by-subject",
            help='Also rank the enrolled people ("subjects"), each scored against the template of all their photos.',
        ),
    ] = False,
    wide: Annotated[bool, typer.Option("--wide", help="One line per candidate, with its file's whole path.")] = False,
) -> None:
    """Search by photo (1:N): every face of each probe against the indexed faces (audited).

    Exit status 0 when every probe was answered, 1 when one could not be read.
    """
    probes = [str(p) for p in images or []]
    if from_file is not None:
        try:
            probes += _read_probe_list(from_file)
        except OSError as error:
            raise fail(f"cannot read {from_file}: {error}") from error
    if not probes:
        raise fail("give at least one probe image (or --from-file)")
    unreadable = 0
    try:
        with state.engine() as engine:
            service = engine.searching.service(context=_context(engine, purpose, case_id))
            for probe in probes:
                result = service.search(
                    probe, top_k=top_k, collection=collection, max_fmr=max_fmr, by_subject=by_subject
                )
                unreadable += result.error is not None
                if json_output:
                    typer.echo(json.dumps(result.model_dump(mode="json")))
                else:
                    typer.echo(render.probe_result(result, wide=wide))
                sys.stdout.flush()
    except PackError as error:
        raise fail(str(error)) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error
    if unreadable:
        raise typer.Exit(FAILED)


@app.command("verify")
def verify_command(
    image_a: Annotated[Path, typer.Argument(help="First photo.")],
    image_b: Annotated[Path, typer.Argument(help="Second photo.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    case_id: Annotated[str | None, typer.Option("--case", help=CASE_HELP)] = None,
    fmr: Annotated[
        float,
        typer.Option(
            "--fmr", min=1e-12, max=1.0, help="Decide at this false-match rate per comparison (calibrated packs)."
        ),
    ] = 1e-3,
) -> None:
    """Verify (1:1): are the largest faces of two photos the same person? (audited)"""
    try:
        with state.engine() as engine:
            service = engine.searching.service(context=_context(engine, purpose, case_id))
            result = service.verify(image_a, image_b, fmr=fmr)
    except PackError as error:
        raise fail(str(error)) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error
    if json_output:
        typer.echo(json.dumps(result.model_dump(mode="json")))
    elif result.error:
        out.print(f"[red]error:[/red] {result.error}")
    else:
        verdict = "likely the same person" if result.same_person else "likely different people"
        out.print(
            f"similarity {result.similarity:.3f} (threshold {result.threshold}{_fmr_note(result)}): {verdict}. "
            "This is a lead for a person to review, not an identification."
        )
        for warning in result.warnings:
            out.print(f"[yellow]warning:[/yellow] {warning}")
    if result.error:
        raise typer.Exit(1)


def _fmr_note(result: VerifyResult) -> str:
    if result.decision_fmr is None or result.fmr is None:
        return ", uncalibrated pack"
    return f", decided at FMR {result.decision_fmr:g}; this score's FMR {result.fmr:.2g}"


CROSSMATCH_FIELDS = (
    "pair_rank",
    "similarity",
    "probe_face_id",
    "probe_image",
    "probe_subject",
    "rank",
    "face_id",
    "image",
    "subject",
)
"""The CSV's columns, relied on by scripts as they are; the JSON pairs also carry ``fmr`` and
``expected_false_pairs``."""


@app.command("crossmatch")
def crossmatch_command(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection whose faces are searched.")],
    against: Annotated[str, typer.Option("--against", help="Collection they are searched in.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="Candidates per face.")] = 5,
    min_similarity: Annotated[
        float | None,
        typer.Option("--min-similarity", help="Keep pairs at or above this (default: the pack's threshold)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the pairs here (.csv or .json; default: CSV on stdout)."),
    ] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the --output suffix, else csv).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Faces searched per batch.")] = 1000,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary (counts, throughput) on stdout; needs --output.")
    ] = False,
    purpose: Annotated[str | None, typer.Option("--purpose", help=PURPOSE_HELP)] = None,
    case_id: Annotated[str | None, typer.Option("--case", help=CASE_HELP)] = None,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Also put the pairs in the review queue (a pair decided before is not asked again)."
        ),
    ] = False,
    by_subject: Annotated[
        bool,
        typer.Option(
            "--by-subject",
            help="Search each subject's several photos as one template (more accurate than any one photo).",
        ),
    ] = False,
    standing: Annotated[
        bool,
        typer.Option(
            "--standing",
            help="Keep it running: faces arriving later in either collection are matched and queued for review.",
        ),
    ] = False,
) -> None:
    """Search every face of one collection against another (e.g. missing people against registered survivors).

    Writes the candidate pairs best first, with their similarity: each is a lead for a person to review.
    """
    kind = (output_format or (output.suffix.lstrip(".") if output else "csv")).lower()
    if kind not in ("csv", "json"):
        raise fail(f"unknown format {kind!r}: use csv or json")
    if json_output and output is None:
        raise fail("--json prints the summary on stdout: give --output for the pairs")
    try:
        with state.engine() as engine:
            result = engine.crossmatch.run(
                collection,
                against,
                top_k=top_k,
                min_similarity=min_similarity,
                batch=batch,
                context=_context(engine, purpose, case_id),
                queue=queue or standing,  # a standing cross-match queues its pairs, these first
                by_subject=by_subject,
            )
            if standing:
                engine.crossmatch.stand(
                    collection,
                    against,
                    top_k=top_k,
                    min_similarity=min_similarity,
                    context=_context(engine, purpose, case_id),
                    already_matched=True,
                )
    except (PackError, LookupError) as error:
        raise fail(str(error).strip("'\"")) from error
    except AuditError as error:
        raise fail(str(error), code=FAILED) from error
    rows = [
        {"pair_rank": number, **{k: v for k, v in vars(pair).items()}}
        for number, pair in enumerate(result.pairs, start=1)
    ]
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if kind == "json":
            json.dump({**result.summary(), "pairs": rows}, handle)
            handle.write("\n")
        else:
            import csv

            writer = csv.DictWriter(handle, fieldnames=CROSSMATCH_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            handle.close()
    summary = result.summary()
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"{summary['probe_faces']} faces of {collection} searched against {summary['target_faces']} of "
            f"{against}: {summary['pairs']} pairs at or above {summary['threshold']} in {summary['elapsed_s']:.1f} s "
            f"({summary['probes_per_s']} faces/s). Each pair is a lead for a person to review."
        )
