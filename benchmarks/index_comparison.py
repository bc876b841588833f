"""Side by side on the same vectors: facesearch's index, FAISS HNSW, usearch, the Milvus server's HNSW and its
inverted file (IVF_SQ8).

    python benchmarks/index_comparison.py --faces 1000000 [--target 0.995] [--skip hnsw --skip usearch] [--json]
        [--hnsw-ef-construction 80] [--usearch-expansion-add 128]

The vectors are those of ``benchmarks/scale.py``: the first photo of each of the 2,878 lfw-dev people plus
``--faces`` face-like distractors generated from a model fitted to real embeddings; the probes are the other
3,530 lfw-dev photos, all mated. Every contender is built on the same vectors, in the same run, then searched
with one probe at a time (top 10). Each has a breadth knob (facesearch and Milvus IVF: the share of inverted
lists visited; HNSW: ``efSearch``; usearch: ``expansion_search``; Milvus HNSW: ``ef``); the knob is swept and
each contender is reported at the narrowest setting whose mate recall reaches ``--target`` (the share of the
probes whose exact rank-1 result is their mate for which the index also returns it at rank 1), so that
latencies are compared at equal recall. Also per contender: build time (empty to searchable), and memory per face:

- facesearch, FAISS HNSW, usearch: the anonymous memory a fresh process gains by loading the saved index
  (facesearch keeps its full vectors in a memory-mapped file, not counted; the graphs hold theirs in memory);
- Milvus: the server's resident memory once the collection is loaded, less what it held before.

The Milvus server is PyPI's ``milvus`` 2.3.5 standalone (``.venv-milvus``, made by ``make test``), searched
through facesearch's ``MilvusIndex`` (gRPC on the same machine). HNSW searches one probe on one core; the
facesearch index deals a probe's lists out to every core. Runs by hand, not in CI; figures go to
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine
from scale import _exact_top1, fit_face_model, generate, lfw_embeddings, lfw_split

TOP_K = 10
CORES = os.cpu_count() or 1  # named, since OpenMP reads 0 threads as one, not as every core
SWEEP_PROBES = 300  # single-probe timings per sweep step; the chosen setting is timed on every probe
USEARCH_SLICE = 500_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
USEARCH_EXPANSION_ADD = 128
MILVUS_M = 16
MILVUS_EF_CONSTRUCTION = 200
MILVUS_SEGMENT_BYTES = 512 * 2**20  # the server's dataCoord.segment.maxSize: one index is built per segment
BREADTHS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


@dataclass
class Vectors:
    """The gallery (ids 1..N), the probes, each probe's mate and whether exact search ranks the mate first."""

    ids: np.ndarray
    gallery: np.ndarray
    probes: np.ndarray
    mates: np.ndarray
    exact_hit: np.ndarray


@dataclass
class Contender:
    """One index under test: how it is built, searched at a breadth, and measured."""

    name: str
    knob: str
    settings: tuple[float, ...]
    build: Callable[[Vectors, Path], Any]
    set_breadth: Callable[[Any, float], None]
    search: Callable[[Any, np.ndarray], np.ndarray]
    memory: Callable[[Any, Path, int], int]
    close: Callable[[Any], None] = lambda index: None
    notes: dict[str, Any] = field(default_factory=dict)


def make_vectors(faces: int) -> Vectors:
    """The real lfw-dev gallery and probes with ``faces`` generated distractors, and exact search's rank-1."""
    data = lfw_embeddings()
    model = fit_face_model(data["vectors"], data["subjects"])
    split = lfw_split(data)
    parts = [split.gallery.astype(np.float32)]
    parts += [vectors.astype(np.float16).astype(np.float32) for vectors, _ in generate(model, faces, seed=1)]
    gallery = np.ascontiguousarray(np.vstack(parts))
    del parts
    ids = np.arange(1, len(gallery) + 1, dtype=np.int64)
    best = (np.full(len(split.probes), -np.inf, dtype=np.float32), np.full(len(split.probes), -1, dtype=np.int64))
    for start in range(0, len(gallery), 200_000):
        _exact_top1(split.probes, gallery[start : start + 200_000], ids[start : start + 200_000], best)
    mate_of = {subject: int(i) for subject, i in zip(split.gallery_subjects, ids[: len(split.gallery)], strict=True)}
    mates = np.array([mate_of[s] for s in split.probe_subjects], dtype=np.int64)
    return Vectors(ids, gallery, np.ascontiguousarray(split.probes, dtype=np.float32), mates, best[1] == mates)


def _fresh_process_memory(code: str, *args: str) -> int:
    """Anonymous memory (bytes) a fresh Python process gains running ``code`` (which loads an index)."""
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from scale import _rss_anon\n"
        "before = _rss_anon()\n" + code + "\nprint(_rss_anon() - before)"
    )
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loading the index in a fresh process failed:\n{done.stderr}")
    return int(done.stdout.strip().splitlines()[-1])


# facesearch --------------------------------------------------------------------------------------------------


def _facesearch() -> Contender:
    import dataclasses

    from facesearch.index.faiss_index import FaissIndex

    def build(v: Vectors, work: Path) -> Any:
        index = FaissIndex(work / "facesearch" / "bench.faiss", v.gallery.shape[1])
        for start in range(0, len(v.ids), 100_000):
            index.add(v.ids[start : start + 100_000], v.gallery[start : start + 100_000])
        index.wait_for_rebuild()
        index.save()
        return index

    def set_breadth(index: Any, fraction: float) -> None:
        index.knobs = dataclasses.replace(index.knobs, nprobe=None, nprobe_fraction=fraction, min_scanned=0)

    def memory(index: Any, work: Path, dim: int) -> int:
        code = "from pathlib import Path; from facesearch.index.faiss_index import FaissIndex\n"
        code += "index = FaissIndex(Path(sys.argv[1]), int(sys.argv[2]))"
        return _fresh_process_memory(code, str(index.path), str(dim))

    return Contender(
        "facesearch (FaissIndex, automatic)",
        "share of lists",
        FRACTIONS,
        build,
        set_breadth,
        lambda index, q: index.search(q, TOP_K)[1],
        memory,
        lambda index: index.close(),
    )


# FAISS HNSW ---------------------------------------------------------------------------------------------------


def _faiss_hnsw(ef_construction: int = HNSW_EF_CONSTRUCTION) -> Contender:
    import faiss

    def build(v: Vectors, work: Path) -> Any:
        faiss.omp_set_num_threads(CORES)
        index = faiss.IndexHNSWFlat(v.gallery.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(v.gallery)  # ids are positions: position p is face id p + 1
        return index

    def set_breadth(index: Any, ef: float) -> None:
        index.hnsw.efSearch = int(ef)

    def search(index: Any, queries: np.ndarray) -> np.ndarray:
        faiss.omp_set_num_threads(1 if len(queries) == 1 else CORES)
        _, positions = index.search(queries, TOP_K)
        return np.where(positions >= 0, positions + 1, -1)

    def memory(index: Any, work: Path, dim: int) -> int:
        path = work / "hnsw.faiss"
        faiss.write_index(index, str(path))
        size = _fresh_process_memory("import faiss; index = faiss.read_index(sys.argv[1])", str(path))
        path.unlink()
        return size

    return Contender(
        f"FAISS HNSW{HNSW_M} (efConstruction {ef_construction})",
        "efSearch",
        BREADTHS,
        build,
        set_breadth,
        search,
        memory,
    )


# usearch ------------------------------------------------------------------------------------------------------


def _usearch(expansion_add: int = USEARCH_EXPANSION_ADD) -> Contender:
    from usearch.index import Index

    def build(v: Vectors, work: Path) -> Any:
        index = Index(ndim=v.gallery.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=expansion_add)
        started = time.perf_counter()
        # In slices, so that a build of hours reports how far it has come (and its rate as the graph grows).
        for start in range(0, len(v.ids), USEARCH_SLICE):
            stop = start + USEARCH_SLICE
            index.add(v.ids[start:stop], np.ascontiguousarray(v.gallery[start:stop]), threads=0)
            done = min(stop, len(v.ids))
            print(
                f"  usearch: {done:,} of {len(v.ids):,} added, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        return index

    def set_breadth(index: Any, expansion: float) -> None:
        index.expansion_search = int(expansion)

    def search(index: Any, queries: np.ndarray) -> np.ndarray:
        found = index.search(queries, TOP_K, threads=1 if len(queries) == 1 else 0)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        return keys

    def memory(index: Any, work: Path, dim: int) -> int:
        path = work / "usearch.index"
        index.save(str(path))
        code = "from usearch.index import Index; index = Index.restore(sys.argv[1])"
        size = _fresh_process_memory(code, str(path))
        path.unlink()
        return size

    return Contender(
        f"usearch (connectivity 16, expansion_add {expansion_add}, f32)",
        "expansion_search",
        BREADTHS,
        build,
        set_breadth,
        search,
        memory,
    )


# Milvus server ------------------------------------------------------------------------------------------------


def _server_rss() -> int:
    """Resident memory of the Milvus standalone server process (bytes), 0 when none is found."""
    pids = subprocess.run(["pgrep", "-f", "milvus run standalone"], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _milvus(
    work: Path, spec: str, name: str, knob: str, settings: tuple[float, ...], breadth: Callable[[float], str]
) -> Contender:
    """The Milvus server with one collection indexed as ``spec``; ``breadth(setting)`` is the spec a search at
    that setting of ``knob`` uses (its search-time keys, ``ef`` or ``nprobe``, added)."""
    from tests.milvus_server import MilvusServer

    from facesearch.index.milvus_index import MilvusIndex

    server = MilvusServer(work / "milvus")
    state: dict[str, Any] = {}

    def build(v: Vectors, w: Path) -> Any:
        state["address"] = server.start()
        time.sleep(5)
        state["rss_before"] = _server_rss()
        index = MilvusIndex(state["address"], "comparison@1", v.gallery.shape[1], index_spec=spec)
        for start in range(0, len(v.ids), 50_000):
            index.add(v.ids[start : start + 50_000], v.gallery[start : start + 50_000])
        index.save()  # sealed segments: the server builds their indexes
        index.rebuild()
        return index

    def set_breadth(index: Any, setting: float) -> None:
        index._index_spec = breadth(setting)

    def memory(index: Any, w: Path, dim: int) -> int:
        return max(_server_rss() - state["rss_before"], 0)

    def close(index: Any) -> None:
        index.close()
        server.stop()

    return Contender(
        name, knob, settings, build, set_breadth, lambda index, q: index.search(q, TOP_K)[1], memory, close
    )


def _milvus_hnsw(work: Path) -> Contender:
    spec = f"HNSW,M={MILVUS_M},efConstruction={MILVUS_EF_CONSTRUCTION}"
    return _milvus(
        work,
        spec,
        f"Milvus 2.3.5 server HNSW (M {MILVUS_M}, efConstruction {MILVUS_EF_CONSTRUCTION})",
        "ef",
        BREADTHS,
        lambda ef: f"{spec},ef={max(int(ef), TOP_K)}",
    )


def _milvus_ivf(work: Path, faces: int, dim: int) -> Contender:
    """Milvus's inverted file with 8-bit scalar codes: like facesearch's index, a probe visits a share of the
    lists (face mates lie in far lists, which a graph's greedy walk does not reach), and facesearch's
    ``MilvusIndex`` re-ranks the candidates by their stored vectors.

    The server builds one index per sealed segment (512 MB by default, about a million 128-d faces), so the
    list count follows a segment's rows, not the collection's: ``sqrt`` of them. Milvus's suggested
    ``4 * sqrt`` (4,096 lists) trains k-means on every row of each segment, single-threaded: a 1M-face build
    ran past 18 minutes on two cores, where 1,024 lists train on a quarter of the rows at a quarter of the cost.
    """
    segment_rows = min(faces, MILVUS_SEGMENT_BYTES // (4 * dim))  # float32 vectors
    nlist = int(min(65_536, max(256, 2 ** round(np.log2(np.sqrt(segment_rows))))))
    spec = f"IVF_SQ8,nlist={nlist}"
    return _milvus(
        work,
        spec,
        f"Milvus 2.3.5 server IVF_SQ8 (nlist {nlist}, re-ranked)",
        "share of lists",
        FRACTIONS,
        lambda fraction: f"{spec},nprobe={max(1, round(fraction * nlist))}",
    )


# Measuring ----------------------------------------------------------------------------------------------------


def _recall(v: Vectors, found: np.ndarray) -> float:
    return float((v.exact_hit & (found[:, 0] == v.mates)).sum() / max(v.exact_hit.sum(), 1))


def _timed(contender: Contender, index: Any, probes: np.ndarray) -> tuple[list[float], np.ndarray]:
    timings, found = [], []
    for probe in probes:
        t0 = time.perf_counter()
        found.append(contender.search(index, probe[None]))
        timings.append((time.perf_counter() - t0) * 1000)
    return timings, np.vstack(found)


def measure(contender: Contender, v: Vectors, work: Path, target: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Build one contender, sweep its breadth, and time it at the narrowest setting reaching ``target``."""
    started = time.perf_counter()
    index = contender.build(v, work)
    build_s = time.perf_counter() - started
    log(f"{contender.name}: built in {build_s:.0f} s")
    ram = contender.memory(index, work, v.gallery.shape[1])
    sweep, chosen = [], None
    for setting in contender.settings:
        contender.set_breadth(index, setting)
        timings, found = _timed(contender, index, v.probes[:SWEEP_PROBES])
        recall = _recall(v, np.vstack([found, contender.search(index, v.probes[SWEEP_PROBES:])]))
        sweep.append(
            {contender.knob: setting, "mate_recall": round(recall, 5), "p50_ms": round(float(np.median(timings)), 3)}
        )
        log(f"  {contender.knob} {setting}: recall {recall:.4f}, p50 {np.median(timings):.2f} ms")
        if recall >= target:
            chosen = setting
            break
    if chosen is None:
        chosen = contender.settings[-1]
    contender.set_breadth(index, chosen)
    timings, found = _timed(contender, index, v.probes)
    result = {
        "index": contender.name,
        "knob": contender.knob,
        "setting": chosen,
        "mate_recall": round(_recall(v, found), 5),
        "p50_ms": round(float(np.percentile(timings, 50)), 3),
        "p99_ms": round(float(np.percentile(timings, 99)), 3),
        "ram_bytes_per_face": round(ram / len(v.ids), 1),
        "build_s": round(build_s, 1),
        "sweep": sweep,
    }
    contender.close(index)
    return result


def main() -> int:
    """Build and measure every contender on one set of vectors; print a table (or JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000, help="generated distractors")
    parser.add_argument("--target", type=float, default=0.995, help="mate recall each index is set to reach")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["facesearch", "hnsw", "usearch", "milvus", "milvus-ivf"]
    )
    parser.add_argument("--json", action="store_true", help="one JSON line per index on stdout")
    parser.add_argument(
        "--hnsw-ef-construction",
        type=int,
        default=HNSW_EF_CONSTRUCTION,
        help="FAISS HNSW's build breadth (its build time grows with it: 80 takes about 7 minutes a million faces "
        "on two cores)",
    )
    parser.add_argument(
        "--usearch-expansion-add",
        type=int,
        default=USEARCH_EXPANSION_ADD,
        help="usearch's build breadth (128 builds 10M faces in over four hours on two AMD EPYC cores; 64 in 84 "
        "minutes)",
    )
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    v = make_vectors(args.faces)
    log(
        f"{len(v.ids)} faces, {len(v.probes)} probes, exact rank-1 {v.exact_hit.mean():.4f} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="index-comparison-") as tmp:
        work = Path(tmp)
        # The gallery moves to a memory-mapped file: the page cache holds it, not this process, so that at 10M a
        # graph (about 8 GB), the copy a fresh process loads to measure it and the gallery fit in 24 GiB.
        np.save(work / "gallery.npy", v.gallery)
        v.gallery = np.load(work / "gallery.npy", mmap_mode="r")
        makers: dict[str, Callable[[], Contender]] = {
            "facesearch": _facesearch,
            "hnsw": lambda: _faiss_hnsw(args.hnsw_ef_construction),
            "usearch": lambda: _usearch(args.usearch_expansion_add),
            "milvus": lambda: _milvus_hnsw(work),
            "milvus-ivf": lambda: _milvus_ivf(work, len(v.ids), v.gallery.shape[1]),
        }
        rows = []
        for key, make in makers.items():
            if key in args.skip:
                continue
            row = measure(make(), v, work, args.target, log)
            row.update(faces=len(v.ids), target=args.target)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print(f"{len(v.ids):,} faces, target mate recall {args.target:.1%}, {machine()}")
        print("| index | setting | mate recall | p50 | p99 | RAM / face | build |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['index']} | {r['knob']} {r['setting']} | {r['mate_recall']:.2%} | {r['p50_ms']:.2f} ms "
                f"| {r['p99_ms']:.2f} ms | {r['ram_bytes_per_face']:.0f} B | {r['build_s']:.0f} s |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
