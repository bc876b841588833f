"""The ``facesearch`` command line: a complete product on its own. Commands call the engine only.

The command names, flags and JSON fields documented in the README are relied on by scripts: extend them,
never change them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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
from facesearch.governance.audit import AuditError
from facesearch.governance.cases import CaseError
from facesearch.governance.context import ActionContext, ContextError
from facesearch.ingest.pipeline import IngestProgress
from facesearch.search.service import ProbeResult, VerifyResult
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
    catalog_url: str | None = None
    index_url: str | None = None

    def settings(self) -> Settings:
        return Settings.load(self.home, pack=self.pack, catalog_url=self.catalog_url, index_url=self.index_url)

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
            "--pack",
            help="Model pack: yunet-mobilefacenet (default), yunet-mobilefacenet-flip, fused (most accurate), "
            "scrfd-mobilefacenet, dlib, or DETECTOR+EMBEDDER.",
        ),
    ] = None,
    catalog_url: Annotated[
        str | None,
        typer.Option(
            "--catalog-url",
            help="Catalog database as an SQLAlchemy URL, e.g. postgresql://user@host/db "
            "(default: $FACESEARCH_CATALOG_URL or catalog.sqlite3 in the data folder).",
        ),
    ] = None,
    index_url: Annotated[
        str | None,
        typer.Option(
            "--index-url",
            help="Vector index: a Milvus Lite file (vectors.db) or a Milvus server (http://host:19530) "
            "(default: $FACESEARCH_INDEX_URL or FAISS files in the data folder).",
        ),
    ] = None,
) -> None:
    """Global options."""
    state.home = home
    state.pack = pack
    state.catalog_url = catalog_url
    state.index_url = index_url


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
                min_quality=min_quality,
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


PURPOSE_HELP = (
    "Why you search, one of the configured purposes (default list: humanitarian, investigation, verification); "
    "recorded in the audit log, as 'unspecified' when left out."
)
CASE_HELP = "The case this search is for (a reference such as 2024-017); recorded in the audit log."


def _context(engine: FaceSearch, purpose: str | None, case_id: str | None) -> ActionContext:
    """The audit context of a CLI search: the local identity, with the purpose and case given."""
    try:
        return engine.context(purpose=purpose, case_id=case_id)
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
            service = engine.search_service(context=_context(engine, purpose, case_id))
            for probe in probes:
                result = service.search(
                    probe, top_k=top_k, collection=collection, max_fmr=max_fmr, by_subject=by_subject
                )
                if json_output:
                    typer.echo(json.dumps(result.to_dict()))
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
            service = engine.search_service(context=_context(engine, purpose, case_id))
            result = service.verify(image_a, image_b, fmr=fmr)
    except (PackError, AuditError) as error:
        raise fail(str(error)) from error
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
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


eval_app = typer.Typer(
    help="Measure accuracy on labelled photos, through the same ingest and search code users run.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


def _read_groups(csv_path: Path) -> dict[str, str]:
    """Person -> attribute value from a CSV of two columns (person, group); a header row is skipped."""
    import csv

    groups: dict[str, str] = {}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) < 2 or not row[0].strip():
                continue
            if not groups and row[0].strip().lower() in {"person", "subject", "name"}:
                continue
            groups[row[0].strip()] = row[1].strip()
    return groups


def _eval_log(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


def _run_evaluation(
    kind: str,
    run: Callable[[str, Settings], dict[str, Any]],
    plot: Callable[[dict[str, Any], Path], Path],
    out_dir: Path,
) -> dict[str, Any]:
    """Run an evaluation in a scratch data folder of its own; write its JSON report and PNG into ``out_dir``."""
    import tempfile

    settings = state.settings()
    try:
        with tempfile.TemporaryDirectory(prefix="facesearch-eval-") as scratch:
            report: dict[str, Any] = _finite(run(scratch, settings))
    except (PackError, ValueError, OSError) as error:
        raise fail(str(error)) from error
    name = f"{kind}-" + report["pack"].replace("@", "-")
    report["files"] = {"json": str(out_dir / f"{name}.json"), "png": str(plot(report, out_dir / f"{name}.png"))}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return report


def _finite(report: Any) -> Any:
    """The report with NaN and infinities as null, so that it is strict JSON."""
    import math

    if isinstance(report, dict):
        return {key: _finite(value) for key, value in report.items()}
    if isinstance(report, list | tuple):
        return [_finite(value) for value in report]
    if isinstance(report, float) and not math.isfinite(report):
        return None
    return report


@eval_app.command("verify")
def eval_verify_command(
    pairs: Annotated[Path, typer.Option("--pairs", help="Labelled pairs (LFW pairs.tsv: fold, names, images, same).")],
    images: Annotated[Path, typer.Option("--images", help="The photos: <Person>/<photo>.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JSON report and the PNG plot.")] = Path(
        "facesearch-eval"
    ),
    workers: Annotated[int | None, typer.Option("--workers", help="Ingest processes (default: all cores).")] = None,
    limit_people: Annotated[
        int | None, typer.Option("--limit-people", help="Only the pairs of the first N people.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """1:1 verification: 10-fold accuracy (threshold chosen on 9 folds), TAR at FAR 1e-2/1e-3/1e-4, ROC and DET.

    The photos are indexed into a scratch data folder (never this one) with the chosen pack; writes
    verify-<pack>.json and verify-<pack>.png into --out.
    """
    from facesearch.eval.lfw import run_verification
    from facesearch.eval.plots import plot_verification

    if not pairs.is_file() or not images.is_dir():
        raise fail(f"need a pairs file and a folder of photos: {pairs}, {images}")
    report = _run_evaluation(
        "verify",
        lambda scratch, settings: run_verification(
            scratch,
            images,
            pairs,
            settings.pack,
            workers,
            limit_people=limit_people,
            models_dir=settings.models_dir,
            log=_eval_log,
        ),
        plot_verification,
        out_dir,
    )
    if json_output:
        typer.echo(json.dumps(report))
        return
    verification = report["verification"]
    out.print(
        f"{report['pack']}: 10-fold accuracy {100 * verification['accuracy_mean']:.2f}% "
        f"+- {100 * verification['accuracy_std']:.2f} on {report['counts']['pairs']} pairs "
        f"({report['counts']['failed_pairs']} with a photo without a face)"
    )
    for point in report["tar_at_far"]:
        tar = "n/a" if point.get("tar") is None else f"{100 * point['tar']:.2f}%"
        caveat = "" if point.get("resolvable", True) else f" (not resolvable: {point['impostors']} impostor pairs)"
        out.print(f"  TAR at FAR {point['far']:g}: {tar}{caveat}")
    out.print(f"report: {report['files']['json']}\nplot: {report['files']['png']}")


@eval_app.command("identify")
def eval_identify_command(
    images: Annotated[Path, typer.Option("--images", help="The photos: <Person>/<photo>.")],
    distractors: Annotated[
        Path | None, typer.Option("--distractors", help="A folder of photos of other people, added to the gallery.")
    ] = None,
    attributes: Annotated[
        Path | None,
        typer.Option("--attributes", help="CSV of person,group: every figure is also given per group."),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="Candidates per search (CMC length).")] = 20,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the JSON report and the PNG plot.")] = Path(
        "facesearch-eval"
    ),
    workers: Annotated[int | None, typer.Option("--workers", help="Ingest processes (default: all cores).")] = None,
    limit_people: Annotated[int | None, typer.Option("--limit-people", help="Only the first N people.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Open-set 1:N (NIST FRTE definitions): rank-1, CMC, FNIR at FPIR 0.1/0.01/0.001, DET, quality effect.

    Gallery: the first photo of each person with two or more; mated probes: their other photos; non-mated
    probes: the people with one photo. The photos are indexed into a scratch data folder (never this one);
    writes identify-<pack>.json and identify-<pack>.png into --out.
    """
    from facesearch.eval.lfw import run_identification
    from facesearch.eval.plots import plot_identification

    if not images.is_dir():
        raise fail(f"not a folder: {images}")
    if distractors is not None and not distractors.is_dir():
        raise fail(f"not a folder: {distractors}")
    groups = None
    if attributes is not None:
        if not attributes.is_file():
            raise fail(f"no such file: {attributes}")
        groups = _read_groups(attributes)
    report = _run_evaluation(
        "identify",
        lambda scratch, settings: run_identification(
            scratch,
            images,
            settings.pack,
            workers,
            limit_people=limit_people,
            top_k=top_k,
            distractors=distractors,
            groups=groups,
            models_dir=settings.models_dir,
            log=_eval_log,
        ),
        plot_identification,
        out_dir,
    )
    if json_output:
        typer.echo(json.dumps(report))
        return
    _print_open_set(report["pack"], report["metrics"])
    aside = report["quality_set_aside"]
    out.print(
        f"with the probes of poor quality set aside ({aside['set_aside']['mated']} mated, "
        f"{aside['set_aside']['nonmated']} non-mated: {aside['set_aside']['by_reason']}):"
    )
    _print_open_set("  good-quality probes", aside["kept"])
    for group, metrics in report.get("by_group", {}).items():
        _print_open_set(f"  group {group}", metrics)
    out.print(f"report: {report['files']['json']}\nplot: {report['files']['png']}")


def _print_open_set(title: str, metrics: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    cmc = metrics["cmc"]
    ranks = ", ".join(f"rank-{r} {pct(cmc[r - 1])}" for r in (1, 5, 10, 20) if r <= len(cmc))
    fnir = ", ".join(f"FNIR {pct(p['fnir'])} at FPIR {p['fpir']:g}" for p in metrics["fnir_at_fpir"])
    out.print(f"{title}: {metrics['mated']} mated, {metrics['nonmated']} non-mated probes; {ranks}; {fnir}")


@app.command("calibrate")
def calibrate_command(
    images: Annotated[Path, typer.Option("--images", help="A labelled folder: <Person>/<photos>.")],
    holdout_share: Annotated[
        float,
        typer.Option(
            "--holdout-share", min=0.0, max=0.9, help="Share of the people held out to check the calibration on."
        ),
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split of people.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Calibrate the pack's scores (similarity -> false-match rate) from a labelled folder, into the data folder.

    One photo per person (its main face); every pair of different people is an impostor pair. The people
    are split: the calibration from one part is checked on the held-out part (the observed pass rate at
    the threshold for FMR 1e-3); the calibration saved is then built from all of them.
    """
    from facesearch.search.calibration import (
        calibration_from_embeddings,
        embed_people,
        holdout_check,
        split_people,
        user_calibration_path,
    )

    if not images.is_dir():
        raise fail(f"not a folder: {images}")
    try:
        with state.engine() as engine:
            key = engine.pack().key
            names, vectors = embed_people(engine, images)
            home = engine.settings.home
    except PackError as error:
        raise fail(str(error)) from error
    if len(names) < 2:
        raise fail("need a face of at least two people to calibrate")
    report: dict[str, Any] = {"pack": key, "people": len(names)}
    if holdout_share > 0:
        calibrate_on, held_out = split_people(names, holdout_share, seed=seed)
        rows = {name: i for i, name in enumerate(names)}
        if len(calibrate_on) >= 2 and len(held_out) >= 2:
            part = calibration_from_embeddings(key, vectors[[rows[n] for n in calibrate_on]])
            report["holdout"] = {
                "calibration_people": len(calibrate_on),
                **holdout_check(part, vectors[[rows[n] for n in held_out]]),
            }
    calibration = calibration_from_embeddings(
        key, vectors, source=f"{images.name}: first photo of each of {len(names)} people"
    )
    path = calibration.save(user_calibration_path(home, key))
    report.update(
        {
            "impostor_pairs": calibration.n_pairs,
            "threshold_fmr_1e-3": round(calibration.threshold_for(1e-3), 4),
            "fmr_floor": calibration.floor,
            "saved": str(path),
        }
    )
    if json_output:
        typer.echo(json.dumps(report))
        return
    out.print(
        f"pack {key}: {len(names)} people, {calibration.n_pairs:,} impostor pairs; threshold at FMR 1e-3 "
        f"{report['threshold_fmr_1e-3']}; saved to {path}"
    )
    check = report.get("holdout")
    if check:
        verdict = "within" if check["within_factor_2"] else "NOT within"
        out.print(
            f"held-out check: calibrated on {check['calibration_people']} people, tested on "
            f"{check['held_out_people']} others ({check['held_out_pairs']:,} pairs): {check['passed']} passed "
            f"the threshold {check['threshold']}, observed FMR {check['observed_fmr']:.2e} ({verdict} a factor 2 "
            "of 1e-3)"
        )


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
    for column in ("name", "images", "faces", "skipped", "min quality", "legal basis", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            str(row["images"]),
            str(row["faces"]),
            str(row["skipped"]),
            "-" if row["min_quality"] is None else f"{row['min_quality']:g}",
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
    repair: Annotated[
        bool,
        typer.Option("--repair/--check-only", help="Repair what differs (the default; audited) or only report it."),
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Check that every index matches the catalog, and repair it from the catalog if not."""
    with state.engine() as engine:
        repairs = engine.doctor(repair=repair)
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


def _human_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@app.command("index-stats")
def index_stats_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Each pack's vector index: kind (exact or compressed), factory, size, memory and disk per face."""
    try:
        with state.engine() as engine:
            report = engine.index_stats(state.pack)
    except (PackError, ValueError) as error:
        raise fail(str(error)) from error
    if json_output:
        typer.echo(json.dumps({"packs": report}))
        return
    if not report:
        out.print("nothing indexed yet")
    for row in report:
        faces = row.get("vectors") or 0
        per_face = f", {row['memory_bytes'] / faces:.0f} B/face" if faces and row.get("memory_bytes") else ""
        out.print(
            f"pack {row['pack']}: {row['catalog_faces']} faces in the catalog; "
            f"{row.get('backend', '-')} index {row.get('factory', '-')} ({row.get('kind', '-')}), {faces} vectors, "
            f"memory {_human_bytes(row.get('memory_bytes'))}{per_face}, disk {_human_bytes(row.get('disk_bytes'))}"
        )
        if row.get("rebuild_reason"):
            out.print(f"  pending rebuild: {row['rebuild_reason']}")


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
            help="Share of the inverted lists a compressed FAISS index visits (default 0.5): lower is faster, "
            "and misses more mates (see docs/scale.md).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Rebuild the vector index of every pack (or --pack's): retrain, compact removed faces, change kind.

    Searches by other processes continue on the old index; the new one replaces it atomically.
    """
    try:
        with state.engine() as engine:
            report = engine.reindex(factory, state.pack, nprobe_fraction=nprobe_fraction)
    except (PackError, ValueError, RuntimeError) as error:
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
            f"{_human_bytes(row['before']['memory_bytes'])} -> {_human_bytes(after.get('memory_bytes'))}"
        )


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
            result = engine.crossmatch(
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


# Server and governance ------------------------------------------------------------------------------------------

users_app = typer.Typer(
    help="Accounts: users with a role (admin, investigator, reviewer, auditor).", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log: verify it, export it signed.", no_args_is_help=True)
optout_app = typer.Typer(help="The opt-out list: people never to be indexed or found.", no_args_is_help=True)
retention_app = typer.Typer(help="How long each collection keeps its images.", no_args_is_help=True)
cases_app = typer.Typer(help="Cases that searches are made for.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(optout_app, name="optout")
app.add_typer(retention_app, name="retention")
app.add_typer(cases_app, name="cases")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value))


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    ingest_roots: Annotated[
        list[Path] | None,
        typer.Option("--ingest-root", help="A folder the API may ingest from by path (repeat; adds to config)."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API (see docs/server.md); GET /health needs no key, everything else does."""
    import dataclasses

    import uvicorn

    from facesearch.api.app import create_app

    settings = state.settings()
    if ingest_roots:
        roots = (*settings.ingest_roots, *(p.expanduser().absolute() for p in ingest_roots))
        settings = dataclasses.replace(settings, ingest_roots=roots)
    try:
        application = create_app(settings)
    except PackError as error:
        raise fail(str(error)) from error
    # One process: the index lives in its memory; uvicorn's threads serve requests concurrently.
    uvicorn.run(application, host=host, port=port, log_level=log_level, server_header=False)


@users_app.command("add")
def users_add_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="admin, investigator, reviewer or auditor.")],
    collections: Annotated[
        list[str] | None,
        typer.Option("--collection", help="Limit the user to this collection (repeat); default: every one."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Add a user with a role."""
    from facesearch.governance.accounts import AccountError

    with state.engine() as engine:
        try:
            user = engine.accounts.add_user(engine.operator, name, role, collections=collections or None)
        except (AccountError, AuditError) as error:
            raise fail(str(error)) from error
    if json_output:
        _print_json(user)
    else:
        out.print(f"user {name} added with role {user['role']}; create a key with `facesearch keys create {name}`")


@users_app.command("list")
def users_list_command(json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List users, their roles, collections and keys."""
    with state.engine() as engine:
        users = engine.accounts.users(engine.operator)
    if json_output:
        _print_json(users)
        return
    table = Table()
    for column in ("name", "role", "active", "collections", "keys"):
        table.add_column(column)
    for user in users:
        keys = ", ".join(k["key_id"] + ("" if k["active"] else " (revoked)") for k in user["keys"]) or "-"
        active = "yes" if user["active"] else "no"
        table.add_row(user["name"], user["role"], active, ", ".join(user["collections"] or ["all"]), keys)
    out.print(table)


@users_app.command("revoke")
def users_revoke_command(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Disable a user and revoke all their keys (effective on the server's next request)."""
    from facesearch.governance.accounts import AccountError

    with state.engine() as engine:
        try:
            engine.accounts.revoke_user(engine.operator, name)
        except (AccountError, LookupError, AuditError) as error:
            raise fail(str(error)) from error
    out.print(f"user {name} revoked, with every key they held")


@users_app.command("grant")
def users_grant_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    collection: Annotated[str, typer.Argument(help="Collection to grant.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the collection away instead.")] = False,
) -> None:
    """Grant a user one collection (a user with grants sees only their granted collections)."""
    from facesearch.governance.accounts import AccountError

    with state.engine() as engine:
        try:
            user = (engine.accounts.ungrant if remove else engine.accounts.grant)(engine.operator, name, collection)
        except (AccountError, LookupError, AuditError) as error:
            raise fail(str(error)) from error
    out.print(f"user {name} sees: {', '.join(user['collections'] or []) or 'no collection'}")


@keys_app.command("create")
def keys_create_command(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Create an API key for a user; the key is printed alone on the last line, once."""
    from facesearch.governance.accounts import AccountError

    with state.engine() as engine:
        try:
            key_id, key = engine.accounts.create_key(engine.operator, name)
        except (AccountError, AuditError) as error:
            raise fail(str(error)) from error
    typer.echo(f"key {key_id} for {name} (shown once; send it as 'Authorization: Bearer KEY'):")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke_command(key_id: Annotated[str, typer.Argument(help="The key's id (fsk_<id>_...).")]) -> None:
    """Revoke one key (effective on the server's next request)."""

    with state.engine() as engine:
        try:
            engine.accounts.revoke_key(engine.operator, key_id)
        except (LookupError, AuditError) as error:
            raise fail(str(error)) from error
    out.print(f"key {key_id} revoked")


def _public_key_option(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read the public key {path}: {error}") from error


@audit_app.command("verify")
def audit_verify_command(
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness",
            help="A witness file (signed checkpoints written outside the data folder, or a copy of the remote "
            "log they were sent to): every record it names must still be in the chain. Repeatable; the "
            "configured audit_witness file is always read.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Recompute the audit chain; exit 1 naming the first record changed, removed or reordered."""
    from facesearch.governance.anchor import read_public_key
    from facesearch.governance.witness import read_witness

    with state.engine() as engine:
        files = list(witness or [])
        configured = engine.settings.audit_witness
        if configured is not None and configured.exists() and configured not in files:
            files.append(configured)
        checkpoints = []
        public = read_public_key(engine.audit.anchor.folder)
        for file in files:
            if public is None:
                raise fail("this data folder has no audit key yet, so no witness can be checked against it")
            try:
                checkpoints.extend(read_witness(file.read_text(encoding="utf-8", errors="replace"), public))
            except OSError as error:
                raise fail(f"cannot read the witness {file}: {error}") from error
            except ValueError as error:
                raise fail(f"{file}: {error}", code=1) from error
        result = engine.audit.verify(witness=checkpoints)
    report = {**result.to_dict(), "witness_checkpoints": len(checkpoints)}
    if json_output:
        _print_json(report)
    elif result.ok:
        against = f", {len(checkpoints)} witness checkpoints matched" if checkpoints else ""
        out.print(f"audit chain intact: {result.records} records{against}")
    else:
        first = f" (first bad record: {result.first_bad_seq})" if result.first_bad_seq is not None else ""
        out.print(f"audit chain BROKEN{first}: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export_command(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    after: Annotated[int, typer.Option("--after", help="Only records after this sequence number.")] = 0,
) -> None:
    """Write the audit log as JSON lines with a final Ed25519 signature line."""
    with state.engine() as engine:
        if output is None:
            engine.audit.export(sys.stdout, after_seq=after, actor=engine.context().actor)
            return
        with output.open("w", encoding="utf-8") as handle:
            count = engine.audit.export(handle, after_seq=after, actor=engine.context().actor)
    console.print(f"{count} records written to {output}, signed")


@audit_app.command("verify-export")
def audit_verify_export_command(
    path: Annotated[Path, typer.Argument(help="An export written by `audit export`.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The signer's public key (PEM, from `facesearch audit public-key`); default: the data folder's.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Check a signed export (signature, hashes, chain) against a public key you trust.

    Creates nothing: neither a catalog nor a data folder. Without --public-key and without a data folder
    that holds a key, it says it cannot tell who signed the file and exits 1.
    """
    from facesearch.config import default_home
    from facesearch.governance.anchor import key_fingerprint, read_public_key
    from facesearch.governance.audit import ANCHOR_FOLDER, verify_export

    public = _public_key_option(public_key)
    source = str(public_key) if public is not None else None
    if public is None:
        folder = (state.home.expanduser() if state.home is not None else default_home()).absolute() / ANCHOR_FOLDER
        try:
            public = read_public_key(folder)
        except (OSError, ValueError) as error:
            raise fail(f"cannot read the data folder's key in {folder}: {error}") from error
        source = f"the data folder's key ({folder})" if public is not None else None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read {path}: {error}") from error
    result = verify_export(lines, public_key_pem=public)
    if json_output:
        signer = key_fingerprint(public) if public is not None else None
        _print_json({**result.to_dict(), "public_key": source, "key_fingerprint": signer})
    elif result.ok:
        out.print(f"export intact: {result.records} records, signed by {source}")
    else:
        out.print(f"export NOT VERIFIED: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("public-key")
def audit_public_key_command() -> None:
    """Print the data folder's audit public key (PEM), for whoever verifies its exports and witness lines."""
    from facesearch.governance.anchor import read_public_key

    with state.engine() as engine:
        public = read_public_key(engine.audit.anchor.folder) or engine.audit.anchor.public_key_pem()
    typer.echo(public.rstrip("\n"))


@audit_app.command("witness")
def audit_witness_command() -> None:
    """Write a signed checkpoint of the chain's head to the configured witness now (e.g. from cron)."""
    with state.engine() as engine:
        try:
            line = engine.audit.witness_now()
        except AuditError as error:
            raise fail(str(error)) from error
        target = engine.audit.witness.target if engine.audit.witness is not None else ""
    out.print(f"checkpoint of record {json.loads(line)['seq']} written to {target}")


@audit_app.command("reanchor")
def audit_reanchor_command(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: you have read what `audit verify` reports.")] = False,
) -> None:
    """Accept the chain as it stands after records were lost from its end (recorded, never silent).

    Appends are refused while the signed checkpoint names a record the chain no longer holds. After you have
    understood what happened (`facesearch audit verify`), this records an `audit_reanchored` record that names
    the checkpoint it replaces, and appends go on. It cannot repair a chain broken in the middle.
    """
    if not yes:
        raise fail("re-anchoring accepts the loss of the records past the chain's end; run it with --yes")
    with state.engine() as engine:
        try:
            report = engine.audit.reanchor(actor=engine.context().actor)
        except AuditError as error:
            raise fail(str(error), code=1) from error
    out.print(
        f"audit chain re-anchored at record {report['seq']} (previous checkpoint: {report['previous_checkpoint']})"
    )


@audit_app.command("list")
def audit_list_command(
    after: Annotated[int, typer.Option("--after", help="Records after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
    action: Annotated[str | None, typer.Option("--action", help="Only this action (search, verify, erase...).")] = None,
    case_id: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
) -> None:
    """Print audit records as JSON lines."""
    with state.engine() as engine:
        for record in engine.audit.records(after_seq=after, limit=limit, action=action, case_ref=case_id):
            _print_json(record)


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
                reports.append(engine.erase(kind, values).to_dict())
            except ErasureError as error:
                raise fail(str(error), code=1) from error
    if json_output:
        _print_json(reports if len(reports) > 1 else reports[0])
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
        limit = threshold if threshold is not None else engine.forget_threshold()
        candidates, error = engine.forget_candidates(photo, threshold=limit)
        if error:
            raise fail(error, code=1)
        listed = {c.face_id for c in candidates}
        erased = None
        if confirm:
            unknown = sorted(set(confirm) - listed)
            if unknown:
                raise fail(f"faces {unknown} are not among those listed for this photo; nothing erased", code=1)
            erased = engine.erase("face", sorted(set(confirm))).to_dict()
    if json_output:
        _print_json({"threshold": limit, "candidates": [dataclasses_asdict(c) for c in candidates], "erased": erased})
        return
    out.print(f"{len(candidates)} faces at or above similarity {limit}; review each before erasing:")
    for c in candidates:
        line = f"  face {c.face_id}  {c.similarity:.3f}  {c.subject or '-'}  {c.collection}  {c.image}"
        out.print(line, markup=False)
    if erased:
        out.print(f"erased {erased['faces']} faces (audit record {erased['audit_seq']})")
    elif candidates:
        out.print("erase the confirmed ones with: facesearch forget PHOTO --confirm ID [--confirm ID ...]")


def dataclasses_asdict(value: Any) -> dict[str, Any]:
    """A dataclass as a dict (for JSON output)."""
    import dataclasses

    return dataclasses.asdict(value)


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
            added = engine.opt_out(photo, note=note)
        except (OptOutError, ImageRejected) as error:
            raise fail(str(error), code=1) from error
    if json_output:
        _print_json(added)
    else:
        out.print(f"opt-out {added['id']} added (packs: {', '.join(added['packs'])}); the photo was not kept")


@optout_app.command("list")
def optout_list_command(json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List opt-outs (ids, dates, notes; never faces)."""
    with state.engine() as engine:
        rows = engine.optouts.list(engine.operator)
    if json_output:
        _print_json(rows)
        return
    for row in rows:
        out.print(f"{row['id']}  {row['created_at']}  {row['created_by']}  {row['note'] or ''}", markup=False)


@optout_app.command("remove")
def optout_remove_command(optout_id: Annotated[int, typer.Argument(help="The opt-out's id.")]) -> None:
    """Withdraw an opt-out."""
    from facesearch.governance.optout import OptOutError

    with state.engine() as engine:
        try:
            engine.opt_out_remove(optout_id)
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
        report = engine.purge(dry_run=dry_run)
    if json_output:
        _print_json(report)
        return
    if not report["collections"]:
        out.print("nothing past its retention")
    for name, counts in report["collections"].items():
        verb = "would erase" if dry_run else "erased"
        out.print(f"{name}: {verb} {counts['images']} images")


@cases_app.command("list")
def cases_list_command(json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List cases, newest first."""
    with state.engine() as engine:
        rows = engine.cases.list(engine.operator)
    if json_output:
        _print_json(rows)
        return
    for row in rows:
        status = "open" if row["open"] else "closed"
        out.print(f"{row['case_id']}  {status}  opened by {row['opened_by']}  {row['title'] or ''}", markup=False)


@cases_app.command("close")
def cases_close_command(case_id: Annotated[str, typer.Argument(help="The case reference.")]) -> None:
    """Close a case: no more searches can be made for it."""
    with state.engine() as engine:
        try:
            engine.cases.close(engine.operator, case_id)
        except (CaseError, LookupError, AuditError) as error:
            raise fail(str(error)) from error
    out.print(f"case {case_id} closed")


@cases_app.command("show")
def cases_show_command(
    case_id: Annotated[str, typer.Argument(help="The case reference.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a case: owner, members, the faces its searches returned, and reviewers' decisions."""
    with state.engine() as engine:
        try:
            case = engine.cases.get(engine.operator, case_id)
        except LookupError as error:
            raise fail(str(error), code=1) from error
    if json_output:
        _print_json(case)
        return
    state_text = "open" if case["open"] else f"closed {case['closed_at']}"
    out.print(f"case {case['case_id']} ({state_text}), opened by {case['opened_by']}", markup=False)
    members = ", ".join(f"{m['user']} ({m['role']})" for m in case["members"]) or "none"
    out.print(f"members: {members}", markup=False)
    out.print(f"{len(case['candidates'])} candidate faces, {len(case['decisions'])} decisions")


@cases_app.command("member")
def cases_member_command(
    case_id: Annotated[str, typer.Argument(help="The case reference.")],
    user: Annotated[str, typer.Argument(help="An investigator or reviewer.")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the user off the case instead.")] = False,
) -> None:
    """Add a user to a case (investigators then search under it, reviewers decide on its candidates)."""
    with state.engine() as engine:
        try:
            if remove:
                engine.cases.remove_member(engine.operator, case_id, user)
            else:
                engine.cases.add_member(engine.operator, case_id, user)
        except (CaseError, LookupError, AuditError) as error:
            raise fail(str(error)) from error
    out.print(f"{user} {'taken off' if remove else 'added to'} case {case_id}")


def main() -> None:
    """Entry point of the ``facesearch`` command."""
    app()


if __name__ == "__main__":
    main()
