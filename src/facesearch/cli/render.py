"""Plain text for people: search results and listings that fit 80 columns and a pipe.

Nothing a reviewer needs is cut: a candidate takes two lines (scores and label, then the file name, its
collection and face id) instead of a table whose columns a narrow terminal would truncate; ``--wide`` puts a
candidate on one line with the file's whole path. Listings come as aligned columns (a long value makes its
column wider, never shorter), as JSON (``--json``) or as CSV (``--csv``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesearch.search.results import Candidate, ProbeResult, SubjectCandidate


def width() -> int:
    """The terminal's width, or 80 for a pipe or file."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def wrapped(text: str, indent: str = "") -> str:
    """``text`` wrapped to the width, every line indented."""
    return textwrap.fill(text, width=width(), initial_indent=indent, subsequent_indent=indent)


def _rate(value: float | None, bound: bool | None) -> str:
    if value is None:
        return "-"
    return f"{'<' if bound else ''}{value:.2g}"


CANDIDATE_HEADER = f"{'#':>4}  score  {'fmr':<8}  {'expected':<8}  subject"


def _place(image: str, collection: str, face_id: int, wide: bool, indent: int) -> list[str]:
    """Where a face is: its file's name (whole path with ``wide``), collection and face id, on one line when it
    fits the width, else the file name alone on its line (never cut) and the rest below it."""
    name = image if wide else os.path.basename(image)
    where = f"[{collection}, face {face_id}]"
    if wide or indent + len(name) + 2 + len(where) <= width():
        return [f"{name}  {where}"]
    return [name, where]


def _candidate_lines(c: Candidate, wide: bool) -> list[str]:
    fmr = _rate(c.fmr, c.fmr_beyond_data)
    expected = _rate(c.expected_false_matches, c.fmr_beyond_data)
    scores = f"{c.rank:>4}  {c.similarity:.3f}  {fmr:<8}  {expected:<8}  {c.subject or '(no label)'}"
    place = _place(c.image, c.collection, c.face_id, wide, 8)
    if wide:
        return [f"{scores}  {place[0]}"]
    return [scores, *(f"{'':6}{line}" for line in place)]


def _subject_lines(s: SubjectCandidate, wide: bool) -> list[str]:
    first = f"{s.rank:>4}  {s.similarity:.3f}  {'<=' + _rate(s.fmr, s.fmr_beyond_data):<8}  {'':<8}  {s.subject}"
    best = f"{s.faces} photos; closest {s.best_similarity:.3f}:"
    name = s.image if wide else os.path.basename(s.image)
    if wide:
        return [f"{first}  ({best} {name})"]
    return [first, f"{'':6}{best}", f"{'':6}{name}"]


def probe_result(result: ProbeResult, *, wide: bool = False) -> str:
    """A search's answer for one probe, for people."""
    lines = [result.probe]
    if result.error:
        return "\n".join([*lines, f"  error: {result.error}"])
    lines.extend(wrapped(f"warning: {warning}", "  ") for warning in result.warnings)
    threshold = result.threshold if result.threshold is not None else 1.0
    for number, face in enumerate(result.faces, start=1):
        x, y, w, h = face.bbox
        quality = f"quality {face.quality:.2f}" + (
            f" ({', '.join(face.quality_reasons)})" if face.quality_reasons else ""
        )
        lines.append(f"  face {number} at ({x:.0f}, {y:.0f}), {w:.0f}x{h:.0f} px, {quality}")
        if not face.candidates:
            lines.append("    no candidate" + (": nothing was searched" if not result.faces_searched else ""))
        else:
            lines.append(f"  {CANDIDATE_HEADER}")
        below = False
        for candidate in face.candidates:
            if candidate.similarity < threshold and not below:
                below = True
                lines.append(f"    -- below the same-person threshold {threshold}: most likely other people --")
            lines.extend(f"  {line}" for line in _candidate_lines(candidate, wide))
        if face.subjects is not None:
            lines.append("    subjects, by the template of all their photos:")
            for subject in face.subjects:
                lines.extend(f"  {line}" for line in _subject_lines(subject, wide))
    searched = f" among {result.faces_searched} faces" if result.faces_searched is not None else ""
    lines.append(
        wrapped(
            f"pack {result.pack}, same-person threshold {result.threshold}{searched}. score: cosine similarity; "
            "fmr: the chance that one stranger's face scores this high; expected: how many strangers a gallery "
            "this size puts this high. Candidates are leads for a person to review, never identifications.",
            "  ",
        )
    )
    return "\n".join(lines)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns with a header; a value is never cut. When the columns would not fit the terminal, each
    row becomes a block of ``column  value`` lines instead (as psql's expanded display does)."""
    cells = [[str(column) for column in columns]] + [
        ["-" if row.get(column) is None else _cell(row.get(column)) for column in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in cells]
    if max(len(line) for line in lines) <= width():
        return "\n".join(lines)
    label = max(len(str(column)) for column in columns)
    blocks = [
        "\n".join(f"{str(c).ljust(label)}  {v}" for c, v in zip(columns, line, strict=True)) for line in cells[1:]
    ]
    return "\n\n".join(blocks)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def as_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The rows as CSV with a header (lists joined with ``;``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                ";".join(map(str, row[c]))
                if isinstance(row.get(c), (list, tuple))
                else ("" if row.get(c) is None else row[c])
                for c in columns
            ]
        )
    return buffer.getvalue().rstrip("\n")


def listing(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool, as_csv_: bool, empty: str) -> str:
    """A listing command's output: JSON, CSV, or columns for people (``empty`` when there are no rows)."""
    if as_json:
        return json.dumps(list(rows))
    if as_csv_:
        return as_csv(rows, columns)
    return table(rows, columns) if rows else empty
