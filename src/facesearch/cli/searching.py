"""Searching: search (1:N), verify (1:1) and crossmatch (a collection against another)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from facesearch.cli._app import CASE_HELP, PURPOSE_HELP, app, console, fail, out, state
from facesearch.errors import AuditError, CaseError, ContextError, PackError

if TYPE_CHECKING:
    from facesearch.engine import FaceSearch
    from facesearch.governance.context import ActionContext
    from facesearch.search.service import ProbeResult, VerifyResult


def _context(engine: FaceSearch, purpose: str | None, case_id: str | None) -> ActionContext:
    """The audit context of a CLI search: the local identity, with the purpose and case given."""
    try:
        return engine.searching.context(purpose=purpose, case_id=case_id)
    except (ContextError, CaseError) as error:
        raise fail(str(error)) from error


def _read_probe_list(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _print_probe_table(result: ProbeResult) -> None:
    out.print(f"[bold]{result.probe}[/bold]")
    if result.error:
        out.print(f"  [red]error:[/red] {result.error}")
        return
    for warning in result.warnings:
        out.print(f"  [yellow]warning:[/yellow] {warning}")
    for number, face in enumerate(result.faces, start=1):
        x, y, w, h = face.bbox
        out.print(f"  face {number} at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f}), quality {face.quality:.2f}")
        table = Table(show_edge=False, pad_edge=False)
        for column in ("rank", "similarity", "fmr", "expected false", "subject", "collection", "image", "face"):
            table.add_column(column)
        for c in face.candidates:
            mark = "" if c.similarity >= (result.threshold or 1.0) else " (below threshold)"
            bound = "<" if c.fmr_beyond_data else ""
            table.add_row(
                str(c.rank),
                f"{c.similarity:.3f}{mark}",
                "-" if c.fmr is None else f"{bound}{c.fmr:.2g}",
                "-" if c.expected_false_matches is None else f"{bound}{c.expected_false_matches:.2g}",
                c.subject or "-",
                c.collection,
                c.image,
                str(c.face_id),
            )
        out.print(table)
        if face.subjects is not None:
            subjects = Table(show_edge=False, pad_edge=False, title="subjects (template of all their photos)")
            columns = ("rank", "subject", "similarity", "fmr (at most)", "photos", "best photo", "best similarity")
            for column in columns:
                subjects.add_column(column)
            for subject in face.subjects:
                bound = "<" if subject.fmr_beyond_data else ""
                subjects.add_row(
                    str(subject.rank),
                    subject.subject,
                    f"{subject.similarity:.3f}",
                    "-" if subject.fmr is None else f"{bound}{subject.fmr:.2g}",
                    str(subject.faces),
                    subject.image,
                    f"{subject.best_similarity:.3f}",
                )
            out.print(subjects)
    out.print(
        f"  pack {result.pack}; same-person threshold {result.threshold}. fmr: the chance that one stranger's "
        "face scores this high; expected false: strangers expected this high among the faces searched. "
        "Candidates are leads for a person to review, never identifications."
    )


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
) -> None:
    """Search by photo (1:N): every face of each probe against the indexed faces (audited)."""
    probes = [str(p) for p in images or []]
    if from_file is not None:
        try:
            probes += _read_probe_list(from_file)
        except OSError as error:
            raise fail(f"cannot read {from_file}: {error}") from error
    if not probes:
        raise fail("give at least one probe image (or --from-file)")
    try:
        with state.engine() as engine:
            service = engine.searching.service(context=_context(engine, purpose, case_id))
            for probe in probes:
                result = service.search(
                    probe, top_k=top_k, collection=collection, max_fmr=max_fmr, by_subject=by_subject
                )
                if json_output:
                    typer.echo(json.dumps(result.model_dump(mode="json")))
                    sys.stdout.flush()
                else:
                    _print_probe_table(result)
    except (PackError, AuditError) as error:
        raise fail(str(error)) from error


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
    except (PackError, AuditError) as error:
        raise fail(str(error)) from error
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
            )
    except (PackError, AuditError, LookupError) as error:
        raise fail(str(error).strip("'\"")) from error
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

            writer = csv.DictWriter(handle, fieldnames=CROSSMATCH_FIELDS)
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
