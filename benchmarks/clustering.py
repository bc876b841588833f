"""Clustering accuracy and speed (issue 13).

Accuracy, on lfw-dev with every label hidden (one face per photo, the one the folder names): pairwise
precision and recall and BCubed F of facesearch's clustering at several false-match rates, against the rules
people use today in the same run: single linkage at the same threshold (connected components, what a plain
"link every pair above the threshold" does) and Immich's published rule (DBSCAN-like: a face with at least
``minFaces`` faces within ``maxDistance`` starts or joins a person; others join the nearest person within
``maxDistance``; its defaults 0.5 and 3). Then the same with ``--distractors`` generated faces mixed in (the
scale benchmark's model of face embeddings, fitted on lfw-dev), where precision must hold.

Speed (``--speed N``): N generated faces clustered from scratch, then ``--add`` more added incrementally, with
the peak memory.

    python benchmarks/clustering.py [--pack fused] [--distractors 100000] [--json]
    python benchmarks/clustering.py --speed 1000000 --add 10000 [--pack fused]      # the algorithm alone
    python benchmarks/clustering.py --service 1000000 --add 10000                  # end to end, real data folder
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import machine, use_shared_models
from facesearch.eval.clustering_metrics import bcubed_scores, pairwise_scores
from facesearch.search import clustering
from facesearch.search.calibration import find_calibration
from facesearch.search.clusters import DEFAULT_FMR
from scale import fit_face_model, generate, lfw_embeddings

FMRS = (2e-6, 1.8e-6, 1.5e-6)


def immich_rule(vectors: np.ndarray, max_distance: float = 0.5, min_faces: int = 3) -> np.ndarray:
    """Immich's face clustering as its documentation and code describe it, on the same embeddings: faces are
    taken in order; a face with at least ``min_faces`` faces (itself included) within cosine distance
    ``max_distance`` is a core face and starts a person unless one of those already has one; any face joins the
    nearest face that has a person within ``max_distance``; the rest stay unassigned (own cluster here)."""
    n = len(vectors)
    unit = clustering.normalised(vectors)
    similarity = unit @ unit.T
    near = similarity >= 1 - max_distance
    core = near.sum(axis=1) >= min_faces
    person = np.full(n, -1, dtype=np.int64)
    people = 0
    # Core faces first, then the ones Immich defers (not core) in a second pass, as its job queue does.
    for face in [*np.flatnonzero(core), *np.flatnonzero(~core)]:
        row = similarity[face]
        nearest = np.argsort(-row)[:min_faces]
        owner = next((person[i] for i in nearest if near[face, i] and person[i] >= 0), -1)
        if owner < 0:
            with_person = np.flatnonzero(person >= 0)
            if with_person.size:
                best = with_person[np.argmax(row[with_person])]
                if near[face, best]:
                    owner = person[best]
        if owner < 0 and core[face]:
            owner, people = people, people + 1
        person[face] = owner
    alone = person < 0
    person[alone] = people + np.arange(int(alone.sum()))
    return person


def scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Pairwise and BCubed scores, and the cluster counts."""
    pairwise = pairwise_scores(labels, truth)
    return {
        "pairwise_precision": pairwise["precision"],
        "pairwise_recall": pairwise["recall"],
        "bcubed_f": bcubed_scores(labels, truth)["f"],
        "pairs_wrong": pairwise["pairs_wrong"],
        "clusters": int(np.unique(labels).size),
    }


def accuracy(pack: str, distractors: int) -> dict[str, Any]:
    """Every method on lfw-dev, then ours with distractors mixed in."""
    data = lfw_embeddings(pack)
    vectors, truth = clustering.normalised(data["vectors"]), data["subjects"]
    key = f"{pack}@{'2' if pack in ('fused', 'dlib') else '1'}"
    calibration = find_calibration(key)
    if calibration is None:
        raise SystemExit(f"no calibration for {key}")
    report: dict[str, Any] = {
        "pack": key,
        "faces": len(vectors),
        "people": int(np.unique(truth).size),
        "true_pairs": pairwise_scores(truth, truth)["pairs_true"],
        "methods": {},
    }
    for fmr in FMRS:
        threshold = calibration.threshold_for(fmr)
        graph = clustering.similarity_graph(vectors, threshold)
        started = time.perf_counter()
        ours = clustering.cluster_faces(vectors, threshold, graph=graph)
        elapsed = time.perf_counter() - started
        single = clustering.cluster_faces(vectors, threshold, graph=graph, refine=False)
        report["methods"][f"facesearch fmr={fmr:g} (t={threshold:.3f})"] = {
            **scores(ours, truth),
            "s": round(elapsed, 2),
        }
        report["methods"][f"single linkage fmr={fmr:g}"] = scores(single, truth)
    started = time.perf_counter()
    report["methods"]["Immich rule, defaults (0.5, 3)"] = {
        **scores(immich_rule(vectors), truth),
        "s": round(time.perf_counter() - started, 2),
    }
    threshold = calibration.threshold_for(DEFAULT_FMR)
    report["methods"][f"Immich rule at our threshold (fmr={DEFAULT_FMR:g})"] = scores(
        immich_rule(vectors, 1 - threshold), truth
    )
    if distractors:
        model = fit_face_model(data["vectors"], truth)
        fake, who = next(generate(model, distractors, seed=7, chunk=distractors))
        mixed = np.concatenate([vectors, fake])
        mixed_truth = np.concatenate([truth.astype(object), np.array([f"synthetic-{i}" for i in who], dtype=object)])
        for fmr in FMRS:
            threshold = calibration.threshold_for(fmr)
            started = time.perf_counter()
            graph = clustering.similarity_graph(mixed, threshold)
            labels = clustering.cluster_faces(mixed, threshold, graph=graph)
            elapsed = time.perf_counter() - started
            single = clustering.cluster_faces(mixed, threshold, graph=graph, refine=False)
            lfw = len(vectors)
            report["methods"][f"facesearch fmr={fmr:g} + {distractors:,} distractors"] = {
                **scores(labels, mixed_truth),
                "lfw_only": scores(labels[:lfw], truth),
                "lfw_faces_with_a_distractor": int(np.isin(labels[:lfw], labels[lfw:]).sum()),
                "s": round(elapsed, 1),
            }
            report["methods"][f"single linkage fmr={fmr:g} + {distractors:,} distractors"] = scores(single, mixed_truth)
    return report


def peak_rss_gib() -> float:
    """The process's peak resident memory so far, in GiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def speed(pack: str, faces: int, add: int) -> dict[str, Any]:
    """``faces`` generated faces clustered from scratch (graph, clusters, every cluster's quality), then ``add``
    more placed incrementally (their neighbours found in an index of the first ones, as the service does with
    the pack's index), with the time of each step and the peak memory."""
    data = lfw_embeddings(pack)
    key = f"{pack}@{'2' if pack in ('fused', 'dlib') else '1'}"
    calibration = find_calibration(key)
    assert calibration is not None
    threshold = calibration.threshold_for(DEFAULT_FMR)
    model = fit_face_model(data["vectors"], data["subjects"])
    vectors = np.concatenate([chunk for chunk, _ in generate(model, faces + add, seed=11)])
    base, extra = vectors[:faces], vectors[faces:]
    report: dict[str, Any] = {"pack": key, "faces": faces, "added": add, "threshold": round(threshold, 4)}
    started = time.perf_counter()
    graph = clustering.similarity_graph(base, threshold)
    report["graph_s"] = round(time.perf_counter() - started, 1)
    print(f"graph: {report['graph_s']} s", file=sys.stderr, flush=True)
    report["edges"] = len(graph)
    step = time.perf_counter()
    labels = clustering.cluster_faces(base, threshold, graph=graph)
    report["cluster_s"] = round(time.perf_counter() - step, 1)
    print(f"clusters: {report['cluster_s']} s", file=sys.stderr, flush=True)
    step = time.perf_counter()
    sizes = np.bincount(labels)
    several = np.flatnonzero(sizes > 1)
    order = np.argsort(labels, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    mixed = sum(clustering.quality(base, order[starts[c] : starts[c] + sizes[c]]).mixed for c in several.tolist())
    report["quality_s"] = round(time.perf_counter() - step, 1)
    report["from_scratch_s"] = round(time.perf_counter() - started, 1)
    report["clusters"] = int(sizes.size)
    report["clusters_of_several"] = int(several.size)
    report["flagged_mixed"] = int(mixed)
    report["peak_rss_gib_after_scratch"] = peak_rss_gib()
    # Incremental: the service searches the pack's own index; here an IVF index of the base faces stands in.
    import faiss

    lists = int(4 * np.sqrt(faces))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(base.shape[1]), base.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    index.train(base[:: max(1, faces // (64 * lists))])
    index.add(base)
    index.nprobe = 24
    step = time.perf_counter()
    similarities, positions = index.search(extra, clustering.K_NEIGHBOURS + 1)
    neighbour_clusters = np.where(positions >= 0, labels[np.maximum(positions, 0)], -1)
    joined, groups = clustering.assign_new(extra, similarities, neighbour_clusters, threshold)
    report["incremental_s"] = round(time.perf_counter() - step, 1)
    report["incremental_joined"] = int((joined >= 0).sum())
    report["incremental_new_clusters"] = int(np.unique(groups[groups >= 0]).size)
    report["peak_rss_gib"] = peak_rss_gib()
    return report


def service(faces: int, add: int) -> dict[str, Any]:
    """End to end through the service on a real data folder (SQLite catalog, the pack's FAISS index):
    ``faces`` face-like vectors loaded into the catalog (``catalog_scale.py``'s bulk load, the default pack's
    generator), clustered from scratch by ``Clusters.run``; then ``add`` more loaded and added incrementally."""
    import tempfile

    import catalog_scale
    from facesearch.catalog.store import Catalog
    from facesearch.config import Settings
    from facesearch.engine import FaceSearch

    use_shared_models()
    catalog_scale.PACK_KEY = "yunet-mobilefacenet@1"  # the generator's vectors are that pack's
    report: dict[str, Any] = {"pack": catalog_scale.PACK_KEY, "faces": faces, "added": add}
    with tempfile.TemporaryDirectory(prefix="facesearch-cluster-bench-") as scratch:
        home = Path(scratch) / "home"
        url = f"sqlite:///{home / 'catalog.sqlite3'}"
        catalog = Catalog(url)
        report["load_s"] = round(catalog_scale.bulk_fill(catalog, "archive", faces, seed=1)[0], 1)
        catalog.close()
        with FaceSearch(Settings.load(home, pack="yunet-mobilefacenet", catalog_url=url)) as engine:
            step = time.perf_counter()
            engine.indexes.sync(catalog_scale.PACK_KEY, 128)
            report["index_build_s"] = round(time.perf_counter() - step, 1)
            step = time.perf_counter()
            run = engine.clusters.run(engine.operator, full=True)
            report["from_scratch_s"] = round(time.perf_counter() - step, 1)
            report["clusters"] = run.clusters
            report["threshold"] = round(run.threshold, 4)
            report["peak_rss_gib_after_scratch"] = peak_rss_gib()
            catalog_scale.bulk_fill(engine.catalog, "arrivals", add, seed=5)
            step = time.perf_counter()
            engine.indexes.sync(catalog_scale.PACK_KEY, 128)
            report["index_catch_up_s"] = round(time.perf_counter() - step, 1)
            step = time.perf_counter()
            run = engine.clusters.run(engine.operator)
            report["incremental_s"] = round(time.perf_counter() - step, 1)
            report["incremental_new_faces"] = run.new_faces
            report["incremental_full"] = run.full
            report["clusters_after"] = run.clusters
    report["peak_rss_gib"] = peak_rss_gib()
    return report


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default="fused")
    parser.add_argument("--distractors", type=int, default=100_000)
    parser.add_argument("--speed", type=int, default=0, help="Generated faces to cluster from scratch (speed).")
    parser.add_argument("--add", type=int, default=10_000, help="Faces then added incrementally (with --speed).")
    parser.add_argument(
        "--service", type=int, default=0, help="Faces loaded into a real data folder and clustered by the service."
    )
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    report: dict[str, Any] = {"machine": machine()}
    if options.service:
        report["service"] = service(options.service, options.add)
        print(json.dumps(report) if options.json else report)
        return
    if options.speed:
        report["speed"] = speed(options.pack, options.speed, options.add)
        print(json.dumps(report) if options.json else report)
        return
    report["accuracy"] = accuracy(options.pack, options.distractors)
    report["peak_rss_gib"] = peak_rss_gib()
    if options.json:
        print(json.dumps(report))
        return
    print(report["machine"])
    acc = report["accuracy"]
    print(f"{acc['pack']}: {acc['faces']} faces, {acc['people']} people, {acc['true_pairs']} same-person pairs")
    for name, row in acc["methods"].items():
        print(f"{name:55s} " + " ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
