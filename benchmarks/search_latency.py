"""Search latency for one probe face against N indexed faces, excluding detection.

Builds a real catalog (SQLite file) and FAISS index of N synthetic unit vectors with metadata, then times
``SearchService.search_vectors`` (index search + one catalog round trip for the candidates' metadata).

    python benchmarks/search_latency.py [--faces 100000] [--queries 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine


class _FixedPack:
    """Just enough of a pack for the search service: a key and a threshold."""

    key = "synthetic@1"
    threshold = 0.5
    dim = 128


def build(home: Path, faces: int, dim: int = 128) -> tuple[object, np.ndarray]:
    """A catalog and index of ``faces`` synthetic faces (one per image); returns (service, vectors)."""
    from facesearch.catalog.store import Catalog, FileOutcome, NewFace
    from facesearch.index.faiss_index import FaissIndex
    from facesearch.search.service import SearchService

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(faces, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite3'}")
    collection = catalog.ensure_collection("bench")
    index = FaissIndex(home / "synthetic.faiss", dim)
    for start in range(0, faces, 5000):
        outcomes = [
            FileOutcome(
                f"/photos/{i}.jpg",
                1000,
                0.0,
                f"{i:064x}",
                "ok",
                250,
                250,
                faces=[NewFace((10, 10, 100, 100), None, 0.9, 0.9, [], vectors[i], None)],
            )
            for i in range(start, min(start + 5000, faces))
        ]
        recorded = catalog.record_files(collection, _FixedPack.key, outcomes)
        index.add(
            np.array([r.face_ids[0] for r in recorded], dtype=np.int64),
            np.stack([r.embeddings[0] for r in recorded]),
        )
    return SearchService(catalog, _FixedPack(), index), vectors  # type: ignore[arg-type]


def main() -> None:
    """Time single-probe searches and print percentiles."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        service, vectors = build(Path(scratch), args.faces)
        build_s = time.perf_counter() - started
        rng = np.random.default_rng(1)
        probes = vectors[rng.integers(0, args.faces, args.queries)] + rng.normal(0, 0.02, (args.queries, 128))
        probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
        for probe in probes[:20]:  # warm caches
            service.search_vectors(probe[None], top_k=args.top_k)  # type: ignore[attr-defined]
        timings = []
        for probe in probes:
            t0 = time.perf_counter()
            service.search_vectors(probe[None], top_k=args.top_k)  # type: ignore[attr-defined]
            timings.append((time.perf_counter() - t0) * 1000)
    result = {
        "faces": args.faces,
        "queries": args.queries,
        "top_k": args.top_k,
        "p50_ms": round(float(np.percentile(timings, 50)), 2),
        "p99_ms": round(float(np.percentile(timings, 99)), 2),
        "mean_ms": round(float(np.mean(timings)), 2),
        "build_s": round(build_s, 1),
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"search of one probe face among {args.faces} faces (top {args.top_k}, metadata included): "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms (catalog + index built in {result['build_s']} s)"
        )


if __name__ == "__main__":
    main()
