"""What every command shares: the Typer application, the global options, consoles, errors and exit codes.

Exit status, in every command: 0 when everything asked for was done (every probe answered), 1 when something
could not be done (a probe unreadable, a target not found, a refused change), 2 for usage errors (a bad option
or argument, an unknown pack, a purpose not configured). Heavy modules (the engine, SQLAlchemy, the models) are
imported inside commands, so that ``facesearch --help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch

app = typer.Typer(
    help="facesearch: find a person in your photo collections from one photo. "
    "A result is a lead for a person to review, never an identification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)

USAGE = 2
"""Exit status of a usage error (what Click uses for a bad option)."""
FAILED = 1
"""Exit status when something asked for could not be done."""

PURPOSE_HELP = (
    "Why you search, one of the configured purposes (default list: humanitarian, investigation, verification); "
    "recorded in the audit log, as 'unspecified' when left out."
)
CASE_HELP = "The case this search is for (a reference such as 2024-017); recorded in the audit log."


class State:
    """Global options shared by every command."""

    home: Path | None = None
    pack: str | None = None
    catalog_url: str | None = None
    index_url: str | None = None

    def settings(self) -> Settings:
        """The settings of the data folder the options name."""
        from facesearch.config import Settings

        return Settings.load(self.home, pack=self.pack, catalog_url=self.catalog_url, index_url=self.index_url)

    def engine(self) -> FaceSearch:
        """The data folder, opened (use as a context manager)."""
        from facesearch.engine import FaceSearch

        return FaceSearch(self.settings())


state = State()


def fail(message: str, code: int = USAGE) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    console.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(value))


def human_bytes(value: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


JSON = Annotated[bool, typer.Option("--json", help="Print as JSON.")]
CSV = Annotated[bool, typer.Option("--csv", help="Print as CSV (a header, then a row each).")]

GLOBAL_OPTIONS = ("--home", "--pack", "--catalog-url", "--index-url")


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
            help="Model pack: yunet-mobilefacenet, yunet-mobilefacenet-flip, fused (most accurate), "
            "scrfd-mobilefacenet, dlib, or DETECTOR+EMBEDDER. Default: the pack the data folder's faces were "
            "indexed with, else the best installed one.",
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
    """Global options (accepted before or after the command)."""
    if pack is not None:
        from facesearch.vision.packs import BUILTIN_PACKS

        if pack not in BUILTIN_PACKS and "+" not in pack:
            raise typer.BadParameter(
                f"unknown pack {pack!r}; the packs are {', '.join(BUILTIN_PACKS)}, or DETECTOR+EMBEDDER "
                "(see `facesearch models list`)",
                param_hint="--pack",
            )
    state.home = home
    state.pack = pack
    state.catalog_url = catalog_url
    state.index_url = index_url


def hoist_global_options(argv: list[str]) -> list[str]:
    """The arguments with the global options moved before the command, wherever they were given.

    ``facesearch search photo.jpg --home H`` then means ``facesearch --home H search photo.jpg``. Nothing after
    a ``--`` is touched, and no command has an option of the same name.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--":
            rest.extend(argv[index:])
            break
        name = argument.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in argument:
                hoisted.append(argument)
            else:
                hoisted.extend(argv[index : index + 2])
                index += 1
        else:
            rest.append(argument)
        index += 1
    return hoisted + rest
