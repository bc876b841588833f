"""Model files: models list, models pull."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from facesearch.cli._app import fail, out, state

models_app = typer.Typer(help="Model files: list what is installed, download and verify more.", no_args_is_help=True)


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
