"""The REST API: serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facesearch.cli._app import app, fail, state
from facesearch.errors import PackError


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

    import uvicorn

    from facesearch.api.app import create_app

    settings = state.settings()
    if ingest_roots:
        roots = (*settings.ingest_roots, *(p.expanduser().absolute() for p in ingest_roots))
        settings = settings.with_changes(ingest_roots=roots)
    try:
        application = create_app(settings)
    except PackError as error:
        raise fail(str(error)) from error
    # One process: the index lives in its memory; uvicorn's threads serve requests concurrently.
    uvicorn.run(application, host=host, port=port, log_level=log_level, server_header=False)
