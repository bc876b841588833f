"""Indexing and the data folder: index, status, collections, skipped, doctor, index-stats, reindex."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, app, console, fail, human_bytes, out, state
from facesearch.errors import PackError, RayUnavailable, SourceRefused
from facesearch.ingest.sources.object_store import is_object_url

if TYPE_CHECKING:
    from facesearch.engine import FaceSearch
    from facesearch.ingest.pipeline import IngestProgress


@app.command("index")
def index_command(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to add the photos to.")],
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Folders (recursive), files, and s3://bucket/prefix addresses to index."),
    ] = None,
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
    min_quality: Annotated[
        float | None,
        typer.Option(
            "--min-quality",
            min=0.0,
            max=1.0,
            help="Quality policy of the collection, kept for later runs: faces with a quality score below this "
            "(0-1) are not indexed. 0 indexes every face, each marked with its quality (the default policy).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="A CSV or JSON-lines list of files or URLs with their source page, date and legal basis "
            "(columns file|url, source_page, date, legal_basis).",
        ),
    ] = None,
    video_fps: Annotated[
        float,
        typer.Option("--video-fps", min=0.05, max=30.0, help="Frames of a video analysed a second."),
    ] = 2.0,
    video_scenes: Annotated[
        bool, typer.Option("--video-scenes", help="Also analyse the first frame of each new shot of a video.")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="A host the manifest's URLs may be fetched from (repeat for more)."),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Analyse on a Ray cluster: its address (host:6379 or ray://host:10001), or 'local' for a "
            "throwaway one. Every node must see the photos at the same paths.",
        ),
    ] = None,
) -> None:
    """Index photos and videos: detect, align, quality-check and embed every face (a video's faces tracked, one
    stored per track). Resumable; duplicates stored once."""
    paths = paths or []
    if not paths and manifest is None:
        raise fail("give folders or files to index, or --manifest")
    if manifest is not None and not manifest.is_file():
        raise fail(f"the manifest {manifest} is not a file")
    missing = [p for p in paths if not is_object_url(p) and not Path(p).exists()]
    if paths and len(missing) == len(paths) and manifest is None:
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
                [p for p in paths if p not in missing],
                collection=collection,
                subject_from_folder=subject_from_folder,
                source_url=source_url,
                legal_basis=legal_basis,
                description=description,
                workers=workers,
                on_progress=on_progress,
                min_quality=min_quality,
                manifest=manifest,
                allow_hosts=allow_host or (),
                video_fps=video_fps,
                video_scenes=video_scenes,
                ray=ray,
            )
    except (PackError, RayUnavailable) as error:
        raise fail(str(error)) from error
    except SourceRefused as error:
        raise fail(str(error)) from error
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/yellow] what was indexed is kept; run the same command to continue")
        raise typer.Exit(130) from None
    except OSError as error:
        raise fail(f"could not write to the data folder: {error}", code=FAILED) from error
    report = summary.to_dict()
    if json_output:
        typer.echo(json.dumps(report))
        return
    out.print(
        f"{report['images_indexed']} images indexed, {report['faces']} faces, "
        f"{report['duplicates']} duplicates, {report['already_done']} already done, "
        f"{report['skipped']} skipped in {report['elapsed_s']:.1f} s ({report['images_per_s'] or 0} images/s)"
    )
    if summary.min_quality is not None:
        out.print(
            f"  {summary.faces_below_quality} faces below the collection's minimum quality "
            f"{summary.min_quality:g} were not indexed"
        )
    for reason, count in sorted(summary.skipped.items()):
        out.print(f"  skipped {count} x {reason}")
    for item in summary.skipped_files[:20]:
        out.print(f"    {item['path']}: {item['reason']} ({item['detail']})")
    if len(summary.skipped_files) > 20:
        out.print(f"    ... and {len(summary.skipped_files) - 20} more (see `facesearch skipped`)")


def _pack_key(engine: FaceSearch) -> str | None:
    """The key of the pack --pack names (a name or a key), or ``None`` for every pack with faces."""
    if state.pack is None:
        return None
    keys = engine.indexes.pack_keys()
    return state.pack if state.pack in keys else engine.packs.spec(state.pack).key


@app.command("status")
def status_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """What the data folder holds: images, faces, skipped files, collections, packs."""
    with state.engine() as engine:
        report = {**engine.collections.status(engine.operator), "home": str(engine.settings.home)}
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
def collections_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """List collections with their legal basis, policies and counts."""
    with state.engine() as engine:
        rows = engine.collections.list(engine.operator)
    columns = ("name", "images", "faces", "skipped", "min_quality", "retention_days", "legal_basis", "source")
    typer.echo(
        render.listing(rows, columns, as_json=json_output, as_csv_=csv_output, empty="no collection yet: index photos")
    )


@app.command("skipped")
def skipped_command(
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 1000,
    json_output: JSON = False,
    csv_output: CSV = False,
) -> None:
    """Files that could not be used, and why."""
    with state.engine() as engine:
        rows = engine.collections.skipped(engine.operator, limit)
    typer.echo(
        render.listing(
            rows, ("path", "reason", "detail"), as_json=json_output, as_csv_=csv_output, empty="no file was skipped"
        )
    )


@app.command("doctor")
def doctor_command(
    repair: Annotated[
        bool,
        typer.Option("--repair/--check-only", help="Repair what differs (the default; audited) or only report it."),
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Check that every index matches the catalog, and repair it from the catalog if not."""
    with state.engine() as engine:
        repairs = engine.indexes.doctor(repair=repair)
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


@app.command("index-stats")
def index_stats_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """Each pack's vector index: kind (exact or compressed), factory, size, memory and disk per face."""
    try:
        with state.engine() as engine:
            report = engine.indexes.stats(_pack_key(engine))
    except (PackError, ValueError) as error:
        raise fail(str(error)) from error
    if json_output:
        typer.echo(json.dumps({"packs": report}))
        return
    if csv_output:
        columns = list(dict.fromkeys(key for row in report for key in row))
        typer.echo(render.as_csv(report, columns))
        return
    if not report:
        out.print("nothing indexed yet")
    for row in report:
        faces = row.get("vectors") or 0
        per_face = f", {row['memory_bytes'] / faces:.0f} B/face" if faces and row.get("memory_bytes") else ""
        typer.echo(
            render.wrapped(
                f"pack {row['pack']}: {row['catalog_faces']} faces in the catalog; "
                f"{row.get('backend', '-')} index {row.get('factory', '-')} ({row.get('kind', '-')}), "
                f"{faces} vectors, memory {human_bytes(row.get('memory_bytes'))}{per_face}, "
                f"disk {human_bytes(row.get('disk_bytes'))}"
            )
        )
        if row.get("rebuild_reason"):
            typer.echo(render.wrapped(f"pending rebuild: {row['rebuild_reason']}", "  "))
        if row.get("rebuild_held"):
            typer.echo(render.wrapped(f"rebuild held: {row['rebuild_held']}", "  "))


@app.command("reindex")
def reindex_command(
    factory: Annotated[
        str | None,
        typer.Option(
            "--factory",
            help="FAISS index_factory string (e.g. IVF2048,PQ64x4fs; HNSW32; Flat; auto) or, with Milvus, an "
            "index spec (e.g. HNSW,M=16,efConstruction=200). Default: keep the kind, retrain and compact.",
        ),
    ] = None,
    nprobe_fraction: Annotated[
        float | None,
        typer.Option(
            "--nprobe-fraction",
            min=0.001,
            max=1.0,
            help="Share of the inverted lists a compressed FAISS index visits (default 0.5, and 0.4 from 4,096 "
            "lists, about 34M faces): lower is faster, and misses more mates (see docs/scale.md).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Rebuild the vector index of every pack (or --pack's): retrain, compact removed faces, change kind.

    Searches by other processes continue on the old index; the new one replaces it atomically.
    """
    try:
        with state.engine() as engine:
            report = engine.indexes.reindex(factory, _pack_key(engine), nprobe_fraction=nprobe_fraction)
    except (PackError, ValueError, RuntimeError, OSError) as error:  # OSError: no room for the new copy
        raise fail(str(error)) from error
    if json_output:
        typer.echo(json.dumps({"packs": report}))
        return
    if not report:
        out.print("nothing indexed yet: nothing to rebuild")
    for row in report:
        after = row["after"]
        out.print(
            f"pack {row['pack']}: {row['before']['factory']} -> {after.get('factory')} "
            f"({after.get('vectors')} vectors) in {row['seconds']:.1f} s; memory "
            f"{human_bytes(row['before']['memory_bytes'])} -> {human_bytes(after.get('memory_bytes'))}"
        )
