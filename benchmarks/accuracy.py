"""Accuracy benchmark on LFW (the ``lfw-dev`` half in ``../shared``), through the real ingest and search code.

    python benchmarks/accuracy.py [--pack NAME ...] [--json] [--limit-people N] [--workers N] [--misses FILE]
                                 [--keep DIR]

For each pack, in a fresh temporary data folder: open-set identification (gallery = first photo of each
person with two or more; mated probes = their other photos; non-mated probes = people with one photo) and
1:1 verification on ``pairs.tsv`` (10-fold accuracy, TAR at FAR). Prints a table, or with ``--json`` one
JSON object per pack per line. Model files are looked up in ``FACESEARCH_MODEL_DIRS``, which defaults to
``../shared/models`` when that folder exists (``FACESEARCH_SHARED`` moves ``../shared``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, machine, use_shared_models

DEFAULT_DATA = SHARED / "data" / "lfw-dev"
DEFAULT_PACKS = ("dlib", "yunet-mobilefacenet")


def run_pack(
    pack: str, data: Path, workers: int | None, limit_people: int | None, quiet: bool, keep: Path | None = None
) -> dict[str, Any]:
    """Both protocols for one pack, each in its own fresh data folder (temporary unless ``keep`` is given)."""
    from facesearch.eval.lfw import run_identification, run_verification

    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with _data_folder("id", pack, keep) as home:
        identification = run_identification(home, data / "images", pack, workers, limit_people=limit_people, log=log)
    with _data_folder("pairs", pack, keep) as home:
        verification = run_verification(
            home, data / "images", data / "pairs.tsv", pack, workers, limit_people=limit_people, log=log
        )
    return {
        "pack": identification["pack"],
        "identification": identification,
        "verification": verification,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }


@contextlib.contextmanager
def _data_folder(protocol: str, pack: str, keep: Path | None) -> Iterator[str]:
    """A fresh data folder for one protocol: temporary, or ``keep/<pack>-<protocol>`` kept for later study."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix=f"facesearch-bench-{protocol}-") as home:
            yield home
        return
    home = keep / f"{pack}-{protocol}"
    if home.exists():
        raise FileExistsError(f"{home} already exists: --keep needs fresh folders")
    home.mkdir(parents=True)
    yield str(home)


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (an undefined rate, an open threshold) as ``None``: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def _fnir(result: dict[str, Any], fpir: float) -> float | None:
    for point in result["identification"]["metrics"]["fnir_at_fpir"]:
        if math.isclose(point["fpir"], fpir):
            return float(point["fnir"])
    return None


def _far_point(result: dict[str, Any], far: float) -> dict[str, Any] | None:
    for point in result["verification"]["tar_at_far"]:
        if math.isclose(point["far"], far):
            return dict(point)
    return None


def print_table(results: list[dict[str, Any]]) -> None:
    """A readable summary of every pack's results."""
    header = (
        f"{'pack':<24} {'rank-1':>8} {'CMC@5':>8} {'FNIR@.1':>8} {'FNIR@.01':>9} {'10-fold acc':>16} "
        f"{'thr@FMR1e-3':>11} {'TAR@1e-3':>9} {'wall':>7}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        if "error" in result:
            print(f"{result['pack']:<24} error: {result['error']}")
            continue
        metrics = result["identification"]["metrics"]
        verification = result["verification"]["verification"]
        point = _far_point(result, 1e-3) or {}
        accuracy = f"{_pct(verification['accuracy_mean'])} ±{100 * verification['accuracy_std']:.2f}"
        print(
            f"{result['pack']:<24} {_pct(metrics['rank1']):>8} {_pct(metrics['cmc'][4]):>8} "
            f"{_pct(_fnir(result, 0.1)):>8} {_pct(_fnir(result, 0.01)):>9} {accuracy:>16} "
            f"{point.get('threshold', math.nan):>11.4f} {_pct(point.get('tar')):>9} {result['wall_s']:>6.0f}s"
        )
    print()
    for result in results:
        if "error" in result:
            continue
        counts = result["identification"]["counts"]
        vcounts = result["verification"]["counts"]
        times = result["identification"]["timings_s"]
        point = _far_point(result, 1e-3) or {}
        print(
            f"{result['pack']}: gallery {counts['gallery_enrolled']}/{counts['gallery_photos']} enrolled, "
            f"{counts['mated_probes']} mated probes ({counts['mated_without_face']} without a face), "
            f"{counts['nonmated_probes']} non-mated ({counts['nonmated_without_face']} without a face), "
            f"{counts['probes_with_several_faces']} probes with several faces; "
            f"identification {times['total']:.0f}s"
        )
        unresolvable = "" if point.get("resolvable", True) else " (too few impostor pairs: above the highest one)"
        print(
            f"{' ' * len(result['pack'])}  verification: {vcounts['pairs']} pairs ({vcounts['genuine_pairs']} "
            f"genuine, {vcounts['impostor_pairs']} impostor), {vcounts['failed_pairs']} with a missing face; "
            f"threshold at FMR 1e-3 {point.get('threshold', math.nan):.4f}{unresolvable}; "
            f"verification {result['verification']['timings_s']['total']:.0f}s"
        )
        shipped = result["verification"]["at_pack_threshold"]
        open_set = result["identification"]["metrics"]["at_pack_threshold"]
        print(
            f"{' ' * len(result['pack'])}  at the pack's threshold {shipped['threshold']:.3f}: verification "
            f"TAR {_pct(shipped['tar'])} FAR {_pct(shipped['far'])}; identification "
            f"FNIR {_pct(open_set['fnir'])} FPIR {_pct(open_set['fpir'])}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1 if a pack failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pack", action="append", help="pack to measure (repeatable; default: dlib and yunet)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per pack per line")
    parser.add_argument("--limit-people", type=int, default=None, help="only the first N people (quick run)")
    parser.add_argument("--workers", type=int, default=None, help="ingest processes (default: every core)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LFW folder with images/ and pairs.tsv")
    parser.add_argument("--misses", type=Path, default=None, help="write every rank-1 miss here (JSON lines)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    parser.add_argument("--keep", type=Path, default=None, help="keep each protocol's data folder under this folder")
    args = parser.parse_args(argv)

    use_shared_models()
    if not (args.data / "images").is_dir() or not (args.data / "pairs.tsv").is_file():
        print(f"LFW data not found at {args.data} (needs images/ and pairs.tsv)", file=sys.stderr)
        return 2

    results: list[dict[str, Any]] = []
    for pack in args.pack or DEFAULT_PACKS:
        try:
            result = run_pack(pack, args.data, args.workers, args.limit_people, args.quiet, args.keep)
        except Exception as error:  # one pack's failure (e.g. missing model files) must not hide the others
            result = {"pack": pack, "error": f"{type(error).__name__}: {error}"}
        misses = result.get("identification", {}).pop("rank1_misses", [])
        if args.misses is not None and misses:
            with args.misses.open("a", encoding="utf-8") as handle:
                for miss in misses:
                    handle.write(json.dumps({"pack": result["pack"], **miss}) + "\n")
        if args.json:
            print(json.dumps(_json_safe(result)), flush=True)
        results.append(result)
    if not args.json:
        print_table(results)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
