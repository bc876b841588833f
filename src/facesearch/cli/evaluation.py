"""Measuring accuracy on labelled photos: eval verify, eval identify, calibrate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from facesearch.cli import render
from facesearch.cli._app import app, console, fail, out, state
from facesearch.errors import PackError

if TYPE_CHECKING:
    from facesearch.config import Settings


eval_app = typer.Typer(
    help="Measure accuracy on labelled photos, through the same ingest and search code users run.",
    no_args_is_help=True,
)


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
    if "fairness" in report:
        _print_fairness(report["fairness"])
    out.print(f"report: {report['files']['json']}\nplot: {report['files']['png']}")


def _print_fairness(fairness: dict[str, Any]) -> None:
    """Each group's error rates at the pack's threshold, and the ratios of false-match rates."""

    def rate(value: dict[str, Any]) -> str:
        if value["rate"] is None:
            return "n/a"
        return f"{value['rate']:.2e} [{value['low']:.2e}, {value['high']:.2e}] ({value['count']}/{value['n']})"

    typer.echo(f"at the pack's threshold {fairness['threshold']:.4f}:")
    false_match, identification = fairness["false_match"], fairness["identification"]
    for group, within in false_match["within"].items():
        shown = identification.get(group, {})
        line = f"  group {group}: FMR {rate(within)} (impostor pairs within the group)"
        if shown:
            line += f"; FNIR {rate(shown['fnir'])}; FPIR {rate(shown['fpir'])}"
        typer.echo(render.wrapped(line))
    for pair, across in false_match["between"].items():
        typer.echo(render.wrapped(f"  groups {pair.replace('|', ' and ')}: FMR {rate(across)} (pairs across them)"))
    for pair, ratio in false_match["ratios"].items():
        if ratio is None:
            typer.echo(f"  FMR ratio {pair}: not measurable (no false match in the lower group)")
        else:
            interval = "" if ratio["low"] is None else f" [{ratio['low']:.2f}, {ratio['high']:.2f}]"
            typer.echo(f"  FMR ratio {pair}: {ratio['ratio']:.2f}{interval} (95%, people resampled)")


def _print_open_set(title: str, metrics: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    cmc = metrics["cmc"]
    ranks = ", ".join(f"rank-{r} {pct(cmc[r - 1])}" for r in (1, 5, 10, 20) if r <= len(cmc))
    fnir = "; ".join(_fnir_point(p, metrics["nonmated"], pct) for p in metrics["fnir_at_fpir"])
    typer.echo(
        render.wrapped(f"{title}: {metrics['mated']} mated, {metrics['nonmated']} non-mated probes; {ranks}; {fnir}")
    )


def _fnir_point(point: dict[str, Any], nonmated: int, pct: Callable[[float | None], str]) -> str:
    """One FNIR-at-FPIR figure, with the caveat ``eval verify`` gives: an FPIR below one false positive among
    the non-mated probes cannot be measured, only bounded."""
    text = f"FNIR {pct(point['fnir'])} at FPIR {point['fpir']:g}"
    if not point.get("resolvable", True):
        text += f" (not resolvable: {nonmated} non-mated probes)"
    return text


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
    from facesearch.eval.calibrate import calibration_from_embeddings, embed_people, holdout_check, split_people
    from facesearch.search.calibration import user_calibration_path

    if not images.is_dir():
        raise fail(f"not a folder: {images}")
    try:
        with state.engine() as engine:
            key = engine.packs.pack().key
            names, vectors = embed_people(engine.packs, images)
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
