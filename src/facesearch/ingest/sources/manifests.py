"""Manifests: lists of collected media with where each came from, so that their source stays with them.

A manifest is a CSV file with a header row, or a JSON-lines file (one object per line), with these columns:

- ``file``: a local file (relative paths are read from the manifest's folder), or
- ``url``: an http(s) address, fetched only from the hosts the operator allows (:mod:`.fetching`);
- ``source_page``: the page it was published on (optional);
- ``date``: the date its source gives (ISO 8601 date or date and time; optional);
- ``legal_basis``: why it may be held and searched (optional; the collection's applies otherwise).

A row that cannot be used is returned with its reason, never dropped in silence.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facesearch.errors import SourceRefused

COLUMNS = ("file", "url", "source_page", "date", "legal_basis")
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class ManifestRow:
    """One usable row: a local ``file`` or a ``url``, and what its source says."""

    line: int
    file: Path | None
    url: str | None
    source_page: str | None
    date: datetime | None
    legal_basis: str | None


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be used: where it is, what it named (if anything) and why."""

    line: int
    named: str
    reason: str
    detail: str


def read_manifest(path: Path) -> tuple[list[ManifestRow], list[BadRow]]:
    """The rows of a CSV or JSON-lines manifest (decided by the ``.jsonl``/``.ndjson`` suffix or a first ``{``).

    Raises :class:`SourceRefused` (``bad_manifest``) when the file cannot be read as a manifest at all.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceRefused("bad_manifest", f"the manifest {path} cannot be read: {error}") from error
    as_json = path.suffix.lower() in (".jsonl", ".ndjson") or text.lstrip().startswith("{")
    records = _json_lines(text, path) if as_json else _csv_rows(text, path)
    rows: list[ManifestRow] = []
    bad: list[BadRow] = []
    for line, record in records:
        if len(rows) + len(bad) >= MAX_ROWS:
            raise SourceRefused("bad_manifest", f"the manifest has more than {MAX_ROWS} rows: split it")
        found = _row(line, record, path.parent)
        (rows if isinstance(found, ManifestRow) else bad).append(found)  # type: ignore[arg-type]
    return rows, bad


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "file" not in header and "url" not in header:
        raise SourceRefused(
            "bad_manifest", f"{path}: the header must name a 'file' or 'url' column ({', '.join(COLUMNS)})"
        )
    return [
        (number, {str(k).strip().lower(): v for k, v in record.items() if k is not None})
        for number, record in enumerate(reader, start=2)
    ]


def _json_lines(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    records: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        records.append((number, value if isinstance(value, dict) else {"__invalid__": line[:200]}))
    if not records:
        raise SourceRefused("bad_manifest", f"{path} holds no rows")
    return records


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_date(value: str) -> datetime:
    """An ISO 8601 date or date and time, as UTC (a date alone is its midnight; no zone is read as UTC)."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(line: int, record: dict[str, Any], folder: Path) -> ManifestRow | BadRow:
    if "__invalid__" in record:
        return BadRow(line, str(record["__invalid__"]), "bad_manifest_row", "the line is not a JSON object")
    file, url = _text(record.get("file")), _text(record.get("url"))
    named = file or url or ""
    if bool(file) == bool(url):
        return BadRow(line, named, "bad_manifest_row", "a row names either a file or a url")
    if url is not None and not url.lower().startswith(("http://", "https://")):
        return BadRow(line, named, "bad_manifest_row", "a url must be http:// or https://")
    date_text = _text(record.get("date"))
    date = None
    if date_text is not None:
        try:
            date = parse_date(date_text)
        except ValueError:
            return BadRow(line, named, "bad_manifest_row", f"the date {date_text!r} is not ISO 8601 (YYYY-MM-DD)")
    location = None
    if file is not None:
        location = Path(file).expanduser()
        location = location if location.is_absolute() else folder / location
    return ManifestRow(
        line=line,
        file=location.absolute() if location is not None else None,
        url=url,
        source_page=_text(record.get("source_page")),
        date=date,
        legal_basis=_text(record.get("legal_basis")),
    )
