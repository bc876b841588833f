"""The ``facesearch`` command line: a complete product on its own. Commands call the engine only.

The command names, flags and JSON fields documented in the README are relied on by scripts: extend them,
never change them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from facesearch.config import Settings
from facesearch.engine import FaceSearch
from facesearch.ingest.pipeline import IngestProgress
from facesearch.search.service import ProbeResult
from facesearch.vision.packs import PackError

app = typer.Typer(
    help="facesearch: find a person in your photo collections from one photo. "
    "A result is a lead for a person to review, never an identification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model files: list what is installed, download and verify more.", no_args_is_help=True)
app.add_typer(models_app, name="models")

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


class State:
    """Global options shared by every command."""

    home: Path | None = None
    pack: str | None = None

    def settings(self) -> Settings:
        return Settings.load(self.home, pack=self.pack)

    def engine(self) -> FaceSearch:
        return FaceSearch(self.settings())


state = State()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.callback()
def main_options(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Data folder (default: $FACESEARCH_HOME or the user data folder)."),
    ] = None,
    pack: Annotated[
        str | None,
        typer.Option(
            "--pack", help="Model pack: yunet-mobilefacenet, scrfd-mobilefacenet, dlib, or DETECTOR+EMBEDDER."
        ),
    ] = None,
) -> None:
    """Global options."""
    state.home = home
    state.pack = pack


@app.command("index")
def index_command(
    paths: Annotated[list[Path], typer.Argument(help="Folders (recursive) and files to index.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to add the photos to.")],
    subject_from_folder: Annotated[
        bool,
        typer.Option("--subject-from-folder", help="Enrol each photo's main face under its folder's name."),
    ] = False,
    source_url: Annotated[str | None, typer.Option("--source-url", help="Where these photos come from.")] = None,
    legal_basis: Annotated[
        str | None, typer.Option("--legal-basis", help="The legal basis for holding and searching them.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="Describe the collection.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (default: all cores).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index photos: detect, align, quality-check and embed every face. Resumable; duplicates stored once."""
    missing = [str(p) for p in paths if not p.exists()]
    if len(missing) == len(paths):
        raise fail(f"nothing to index: {', '.join(missing)} not found")
    for path in missing:
        console.print(f"[yellow]warning:[/yellow] {path} not found, skipped")
    try:
        engine = state.engine()
        with (
            engine,
            Progress(
                TextColumn("[bold]indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("images  {task.fields[faces]} faces  {task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
                disable=json_output and not console.is_terminal,
            ) as progress,
        ):
            task = progress.add_task("index", total=None, faces=0, rate="")

            def on_progress(update: IngestProgress) -> None:
                rate = f"{update.faces / update.elapsed_s:.1f} faces/s" if update.elapsed_s > 0 else ""
                progress.update(
                    task,
                    total=update.files_total,
                    completed=update.files_done,
                    faces=update.faces,
                    rate=rate,
                )

            summary = engine.index(
                [p for p in paths if p.exists()],
                collection=collection,
                subject_from_folder=subject_from_folder,
                source_url=source_url,
                legal_basis=legal_basis,
                description=description,
                workers=workers,
                on_progress=on_progress,
            )
    except PackError as error:
        raise fail(str(error)) from error
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/yellow] what was indexed is kept; run the same command to continue")
        raise typer.Exit(130) from None
    except OSError as error:
        raise fail(f"could not write to the data folder: {error}") from error
    report = summary.to_dict()
    if json_output:
        typer.echo(json.dumps(report))
        return
    out.print(
        f"{report['images_indexed']} images indexed, {report['faces']} faces, "
        f"{report['duplicates']} duplicates, {report['already_done']} already done, "
        f"{report['skipped']} skipped in {report['elapsed_s']:.1f} s ({report['images_per_s'] or 0} images/s)"
    )
    for reason, count in sorted(summary.skipped.items()):
        out.print(f"  skipped {count} x {reason}")
    for item in summary.skipped_files[:20]:
        out.print(f"    {item['path']}: {item['reason']} ({item['detail']})")
    if len(summary.skipped_files) > 20:
        out.print(f"    ... and {len(summary.skipped_files) - 20} more (see `facesearch skipped`)")


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
        for column in ("rank", "similarity", "subject", "collection", "image", "face"):
            table.add_column(column)
        for c in face.candidates:
            mark = "" if c.similarity >= (result.threshold or 1.0) else " (below threshold)"
            table.add_row(
                str(c.rank),
                f"{c.similarity:.3f}{mark}",
                c.subject or "-",
                c.collection,
                c.image,
                str(c.face_id),
            )
        out.print(table)
    out.print(
        f"  pack {result.pack}; same-person threshold {result.threshold}. "
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
) -> None:
    """Search by photo (1:N): every face of each probe against the indexed faces."""
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
            service = engine.search_service()
            for probe in probes:
                result = service.search(probe, top_k=top_k, collection=collection)
                if json_output:
                    typer.echo(json.dumps(result.to_dict()))
                    sys.stdout.flush()
                else:
                    _print_probe_table(result)
    except PackError as error:
        raise fail(str(error)) from error


@app.command("verify")
def verify_command(
    image_a: Annotated[Path, typer.Argument(help="First photo.")],
    image_b: Annotated[Path, typer.Argument(help="Second photo.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify (1:1): are the largest faces of two photos the same person?"""
    try:
        with state.engine() as engine:
            result = engine.verify(image_a, image_b)
    except PackError as error:
        raise fail(str(error)) from error
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
    elif result.error:
        out.print(f"[red]error:[/red] {result.error}")
    else:
        verdict = "likely the same person" if result.same_person else "likely different people"
        out.print(
            f"similarity {result.similarity:.3f} (threshold {result.threshold}): {verdict}. "
            "This is a lead for a person to review, not an identification."
        )
        for warning in result.warnings:
            out.print(f"[yellow]warning:[/yellow] {warning}")
    if result.error:
        raise typer.Exit(1)


@app.command("status")
def status_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """What the data folder holds: images, faces, skipped files, collections, packs."""
    with state.engine() as engine:
        report = engine.status()
    if json_output:
        typer.echo(json.dumps(report))
        return
    out.print(f"data folder {report['home']}")
    out.print(
        f"{report['images']} images, {report['faces']} faces, {report['subjects']} subjects, "
        f"{report['skipped']} files skipped"
    )
    for reason, count in sorted(report["skipped_by_reason"].items()):
        out.print(f"  skipped {count} x {reason}")
    out.print(f"collections: {', '.join(report['collections']) or '-'}")
    for pack in report["packs"]:
        out.print(f"pack {pack['pack']}: {pack['faces']} faces")


@app.command("collections")
def collections_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List collections with their legal basis and counts."""
    with state.engine() as engine:
        rows = engine.catalog.collections()
    if json_output:
        typer.echo(json.dumps(rows))
        return
    table = Table()
    for column in ("name", "images", "faces", "skipped", "legal basis", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            str(row["images"]),
            str(row["faces"]),
            str(row["skipped"]),
            row["legal_basis"] or "-",
            row["source"] or "-",
        )
    out.print(table)


@app.command("skipped")
def skipped_command(
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 1000,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Files that could not be used, and why."""
    with state.engine() as engine:
        rows = engine.catalog.skipped_files(limit)
    if json_output:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        out.print(f"{row['path']}: {row['reason']} ({row['detail']})", markup=False)


@app.command("doctor")
def doctor_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Check that every index matches the catalog, and repair it from the catalog if not."""
    with state.engine() as engine:
        repairs = engine.doctor()
    report: list[dict[str, Any]] = [
        {
            "pack": r.pack,
            "catalog_faces": r.catalog_faces,
            "index_vectors_before": r.index_vectors_before,
            "added": r.added,
            "removed": r.removed,
            "problems": r.problems,
        }
        for r in repairs
    ]
    if json_output:
        typer.echo(json.dumps({"ok": all(not r["problems"] for r in report), "packs": report}))
        return
    if not report:
        out.print("nothing indexed yet: nothing to check")
    for r in report:
        verdict = "consistent" if not r["problems"] else "repaired: " + "; ".join(r["problems"])
        out.print(f"pack {r['pack']}: {r['catalog_faces']} faces in the catalog, index {verdict}")


@models_app.command("list")
def models_list_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Known and installed model files, with their licences."""
    from facesearch.vision.models import list_models
    from facesearch.vision.packs import BUILTIN_PACKS, available_packs, model_search_dirs

    settings = state.settings()
    dirs = model_search_dirs(settings.models_dir)
    rows = list_models(dirs[0], dirs[1:])
    available = {p.name for p in available_packs(settings.models_dir)}
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "models_dir": str(settings.models_dir),
                    "models": [
                        {
                            "name": m.name,
                            "filename": m.filename,
                            "kind": m.kind,
                            "installed": m.installed,
                            "verified": m.verified,
                            "licence": m.licence,
                            "path": str(m.path) if m.path else None,
                        }
                        for m in rows
                    ],
                    "packs": [{"name": n, "available": n in available} for n in BUILTIN_PACKS],
                }
            )
        )
        return
    table = Table(title=f"models in {settings.models_dir}")
    for column in ("name", "kind", "installed", "licence"):
        table.add_column(column)
    for m in rows:
        installed = "yes" if m.installed else "no"
        if m.installed and m.verified is False:
            installed = "yes (checksum mismatch!)"
        table.add_row(m.name, m.kind, installed, m.licence)
    out.print(table)
    out.print(
        "packs: " + ", ".join(f"{n} ({'available' if n in available else 'missing files'})" for n in BUILTIN_PACKS)
    )


@models_app.command("pull")
def models_pull_command(
    names: Annotated[list[str], typer.Argument(help="Registry names, e.g. yunet mobilefacenet.")],
    base_url: Annotated[
        str | None, typer.Option("--mirror", help="Fetch from this mirror folder URL instead of upstream.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Fetch from exactly this address (one name).")] = None,
) -> None:
    """Download model files and verify their sha256; a mismatch is refused and nothing is left behind."""
    from facesearch.vision.models import ModelDownloadError, pull_model

    settings = state.settings()
    for name in names:
        try:
            path = pull_model(name, settings.models_dir, base_url=base_url, url=url)
        except ModelDownloadError as error:
            raise fail(str(error), code=1) from error
        out.print(f"{name}: {path} (sha256 verified)")


def main() -> None:
    """Entry point of the ``facesearch`` command."""
    app()


if __name__ == "__main__":
    main()
