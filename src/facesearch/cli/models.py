"""Model files: models list, models pull."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from facesearch.cli import render
from facesearch.cli._app import CSV, FAILED, JSON, fail, out, print_json, state

models_app = typer.Typer(help="Model files: list what is installed, download and verify more.", no_args_is_help=True)


@models_app.command("list")
def models_list_command(json_output: JSON = False, csv_output: CSV = False) -> None:
    """Known and installed model files with their licences, and every pack with what it still needs."""
    from facesearch.config import use_model_dirs
    from facesearch.vision.models import list_models
    from facesearch.vision.packs import BUILTIN_PACKS, missing_files, model_search_dirs

    settings = state.settings()
    use_model_dirs(settings)
    dirs = model_search_dirs(settings.models_dir)
    found = list_models(dirs[0], dirs[1:])
    models: list[dict[str, Any]] = [
        {
            "name": m.name,
            "filename": m.filename,
            "kind": m.kind,
            "installed": m.installed,
            "verified": m.verified,
            "licence": m.licence,
            "path": str(m.path) if m.path else None,
        }
        for m in found
    ]
    packs: list[dict[str, Any]] = []
    for name, spec in BUILTIN_PACKS.items():
        missing = missing_files(spec, settings.models_dir)
        packs.append(
            {
                "name": name,
                "available": not missing,
                "missing": missing,
                "threshold": spec.threshold,
                "description": spec.description,
            }
        )
    if json_output:
        print_json({"models_dir": str(settings.models_dir), "models": models, "packs": packs})
        return
    if csv_output:
        typer.echo(render.as_csv(models, ("name", "filename", "kind", "installed", "verified", "licence", "path")))
        return
    typer.echo(render.wrapped(f"model files (looked for in {', '.join(map(str, dirs))}):"))
    name_width = max(len(m.name) for m in found)
    for m in found:
        installed = "installed" if m.installed else "not installed"
        if m.installed and m.verified is False:
            installed = "installed, CHECKSUM MISMATCH"
        typer.echo(f"  {m.name.ljust(name_width)}  {m.kind:<9}  {installed}")
        typer.echo(render.wrapped(m.licence, " " * 6))
    out.print("\npacks:")
    for pack in packs:
        status = "available" if pack["available"] else "missing " + ", ".join(pack["missing"])
        typer.echo(render.wrapped(f"{pack['name']}: {status}", "  "))
    out.print("\nGet a missing file with `facesearch models pull NAME`.", markup=False)


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
            raise fail(str(error), code=FAILED) from error
        out.print(f"{name}: {path} (sha256 verified)")
