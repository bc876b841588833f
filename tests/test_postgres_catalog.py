"""The catalog on PostgreSQL as well as SQLite: a CLI round trip and the URL forms users type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesearch.catalog.store import normalise_catalog_url
from facesearch.cli import app

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stdout)."""
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith(("{", "["))]


def test_cli_round_trip_on_each_catalog(catalog_url: str, home: Path, photo_folder: Path) -> None:
    base = ["--home", str(home), "--pack", "dlib", "--catalog-url", catalog_url]
    code, output = cli(*base, "index", str(photo_folder), "-c", "demo", "--subject-from-folder", "--workers", "1")
    assert code == 0, output
    code, output = cli(*base, "status", "--json")
    status = json_lines(output)[0]
    assert (status["images"], status["skipped"], status["collections"]) == (4, 2, ["demo"])
    faces = status["faces"]
    assert faces >= 3

    # The same folder again: nothing new (resume and de-duplication work on either database).
    code, output = cli(*base, "index", str(photo_folder), "-c", "demo", "--workers", "1", "--json")
    again = json_lines(output)[-1]
    assert (again["already_done"], again["faces"]) == (6, 0)

    code, output = cli(*base, "search", str(photo_folder / "Eileen_Collins" / "crop.png"), "--json")
    best = json_lines(output)[0]["faces"][0]["candidates"][0]
    assert (best["subject"], best["collection"]) == ("Eileen_Collins", "demo") and best["similarity"] > 0.99

    code, output = cli(*base, "doctor", "--json")
    assert json_lines(output)[0]["ok"] is True
    # Only the SQLite variant keeps its catalog in a file; the server variant leaves none in the data folder.
    assert not (home / "catalog.sqlite3").exists()


def test_catalog_url_from_the_environment(
    catalog_url: str, home: Path, photo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACESEARCH_CATALOG_URL", catalog_url)
    code, output = cli("--home", str(home), "--pack", "dlib", "index", str(photo_folder / "Eileen_Collins"), "-c", "e")
    assert code == 0, output
    code, output = cli("--home", str(home), "--pack", "dlib", "collections", "--json")
    assert [c["name"] for c in json_lines(output)[0]] == ["e"]
    assert not (home / "catalog.sqlite3").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/c.sqlite3", "sqlite:////tmp/c.sqlite3"),
    ],
)
def test_postgres_urls_use_the_installed_driver(given: str, expected: str) -> None:
    assert normalise_catalog_url(given) == expected
